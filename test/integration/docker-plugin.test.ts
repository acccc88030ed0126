// Docker's volume plugin protocol, spoken to tether as dockerd speaks it (HTTP POST + JSON on the
// plugin's unix socket), with a real sshd and real sshfs mounts; the "containers" are real mount
// namespaces holding a bind of the returned mount point, which is what runc makes of a Docker volume.
// Two plugin processes stand for two Docker hosts on one backend. (The same stories against real
// Docker engines are test/docker/: this file is the protocol's edge cases, quickly.)
import { chmod, mkdtemp, readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { freePort, startSshServer, type SshServer } from '../support/sshd.js';
import { backendConfig, startDriver, startDriverWith, type RunningDriver } from '../support/driver.js';
import { dockerCall, dockerErr, dockerOk, holdInNamespace } from '../support/docker-plugin.js';
import { CMD_TIMEOUT_MS, exists, isMounted, mountsUnder, recordOn, uniq, unmountLeftovers } from '../support/helpers.js';

const TEST_TIMEOUT_MS = 90_000;
const HOOK_TIMEOUT_MS = 90_000;
/** Short, so that the waits show within a test: the default is 90 s. */
const MOUNT_WAIT_S = 3;
const STRAY_S = 2;

let server: SshServer;
let work: string;
let hostA: Host;
let hostB: Host;
const holders: ResultPromise[] = [];

interface Host {
  name: string;
  driver: RunningDriver;
  socket: string;
  mountRoot: string;
}

async function startHost(name: string, mountWaitS = MOUNT_WAIT_S): Promise<Host> {
  const mountRoot = join(work, name, 'volumes');
  const driver = await startDriver(server, { mode: 'docker', nodeId: name, extraArgs: ['--docker-mount-root', mountRoot, '--docker-mount-wait', String(mountWaitS)], extraConfig: { dockerStrayMountSeconds: STRAY_S, runtimeDir: join(work, name, 'run') } });
  return { name, driver, socket: driver.socket, mountRoot };
}

const call = (host: Host, verb: string, body: object = {}) => dockerOk(host.socket, verb, body);
const refused = (host: Host, verb: string, body: object = {}) => dockerErr(host.socket, verb, body);
/** Runs `script` as a non-root container process would: uid 1000, gid 1000, no supplementary groups. */
const asUser = (script: string, ...args: string[]) => execa('setpriv', ['--reuid=1000', '--regid=1000', '--clear-groups', 'sh', '-c', script, 'container', ...args], { timeout: CMD_TIMEOUT_MS, reject: false });
const onServer = (name: string, ...rest: string[]) => join(server.root, name, ...rest);

/** A container using the volume mounted at `mountpoint` (see holdInNamespace). */
async function container(mountpoint: string): Promise<{ process: ResultPromise }> {
  const held = await holdInNamespace(mountpoint, join(work, uniq('ctr')));
  holders.push(held.process);
  return held;
}

async function stopContainer(held: { process: ResultPromise }): Promise<void> {
  held.process.kill('SIGKILL');
  await held.process;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tether-docker-'));
  await chmod(work, 0o755); // the non-root writer walks to the mount point (a container gets a bind of it: its parents do not matter there)
  server = await startSshServer();
  hostA = await startHost('host-a');
  hostB = await startHost('host-b');
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  for (const held of holders) held.kill('SIGKILL');
  for (const host of [hostA, hostB]) await host?.driver.stop().catch(() => undefined);
  if (work) await unmountLeftovers(work);
  await server?.stop();
}, HOOK_TIMEOUT_MS);

