import { createPrivateKey } from 'node:crypto';

/**
 * Checks of SSH keys at start: a key that cannot be used fails the start with one line, instead of
 * every CreateVolume later. They read the formats ssh2 (the controller's SFTP client) reads —
 * OpenSSH's own, the traditional PEM ones (RSA, EC, DSA) and PuTTY's — without loading ssh2, whose
 * import costs ~50 ms and a 16 MiB WebAssembly heap: it is loaded when a backend first connects.
 */

const USABLE = 'tether needs an unencrypted OpenSSH or PEM key';
const PUBLIC = /^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-\S+)(-cert-v0[01]@openssh\.com)? [A-Za-z0-9+/=]+|^-----BEGIN (RSA |SSH2 )?PUBLIC KEY-----|^---- BEGIN SSH2 PUBLIC KEY ----/;
const OPENSSH = /^-----BEGIN OPENSSH PRIVATE KEY-----\r?\n([A-Za-z0-9+/=\r\n]+)\r?\n-----END OPENSSH PRIVATE KEY-----$/;
const PEM = /^-----BEGIN (RSA|DSA|EC) PRIVATE KEY-----\r?\n/;
const PUTTY = /^PuTTY-User-Key-File-2: ssh-(rsa|dss)\r?\nEncryption: (\S+)\r?\n/;
const OPENSSH_MAGIC = Buffer.from('openssh-key-v1\0', 'latin1');
/** Key types ssh2 signs with, and how many SSH strings follow the type in a public key blob. */
const PUBLIC_PARTS: Record<string, number> = { 'ssh-ed25519': 1, 'ssh-rsa': 2, 'ssh-dss': 4, 'ecdsa-sha2-nistp256': 2, 'ecdsa-sha2-nistp384': 2, 'ecdsa-sha2-nistp521': 2 };

/** Why `bytes` is not an unencrypted private key tether can use, or undefined. */
export function privateKeyProblem(bytes: Buffer): string | undefined {
  const text = bytes.toString('latin1').trim();
  if (PUBLIC.test(text)) return 'this is a public key; give the private key (the file without .pub)';
  const problem = opensshOrPemProblem(text, bytes);
  return problem && `not a usable private key (${problem}); ${USABLE}`;
}

function opensshOrPemProblem(text: string, bytes: Buffer): string | undefined {
  const openssh = OPENSSH.exec(text);
  if (openssh) return opensshProblem(Buffer.from(openssh[1]!.replace(/\s+/g, ''), 'base64'));
  if (PEM.test(text)) {
    if (/^Proc-Type: 4,ENCRYPTED/m.test(text)) return 'Encrypted private key, and no passphrase can be given';
    try {
      createPrivateKey({ key: bytes, format: 'pem' });
      return undefined;
    } catch (err) {
      return `the PEM key does not parse: ${(err as Error).message}`;
    }
  }
  const putty = PUTTY.exec(text);
  if (putty) return putty[2] === 'none' ? undefined : 'Encrypted private key, and no passphrase can be given';
  return 'neither an OpenSSH nor a PEM private key';
}

/** An "openssh-key-v1" key (PROTOCOL.key in OpenSSH's sources): unencrypted, one key, of a type ssh2 uses. */
function opensshProblem(blob: Buffer): string | undefined {
  if (!blob.subarray(0, OPENSSH_MAGIC.length).equals(OPENSSH_MAGIC)) return 'not an OpenSSH private key';
  const r = new SshReader(blob, OPENSSH_MAGIC.length);
  const [cipher, kdf] = [r.text(), r.text()];
  r.bytes(); // the KDF's options
  const count = r.uint32();
  if (cipher !== 'none' || kdf !== 'none') return cipher === undefined ? 'the OpenSSH key is cut short' : 'Encrypted private key, and no passphrase can be given';
  if (count !== 1) return `the OpenSSH key file holds ${count ?? 'no'} keys, not one`;
  const publicBlob = r.bytes();
  const secret = r.bytes();
  if (!publicBlob || !secret || !r.atEnd()) return 'the OpenSSH key is damaged';
  const s = new SshReader(secret, 0);
  const check = [s.uint32(), s.uint32()];
  const type = s.text();
  if (check[0] === undefined || check[0] !== check[1]) return 'the OpenSSH key is damaged (its check numbers differ)';
  if (!type || !(type in PUBLIC_PARTS)) return `the key type ${type ?? '(none)'} is not one tether can use`;
  return publicBlobProblem(publicBlob, type);
}

/** Why an OpenSSH public key line ("ssh-ed25519 AAAA…") does not parse, or undefined. */
export function hostKeyProblem(line: string): string | undefined {
  const [type = '', data = ''] = line.trim().split(/\s+/);
  if (!(type in PUBLIC_PARTS)) return `the host key type ${type} is not one tether can use`;
  const problem = publicBlobProblem(Buffer.from(data, 'base64'), type);
  return problem && `the host key does not parse (${problem}); copy it as ssh-keyscan prints it`;
}

/** A public key blob: its own type, then the type's fields (SSH strings), nothing after them. */
function publicBlobProblem(blob: Buffer, type: string): string | undefined {
  const r = new SshReader(blob, 0);
  const inner = r.text();
  if (inner !== type) return `its data is ${inner ? `a ${inner} key` : 'no key'}, not ${type}`;
  const fields = Array.from({ length: PUBLIC_PARTS[type]! }, () => r.bytes());
  if (fields.some((f) => f === undefined) || !r.atEnd()) return 'its data is cut short or has bytes left over';
  if (type === 'ssh-ed25519' && fields[0]!.length !== 32) return 'an Ed25519 key is 32 bytes';
  return undefined;
}

/** Reads SSH wire-format fields (RFC 4251 §5); undefined once the data runs out. */
class SshReader {
  constructor(
    private readonly buf: Buffer,
    private pos: number,
  ) {}

  uint32(): number | undefined {
    if (this.pos + 4 > this.buf.length) return undefined;
    const value = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return value;
  }

  bytes(): Buffer | undefined {
    const length = this.uint32();
    if (length === undefined || this.pos + length > this.buf.length) return undefined;
    const value = this.buf.subarray(this.pos, this.pos + length);
    this.pos += length;
    return value;
  }

  text(): string | undefined {
    return this.bytes()?.toString('latin1');
  }

  atEnd(): boolean {
    return this.pos === this.buf.length;
  }
}
