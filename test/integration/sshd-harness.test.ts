// The throwaway sshd harness, exercised with the real sshfs client.
// Operations that may block on a dead or frozen server run as external commands with timeouts,
// so a hung FUSE request can never wedge the test process itself.
import { mkdir, mkdtemp, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { startSshServer, type SshServer } from '../support/sshd.js';
import { CMD_TIMEOUT_MS, isMounted } from '../support/helpers.js';

const TEST_TIMEOUT_MS = 60_000;

let server: SshServer;
let dir: string;
let knownHosts: string;
const mounts = new Set<string>();

async function mount(name: string, knownHostsFile = knownHosts) {
  const mnt = join(dir, name);
  await mkdir(mnt);
  mounts.add(mnt);
  const options = [
    `IdentityFile=${server.clientKeyFile}`,
    `UserKnownHostsFile=${knownHostsFile}`,
    'StrictHostKeyChecking=yes',
    'BatchMode=yes',
    'reconnect',
    'ServerAliveInterval=2',
    'ServerAliveCountMax=2',
    // ServerAlive does not cover the banner exchange: without this, a reconnect to a frozen
    // listener blocks the FUSE request (and its caller, unkillably) until the server thaws.
    'ConnectTimeout=5',
  ].join(',');
  const result = await execa(
    'sshfs',
    ['-p', String(server.port), `${server.user}@${server.host}:${server.root}`, mnt, '-o', options],
    { timeout: CMD_TIMEOUT_MS, reject: false },
  );
  return { mnt, result };
}

async function unmount(mnt: string): Promise<void> {
  if (await isMounted(mnt)) {
    const { failed } = await execa('fusermount3', ['-u', mnt], { timeout: CMD_TIMEOUT_MS, reject: false });
    if (failed) await execa('umount', ['-l', mnt], { timeout: CMD_TIMEOUT_MS });
  }
  await rmdir(mnt); // fails (EBUSY) if anything is still mounted there
  mounts.delete(mnt);
}

/** Runs a command against the mount; returns its outcome and how long it took. */
async function timed(file: string, args: string[]) {
  const t0 = Date.now();
  const result = await execa(file, args, { timeout: CMD_TIMEOUT_MS, reject: false });
  return { ...result, ms: Date.now() - t0 };
}

beforeAll(async () => {
  server = await startSshServer();
  dir = await mkdtemp(join(tmpdir(), 'tether-sshfs-test-'));
  knownHosts = join(dir, 'known_hosts');
  await writeFile(knownHosts, `[${server.host}]:${server.port} ${server.hostKey}\n`);
});

afterEach(async () => {
  await server.thaw();
  for (const mnt of mounts) await unmount(mnt);
  await server.restart(); // every test starts with a fresh, healthy server
});

afterAll(async () => {
  await server?.stop();
  // Only remove the scratch dir if every mountpoint is gone: never recurse into a live mount.
  if (dir !== undefined && mounts.size === 0) await rm(dir, { recursive: true, force: true });
});

describe('throwaway sshd harness', () => {
  it('serves its root over sftp: writes through sshfs land on the server side', async () => {
    const { mnt, result } = await mount('mnt-io');
    expect(result.exitCode).toBe(0);
    expect(await isMounted(mnt)).toBe(true);

    await writeFile(join(mnt, 'hello.txt'), 'hello through sshfs\n');
    expect(await readFile(join(server.root, 'hello.txt'), 'utf8')).toBe('hello through sshfs\n');

    await writeFile(join(server.root, 'server.txt'), 'from the server\n');
    expect(await readFile(join(mnt, 'server.txt'), 'utf8')).toBe('from the server\n');
  }, TEST_TIMEOUT_MS);

  it('refuses to mount when the host key does not match', async () => {
    const otherKey = join(dir, 'other_ed25519');
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', otherKey], { timeout: CMD_TIMEOUT_MS });
    const wrongKey = (await readFile(`${otherKey}.pub`, 'utf8')).split(' ').slice(0, 2).join(' ');
    const wrongKnownHosts = join(dir, 'wrong_known_hosts');
    await writeFile(wrongKnownHosts, `[${server.host}]:${server.port} ${wrongKey}\n`);

    const { mnt, result } = await mount('mnt-wrong-key', wrongKnownHosts);
    expect(result.exitCode).not.toBe(0);
    expect(await isMounted(mnt)).toBe(false);
  }, TEST_TIMEOUT_MS);

  it('kill() makes operations fail with EIO at once, restart() heals the mount', async () => {
    const { mnt, result } = await mount('mnt-kill');
    expect(result.exitCode).toBe(0);
    await writeFile(join(mnt, 'a.txt'), 'survives\n');

    await server.kill();
    const down = await timed('cat', [join(mnt, 'a.txt')]);
    expect(down.exitCode).not.toBe(0);
    expect(down.stderr).toMatch(/Input\/output error/);
    expect(down.ms).toBeLessThan(3000);

    await server.restart();
    const up = await timed('cat', [join(mnt, 'a.txt')]);
    expect(up.exitCode).toBe(0);
    expect(up.stdout).toBe('survives');
  }, TEST_TIMEOUT_MS);

  it('freeze() makes stat fail within ~10 s (ServerAlive), thaw() recovers', async () => {
    const { mnt, result } = await mount('mnt-freeze');
    expect(result.exitCode).toBe(0);
    await writeFile(join(mnt, 'warmup.txt'), 'x'); // establish the session before freezing
    // A name sshfs has never seen, so stat cannot be answered from its attribute cache.
    await writeFile(join(server.root, 'fresh.txt'), 'y');

    await server.freeze();
    const frozen = await timed('stat', [join(mnt, 'fresh.txt')]);
    expect(frozen.exitCode).not.toBe(0);
    expect(frozen.ms).toBeLessThan(10_000);

    await server.thaw();
    const thawed = await timed('stat', ['-c', '%s', join(mnt, 'fresh.txt')]);
    expect(thawed.exitCode).toBe(0);
    expect(thawed.stdout).toBe('1');
  }, TEST_TIMEOUT_MS);
});
