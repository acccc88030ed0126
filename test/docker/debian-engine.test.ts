// Debian's own Docker engine (docker.io 20.10, with Debian's containerd and runc) and tether's Docker
// plugin: the legacy volume plugin protocol, which that engine speaks (it has no Swarm cluster
// volumes), end to end — create with options, a container writing as uid 1000, another reading,
// ls and inspect, rm. The engine runs in a network namespace of the test's own, as the others do.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SshServer } from '../support/sshd.js';
import { mountsUnder } from '../support/helpers.js';
import { DockerHost, startLoneHost } from './engine.js';

const STEP_MS = 120_000;

let server: SshServer;
let host: DockerHost;
let image: string;
let teardown: (() => Promise<void>) | undefined;
const driver = `tether-deb${process.pid}`;
const docker = (...args: string[]) => host.docker(args).then((r) => String(r.stdout).trim());

beforeAll(async () => {
  ({ host, server, image, teardown } = await startLoneHost('debian', { pluginName: driver, engine: 'debian' }));
}, STEP_MS);

afterAll(async () => {
  await teardown?.();
}, STEP_MS);

describe("Debian's docker.io engine", () => {
  it('is 20.10, with no cluster volumes: the legacy protocol only', async () => {
    expect(await docker('version', '--format', '{{.Server.Version}} {{.Server.APIVersion}}')).toMatch(/^20\.10\.\d+\S* 1\.41$/);
  }, STEP_MS);

  it('creates a tether volume, a container writes to it as uid 1000, the next reads it; ls, inspect, rm', async () => {
    expect(await docker('volume', 'create', '-d', driver, '-o', 'size=1G', '-o', 'sharing=onewriter', 'journal')).toBe('journal');
    await docker('run', '--rm', '--network', 'none', '-u', '1000:1000', '-v', 'journal:/data', image, 'sh', '-c', 'echo "from docker.io" >> /data/log');
    expect(await docker('run', '--rm', '--network', 'none', '-v', 'journal:/data', image, 'cat', '/data/log')).toBe('from docker.io');
    expect(await readFile(join(server.root, 'journal', 'data', 'log'), 'utf8')).toBe('from docker.io\n');
    expect(await docker('volume', 'ls', '--filter', `driver=${driver}`, '--format', '{{.Name}}')).toBe('journal');
    const [inspect] = JSON.parse(await docker('volume', 'inspect', 'journal')) as { Scope: string; Status: Record<string, unknown> }[];
    expect(inspect).toMatchObject({ Scope: 'global', Status: { sharing: 'onewriter', sizeBytes: 2 ** 30 } });
    expect(await mountsUnder(host.mountRoot, 'fuse.sshfs')).toEqual([]);
    expect(await docker('volume', 'rm', 'journal')).toBe('journal');
    expect(await docker('volume', 'ls', '--filter', `driver=${driver}`, '--format', '{{.Name}}')).toBe('');
  }, STEP_MS);
});
