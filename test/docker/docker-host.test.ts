// A Docker user's story on one host, against a real Docker engine (built from its Go module) with
// tether's Docker plugin on the same host, and a real sshd as the backend in another network
// namespace: `docker volume create -d tether`, `docker run -v` as a non-root user, ls, inspect, rm
// refused while a container uses the volume, a Compose-style named volume reused by one container
// after another, and a daemon crash with a running container — after which the plugin finds out by
// itself that Docker will never unmount the dead container's volume, and nothing stays mounted.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SshServer } from '../support/sshd.js';
import { mountsUnder, recordOn } from '../support/helpers.js';
import { DockerHost, eventually as pollUntil, startLoneHost } from './engine.js';

const STEP_MS = 120_000;
const HOOK_MS = 180_000;
/** Short, so that the test sees the plugin drop a dead container's mount ID: production's is 60 s. */
const STRAY_S = 3;

let server: SshServer;
let host: DockerHost;
let image: string;
let teardown: (() => Promise<void>) | undefined;
const driver = `tether-t${process.pid}`;

const docker = (...args: string[]) => host.docker(args).then((r) => String(r.stdout).trim());
const dockerFails = async (...args: string[]) => {
  const r = await host.docker(args, { reject: false });
  if (r.exitCode === 0) throw new Error(`docker ${args.join(' ')} was expected to fail, but printed ${String(r.stdout)}`);
  return String(r.stderr);
};
const onServer = (...parts: string[]) => join(server.root, ...parts);
const tetherMounts = () => mountsUnder(host.mountRoot, 'fuse.sshfs');

/** Polls `check`; on failure, shows the plugin's last lines. */
const eventually = (check: () => Promise<boolean>, timeoutMs: number, what: string) => pollUntil(check, timeoutMs, what, () => `--- plugin log (last lines)\n${host.pluginLog().slice(-3000)}`);

beforeAll(async () => {
  ({ host, server, image, teardown } = await startLoneHost('docker1', { pluginName: driver, pluginConfig: { dockerStrayMountSeconds: STRAY_S } }));
}, HOOK_MS);

afterAll(async () => {
  await teardown?.();
}, HOOK_MS);

describe('a named volume on one Docker host', () => {
  it('is created with `docker volume create -d`, listed and inspected', async () => {
    expect(await docker('volume', 'create', '-d', driver, '-o', 'size=1G', 'journal')).toBe('journal');
    expect(await docker('volume', 'ls', '--format', '{{.Driver}} {{.Name}}')).toContain(`${driver} journal`);
    const [inspect] = JSON.parse(await docker('volume', 'inspect', 'journal')) as { Driver: string; Scope: string; Status: Record<string, unknown> }[];
    expect(inspect).toMatchObject({ Driver: driver, Scope: 'global', Status: { backend: 'box', sizeBytes: 2 ** 30, sharing: 'onewriter', volumeId: 'box/journal' } });
    expect(await recordOn(onServer('journal'))).toMatchObject({ name: 'journal', capacityBytes: 2 ** 30, parameters: { dockerSharing: 'onewriter' } });
  }, STEP_MS);

  it('is written by a container running as uid 1000, and the data is on the server', async () => {
    const out = await docker('run', '--rm', '--network', 'none', '-u', '1000:1000', '-v', 'journal:/data', image, 'sh', '-c', 'echo "first line" >> /data/log && id -u');
    expect(out).toBe('1000');
    expect(await readFile(onServer('journal', 'data', 'log'), 'utf8')).toBe('first line\n');
    expect(await tetherMounts()).toEqual([]); // the container is gone: so is the mount
  }, STEP_MS);

  it('cannot be removed while a container uses it, and the data stays', async () => {
    await docker('run', '-d', '--name', 'writer', '--network', 'none', '-v', 'journal:/data', image, 'sh', '-c', 'while true; do echo tick >> /data/ticks; sleep 0.2; done');
    expect(await dockerFails('volume', 'rm', 'journal')).toMatch(/volume is in use/);
    expect(await readFile(onServer('journal', 'data', 'log'), 'utf8')).toBe('first line\n');
    await docker('rm', '-f', 'writer');
    await eventually(async () => (await tetherMounts()).length === 0, 10_000, 'the mount goes with the last container');
  }, STEP_MS);

  it('is reused by one container after another, as Compose does with a named volume', async () => {
    await docker('run', '--rm', '--network', 'none', '-v', 'journal:/data', image, 'sh', '-c', 'echo "second container" >> /data/log');
    const read = await docker('run', '--rm', '--network', 'none', '-v', 'journal:/data:ro', image, 'cat', '/data/log');
    expect(read).toBe('first line\nsecond container');
  }, STEP_MS);

  it('outlives an engine crash: a restarted container mounts it again, a dead one is let go of by the plugin', async () => {
    await docker('run', '-d', '--name', 'keeper', '--restart', 'always', '--network', 'none', '-v', 'journal:/data', image, 'sh', '-c', 'while true; do echo k >> /data/keeper; sleep 0.2; done');
    await docker('run', '-d', '--name', 'dies', '--network', 'none', '-v', 'journal:/data', image, 'sleep', '600');
    await host.killDockerd(); // its containers run on, under containerd
    await host.startDockerd();
    // The engine stops the containers it finds running (no live-restore) and restarts "keeper": Mount again, with the same mount ID.
    await eventually(async () => (await docker('inspect', '-f', '{{.State.Running}}', 'keeper')) === 'true', 60_000, 'keeper runs again');
    const before = (await readFile(onServer('journal', 'data', 'keeper'), 'utf8')).length;
    await eventually(async () => (await readFile(onServer('journal', 'data', 'keeper'), 'utf8')).length > before, 10_000, 'keeper writes again');
    expect(await docker('inspect', '-f', '{{.State.Running}}', 'dies')).toBe('false'); // and no Unmount was ever sent for it
    await docker('rm', '-f', 'keeper', 'dies');
    // Docker unmounted keeper's mount ID only: the plugin drops the dead container's once no container uses the volume.
    await eventually(async () => (await tetherMounts()).length === 0, (STRAY_S + 10) * 1000, 'nothing stays mounted');
    expect(await recordOn(onServer('journal'))).toMatchObject({ claims: [], leases: [] });
    expect(host.pluginLog()).toContain('dropped mount IDs Docker will not unmount');
  }, STEP_MS);

  it('is removed with `docker volume rm` once unused (onDelete=delete: the data goes)', async () => {
    await docker('volume', 'rm', 'journal');
    expect(await docker('volume', 'ls', '-q', '--filter', `driver=${driver}`)).not.toContain('journal');
    await expect(readFile(onServer('journal', 'data', 'log'))).rejects.toThrow(/ENOENT/);
  }, STEP_MS);
});
