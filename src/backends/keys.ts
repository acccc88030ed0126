import ssh2 from 'ssh2';

/**
 * Checks of SSH keys at start, with the parser the controller's SFTP client uses: a key that
 * cannot be used fails the start with one line, instead of every CreateVolume later.
 */

/** Why `bytes` is not an unencrypted private key tether can use, or undefined. */
export function privateKeyProblem(bytes: Buffer): string | undefined {
  const parsed = firstKey(ssh2.utils.parseKey(bytes));
  if (parsed instanceof Error) return `not a usable private key (${parsed.message}); tether needs an unencrypted OpenSSH or PEM key`;
  if (!parsed.isPrivateKey()) return 'this is a public key; give the private key (the file without .pub)';
  return undefined;
}

/** Why an OpenSSH public key line ("ssh-ed25519 AAAA…") does not parse, or undefined. */
export function hostKeyProblem(line: string): string | undefined {
  const parsed = firstKey(ssh2.utils.parseKey(line));
  if (parsed instanceof Error) return `the host key does not parse (${parsed.message}); copy it as ssh-keyscan prints it`;
  if (parsed.isPrivateKey()) return 'this is a private key; give the server\'s public host key';
  return undefined;
}

const firstKey = <K>(parsed: K | K[] | Error): K | Error => (Array.isArray(parsed) ? (parsed[0] ?? new Error('no key found')) : parsed);