describe('a new Docker user: create, inspect, mount, write as non-root, remove', () => {
  it('answers Activate and Capabilities (a global driver: its volumes exist for every host)', async () => {
    expect(await call(hostA, 'Plugin.Activate')).toEqual({ Implements: ['VolumeDriver'], Err: '' });
    expect(await call(hostA, 'VolumeDriver.Capabilities')).toEqual({ Capabilities: { Scope: 'global' }, Err: '' });
  }, TEST_TIMEOUT_MS);

  it('creates a volume with options, lists and inspects it, and creating it again is a no-op', async () => {
    await call(hostA, 'VolumeDriver.Create', { Name: 'journal', Opts: { size: '2G', sharing: 'onewriter' } });
    expect(await exists(onServer('journal', 'data'))).toBe(true);
    const { Volume } = await call(hostB, 'VolumeDriver.Get', { Name: 'journal' });
    expect(Volume).toMatchObject({ Name: 'journal', Mountpoint: '', Status: { volumeId: 'box/journal', backend: 'box', sizeBytes: 2 * 2 ** 30, sharing: 'onewriter', onDelete: 'delete', hosts: [] } });
    const { Volumes } = await call(hostB, 'VolumeDriver.List');
    expect((Volumes as { Name: string }[]).map((v) => v.Name)).toContain('journal');
    await call(hostB, 'VolumeDriver.Create', { Name: 'journal', Opts: null }); // `docker run -v journal:/data` on another host
    await call(hostB, 'VolumeDriver.Create', { Name: 'journal', Opts: { sharing: 'onewriter' } });
  }, TEST_TIMEOUT_MS);

  it.each<[string, object, string]>([
    ['another size', { Name: 'journal', Opts: { size: '5G' } }, 'volume journal already exists with size 2147483648 bytes; remove it first or create it with those options'],
    ['another sharing mode', { Name: 'journal', Opts: { sharing: 'all' } }, 'already exists with sharing onewriter'],
    ['an option that runs programs', { Name: 'x1', Opts: { ssh_command: 'touch /tmp/pwned' } }, 'unknown option "ssh_command"'],
    ['a backend that is not configured', { Name: 'x2', Opts: { backend: 'nas' } }, 'backend="nas" names no configured backend; configured: box'],
    ['a name Docker would not make', { Name: '../etc', Opts: {} }, 'is not a valid volume name'],
    ['no name', { Opts: {} }, 'is not a valid volume name'],
  ])('refuses a Create with %s, saying why', async (_, body, message) => {
    expect(await refused(hostA, 'VolumeDriver.Create', body)).toContain(message);
    expect(await exists(onServer('x1'))).toBe(false);
  }, TEST_TIMEOUT_MS);

  it('mounts it for a container, which writes as uid 1000; the same mount ID again is the same mount', async () => {
    const { Mountpoint } = await call(hostA, 'VolumeDriver.Mount', { Name: 'journal', ID: 'mount-1' });
    expect(Mountpoint).toBe(join(hostA.mountRoot, 'box', 'journal', 'data'));
    expect(await isMounted(join(hostA.mountRoot, 'box', 'journal'))).toBe(true);
    const wrote = await asUser('echo "line 1" >> "$1/log" && id -u', Mountpoint as string);
    expect(wrote).toMatchObject({ exitCode: 0, stdout: '1000' });
    expect(await execa('cat', [onServer('journal', 'data', 'log')]).then((r) => r.stdout)).toBe('line 1');
    // Docker mounts again with the same ID after a daemon restart: idempotent.
    expect(await call(hostA, 'VolumeDriver.Mount', { Name: 'journal', ID: 'mount-1' })).toMatchObject({ Mountpoint });
    expect(await call(hostA, 'VolumeDriver.Path', { Name: 'journal' })).toMatchObject({ Mountpoint });
    expect(await call(hostB, 'VolumeDriver.Path', { Name: 'journal' })).toMatchObject({ Mountpoint: '' });
    const { Volume } = await call(hostB, 'VolumeDriver.Get', { Name: 'journal' });
    expect(Volume).toMatchObject({ Status: { hosts: ['host-a'], writerLease: [{ host: 'host-a' }] } });
  }, TEST_TIMEOUT_MS);

  it('refuses to remove it while host-a uses it — from host-a and from host-b, naming host-a', async () => {
    expect(await refused(hostA, 'VolumeDriver.Remove', { Name: 'journal' })).toBe('volume journal is in use on this host (host-a) by a container: stop it first');
    expect(await refused(hostB, 'VolumeDriver.Remove', { Name: 'journal' })).toMatch(/^volume journal is in use on host host-a and its sharing mode onewriter allows one host at a time: stop the containers using it there first \(docker ps --filter volume=journal\)/);
    expect(await exists(onServer('journal', 'data', 'log'))).toBe(true);
  }, TEST_TIMEOUT_MS);

  it("makes host-b's Mount wait its bounded time, then fail naming host-a and what to do", async () => {
    const started = Date.now();
    const err = await refused(hostB, 'VolumeDriver.Mount', { Name: 'journal', ID: 'b-1' });
    expect(Date.now() - started).toBeGreaterThanOrEqual((MOUNT_WAIT_S - 1) * 1000);
    expect(err).toMatch(/^volume journal is in use on host host-a and its sharing mode onewriter allows one host at a time: stop the containers using it there first .*; if host-a is down, another host can take the volume over once host-a's writer lease has gone 20 s without renewal .*; waited 3 s for it to be let go$/);
    expect(await mountsUnder(hostB.mountRoot)).toEqual([]);
  }, TEST_TIMEOUT_MS);

  it('unmounts when the last container goes, letting go of the volume for every host', async () => {
    await call(hostA, 'VolumeDriver.Unmount', { Name: 'journal', ID: 'mount-1' });
    expect(await mountsUnder(hostA.mountRoot)).toEqual([]);
    expect(await exists(join(hostA.mountRoot, 'box', 'journal'))).toBe(false); // its empty directory goes too
    const record = await recordOn(onServer('journal'));
    expect(record).toMatchObject({ claims: [], leases: [] });
    await call(hostA, 'VolumeDriver.Unmount', { Name: 'journal', ID: 'mount-1' }); // again: nothing to do
  }, TEST_TIMEOUT_MS);

  it("lets host-b's waiting Mount through as soon as host-a's last container stops", async () => {
    await call(hostA, 'VolumeDriver.Mount', { Name: 'journal', ID: 'a-2' });
    const waiting = dockerCall(hostB.socket, '/VolumeDriver.Mount', { Name: 'journal', ID: 'b-2' });
    await new Promise((r) => setTimeout(r, 1000));
    await call(hostA, 'VolumeDriver.Unmount', { Name: 'journal', ID: 'a-2' });
    const { reply } = await waiting;
    expect(reply).toMatchObject({ Err: '', Mountpoint: join(hostB.mountRoot, 'box', 'journal', 'data') });
    expect(await execa('cat', [join(reply.Mountpoint as string, 'log')]).then((r) => r.stdout)).toBe('line 1');
    await call(hostB, 'VolumeDriver.Unmount', { Name: 'journal', ID: 'b-2' });
  }, TEST_TIMEOUT_MS);

  it('removes it once no host uses it (onDelete=delete: the data goes)', async () => {
    await call(hostB, 'VolumeDriver.Remove', { Name: 'journal' });
    expect(await exists(onServer('journal'))).toBe(false);
    expect(await refused(hostA, 'VolumeDriver.Get', { Name: 'journal' })).toBe("volume journal does not exist on any of tether's backends");
    await call(hostA, 'VolumeDriver.Remove', { Name: 'journal' }); // again: nothing to do
  }, TEST_TIMEOUT_MS);
});

describe('containers on one host', () => {
  it('onewriter: two containers on one host share it; it stays mounted until the second stops', async () => {
    await call(hostA, 'VolumeDriver.Create', { Name: 'shared', Opts: {} });
    const { Mountpoint } = await call(hostA, 'VolumeDriver.Mount', { Name: 'shared', ID: 'c1' });
    await call(hostA, 'VolumeDriver.Mount', { Name: 'shared', ID: 'c2' });
    await call(hostA, 'VolumeDriver.Unmount', { Name: 'shared', ID: 'c1' });
    expect(await isMounted(join(hostA.mountRoot, 'box', 'shared'))).toBe(true);
    expect(await asUser('echo two > "$1/two"', Mountpoint as string)).toMatchObject({ exitCode: 0 });
    await call(hostA, 'VolumeDriver.Unmount', { Name: 'shared', ID: 'c2' });
    expect(await mountsUnder(hostA.mountRoot)).toEqual([]);
  }, TEST_TIMEOUT_MS);

  it("onewriterpod: a second container waits for the first, here too, then fails naming 'another container on this host'", async () => {
    await call(hostA, 'VolumeDriver.Create', { Name: 'solo', Opts: { sharing: 'onewriterpod' } });
    const { Mountpoint } = await call(hostA, 'VolumeDriver.Mount', { Name: 'solo', ID: 'first' });
    const held = await container(Mountpoint as string); // the first container really uses it
    expect(await refused(hostA, 'VolumeDriver.Mount', { Name: 'solo', ID: 'second' })).toBe(
      'volume solo is in use by another container on this host (host-a) and its sharing mode onewriterpod allows one container at a time: stop it first; waited 3 s for it to be let go',
    );
    const waiting = dockerCall(hostA.socket, '/VolumeDriver.Mount', { Name: 'solo', ID: 'second' });
    await new Promise((r) => setTimeout(r, 500));
    await stopContainer(held);
    await call(hostA, 'VolumeDriver.Unmount', { Name: 'solo', ID: 'first' });
    expect((await waiting).reply).toMatchObject({ Err: '', Mountpoint });
    await call(hostA, 'VolumeDriver.Unmount', { Name: 'solo', ID: 'second' });
  }, TEST_TIMEOUT_MS);
});

describe('what Docker forgets: restarts of the daemon and of the plugin', () => {
  it('a mount ID Docker never unmounts (its container died in a daemon restart) is dropped once no container uses the volume', async () => {
    await call(hostA, 'VolumeDriver.Create', { Name: 'orphaned', Opts: {} });
    const { Mountpoint } = await call(hostA, 'VolumeDriver.Mount', { Name: 'orphaned', ID: 'dead' });
    const held = await container(Mountpoint as string);
    await new Promise((r) => setTimeout(r, (STRAY_S + 1) * 1000));
    await call(hostA, 'Plugin.Activate'); // dockerd restarted: the plugin looks
    await new Promise((r) => setTimeout(r, 500));
    expect(await isMounted(join(hostA.mountRoot, 'box', 'orphaned'))).toBe(true); // a container still uses it
    await stopContainer(held); // the daemon restart killed it, and sent no Unmount
    await call(hostA, 'Plugin.Activate');
    await waitFor(async () => !(await isMounted(join(hostA.mountRoot, 'box', 'orphaned'))), 10_000);
    expect(await recordOn(onServer('orphaned'))).toMatchObject({ claims: [], leases: [] });
    await call(hostB, 'VolumeDriver.Mount', { Name: 'orphaned', ID: 'b' }); // the next host is not blocked
    await call(hostB, 'VolumeDriver.Unmount', { Name: 'orphaned', ID: 'b' });
  }, TEST_TIMEOUT_MS);

  it('a plugin killed while a container uses a volume keeps its mount, and knows it after a restart', async () => {
    await call(hostA, 'VolumeDriver.Create', { Name: 'survivor', Opts: {} });
    const { Mountpoint } = await call(hostA, 'VolumeDriver.Mount', { Name: 'survivor', ID: 'live' });
    const held = await container(Mountpoint as string);
    hostA.driver.process.kill('SIGKILL');
    await hostA.driver.process;
    hostA = await startHost('host-a');
    expect(await call(hostA, 'VolumeDriver.Path', { Name: 'survivor' })).toMatchObject({ Mountpoint });
    expect(await asUser('echo after > "$1/after"', Mountpoint as string)).toMatchObject({ exitCode: 0 });
    expect(await refused(hostB, 'VolumeDriver.Mount', { Name: 'survivor', ID: 'b' })).toContain('in use on host host-a');
    await stopContainer(held);
    await call(hostA, 'VolumeDriver.Unmount', { Name: 'survivor', ID: 'live' });
    expect(await mountsUnder(hostA.mountRoot)).toEqual([]);
  }, 2 * TEST_TIMEOUT_MS);
});

describe('a misbehaving caller gets an answer, never a crash', () => {
  it.each<[string, string, string, string | object, number, string]>([
    ['a GET', 'GET', '/VolumeDriver.List', '', 404, "has no GET /VolumeDriver.List: it answers POST"],
    ['an unknown call', 'POST', '/VolumeDriver.Snapshot', {}, 404, 'has no POST /VolumeDriver.Snapshot'],
    ['a body that is not JSON', 'POST', '/VolumeDriver.Create', '{"Name": ', 200, 'the request body is not JSON'],
    ['a JSON array', 'POST', '/VolumeDriver.Get', '[1,2]', 200, 'the request body must be a JSON object'],
    ['a body of a megabyte', 'POST', '/VolumeDriver.Create', JSON.stringify({ Name: 'big', Opts: { x: 'y'.repeat(1 << 20) } }), 200, 'the request body is over 65536 bytes'],
    ['a Mount with no ID', 'POST', '/VolumeDriver.Mount', { Name: 'survivor' }, 200, 'Mount needs the mount ID Docker sends (ID)'],
    ['a Get of a name with a slash', 'POST', '/VolumeDriver.Get', { Name: 'box/survivor' }, 200, 'is not a valid volume name'],
  ])('%s', async (_, method, path, body, status, message) => {
    const { status: got, reply } = await dockerCall(hostA.socket, path, body, method);
    expect(got).toBe(status);
    expect(reply.Err).toContain(message);
    expect(await call(hostA, 'VolumeDriver.Capabilities')).toMatchObject({ Capabilities: { Scope: 'global' } });
  }, TEST_TIMEOUT_MS);

  it('a second plugin on the same socket does not start (one per host)', async () => {
    const second = startDriver(server, { mode: 'docker', nodeId: 'host-a', extraArgs: ['--endpoint', `unix://${hostA.socket}`] });
    await expect(second).rejects.toThrow(/another process serves .*: one tether Docker plugin per host/);
    expect(await call(hostA, 'VolumeDriver.Capabilities')).toMatchObject({ Capabilities: { Scope: 'global' } });
  }, TEST_TIMEOUT_MS);

  it('a backend that does not answer: Create and List fail with one line naming the server (never a stack), and the plugin answers on', async () => {
    const port = await freePort(); // nobody listens there
    const down = await startDriverWith([{ ...backendConfig(server), port }], { mode: 'docker', nodeId: 'host-c', extraArgs: ['--docker-mount-root', join(work, 'host-c', 'volumes')] });
    try {
      for (const [verb, body] of [['VolumeDriver.Create', { Name: 'nowhere' }], ['VolumeDriver.List', {}]] as const) {
        const err = await dockerErr(down.socket, verb, body);
        expect(err).toMatch(new RegExp(`cannot reach SSH server .*:${port}`));
        expect(err).not.toMatch(/\n|\bat .*\.js:\d+/);
      }
      expect(down.logs()).toMatch(/"code":"UNAVAILABLE"/);
      expect(down.logs()).not.toMatch(/"code":"INTERNAL"/);
      expect(await dockerOk(down.socket, 'VolumeDriver.Capabilities', {})).toMatchObject({ Capabilities: { Scope: 'global' } });
    } finally {
      await down.stop();
    }
  }, TEST_TIMEOUT_MS);

  it('the socket is root-only, and the noted mounts are not readable by others', async () => {
    expect((await stat(hostA.socket)).mode & 0o777).toBe(0o600);
    const notes = join(work, 'host-a', 'run', 'docker-mounts');
    expect((await stat(notes)).mode & 0o777).toBe(0o700);
    expect(await readdir(notes)).toEqual([]);
  }, TEST_TIMEOUT_MS);
});

async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 200));
  }
}
