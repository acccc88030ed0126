// Docker Swarm cluster volumes through tether as a managed CSI plugin, on a real two-node swarm:
// two engines built from their Go module, each in a network namespace of its own (their addresses
// reach each other through the storage server's namespace), a real sshd as the backend. The plugin
// is made with `docker plugin create` from a rootfs of tether's image and examples/swarm-plugin/config.json.
// A service writing to a onewriter cluster volume keeps a second service off it, and when drained off
// the worker it moves to the manager,
// the data follows, and no line of the worker's lands after the manager's first. Then, during a move,
// the worker's link to the server is cut mid-write: the manager gets the volume only once the worker's
// writer lease has gone a full term unrenewed, and none of the worker's late writes lands after the
// manager's (the partition test's checker).
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path, { join } from 'node:path';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { startSshServer, type SshServer } from '../support/sshd.js';
import { DRIVER_MAIN } from '../support/driver.js';
import { mountsUnder, unmountLeftovers } from '../support/helpers.js';
import { makeNetLab, type NetLab } from '../partition/netlab.js';
import { durableRecords, verifyRound } from '../partition/verify.js';
import { dockerBin, DockerHost, eventually as pollUntil, loadImage } from './engine.js';

const STEP_MS = 240_000;
const HOOK_MS = 300_000;
const LEASE = { termSeconds: 6, renewSeconds: 1, fenceMarginSeconds: 2 };
const PLUGIN = 'tether-csi:latest';
const REPO = path.resolve(path.dirname(DRIVER_MAIN), '../..');
const WRITER = join(REPO, 'dist/test/partition');

let lab: NetLab;
let server: SshServer;
let work: string;
let manager: DockerHost;
let worker: DockerHost;
let image: string;
let workerId: string;

const run = (host: DockerHost, ...args: string[]) => host.docker(args).then((r) => String(r.stdout).trim());
const onServer = (...parts: string[]) => join(server.root, ...parts);
const read = (file: string) => readFile(file, 'utf8').catch(() => '');
/** What tether's plugin logged on a node: its lines, as the engine logs a plugin's output. */
const pluginLog = async (host: DockerHost) => (await host.log('dockerd')).split('\n').filter((l) => l.includes('plugin=')).join('\n').replace(/\\"/g, '"');
const calls = async (host: DockerHost, method: string, code: string) => ((await pluginLog(host)).match(new RegExp(`"method":"${method}"[^\\n]*?"code":"${code}"`, 'g')) ?? []).length;

/** Polls `check`; on failure, shows the services' tasks and both plugins' last lines. */
const eventually = (check: () => Promise<boolean>, timeoutMs: number, what: string) =>
  pollUntil(check, timeoutMs, what, async () => {
    const tasks = await manager.docker(['service', 'ps', '--no-trunc', '--format', '{{.Name}} {{.Node}} {{.CurrentState}} {{.Error}}', 'writer', 'fenced'], { reject: false });
    return `--- tasks\n${String(tasks.stdout)}\n--- manager's plugin\n${(await pluginLog(manager)).slice(-3000)}\n--- worker's plugin\n${(await pluginLog(worker)).slice(-3000)}`;
  });

/** A node's config directory for the plugin (mounted at /etc/tether): config.yaml and the key it names. */
async function pluginConfig(name: string): Promise<string> {
  const dir = join(work, name, 'etc');
  await mkdir(dir, { recursive: true });
  await copyFile(server.clientKeyFile, join(dir, 'box.key'));
  await chmod(join(dir, 'box.key'), 0o600);
  const backend = { name: 'box', type: 'sshfs', host: server.host, port: server.port, user: server.user, path: server.root, hostKey: server.hostKey, privateKeyFile: '/etc/tether/box.key', mountOptions: ['ServerAliveInterval=2', 'ServerAliveCountMax=2'] };
  await writeFile(join(dir, 'config.yaml'), stringify({ lease: LEASE, releaseIdleAfterSeconds: 5, backends: [backend] }));
  return dir;
}

async function installPlugin(host: DockerHost, pluginDir: string): Promise<void> {
  const name = host.options.name;
  const state = join(host.options.runDir, 'tether');
  await mkdir(state, { recursive: true });
  await run(host, 'plugin', 'create', PLUGIN, pluginDir);
  await run(host, 'plugin', 'set', PLUGIN, `NODE_ID=${name}`, 'LOG_LEVEL=debug', `config.source=${await pluginConfig(name)}`, `state.source=${state}`);
  await run(host, 'plugin', 'enable', PLUGIN);
}

/**
 * The service's command: on the worker writer A (buffered, fsync every 5 records, until it fails),
 * elsewhere writer B (40 records, each fsynced), which then idles: a task that ended would be started
 * again, and one whose restart condition is none is not moved off a drained node either.
 */
const writerScript = (volume: string) =>
  `if [ "$NODE" = "${workerId}" ]; then exec node /w/writer.js /data/f A fsync5 0 /p/${volume}-A; else node /w/writer.js /data/f B fsync1 40 /p/${volume}-B && exec sleep 3600; fi`;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tether-swarm-'));
  await mkdir(join(work, 'progress'));
  lab = await makeNetLab(['swarm1', 'swarm2'], { hostsMeet: true });
  server = await startSshServer({ netns: { name: lab.server.netns!, host: lab.server.address }, port: 2222 });
  const host = (name: string) => new DockerHost({ name, netns: lab.hosts[name]!, dir: join(work, name), runDir: `/run/tether-sw-${process.pid}-${name.slice(-1)}`, pluginName: '', backends: [] });
  [manager, worker] = [host('swarm1'), host('swarm2')];
  await Promise.all([manager.start(), worker.start()]);
  [image] = await Promise.all([loadImage(manager, process.env.TETHER_IMAGE_TAR ?? ''), loadImage(worker, process.env.TETHER_IMAGE_TAR ?? '')]);
  const pluginDir = join(work, 'plugin');
  await execa('bash', [join(REPO, 'examples/swarm-plugin/make-plugin.sh'), image, pluginDir], { env: { DOCKER: `${join(dockerBin(), 'docker')} -H unix://${manager.socket}` } });
  await Promise.all([installPlugin(manager, pluginDir), installPlugin(worker, pluginDir)]);
  await run(manager, 'swarm', 'init', '--advertise-addr', lab.addresses.swarm1!, '--listen-addr', `${lab.addresses.swarm1}:2377`);
  const token = await run(manager, 'swarm', 'join-token', '-q', 'worker');
  await run(worker, 'swarm', 'join', '--token', token, '--advertise-addr', lab.addresses.swarm2!, '--listen-addr', `${lab.addresses.swarm2}:2377`, `${lab.addresses.swarm1}:2377`);
  workerId = await run(manager, 'node', 'ls', '--filter', 'role=worker', '-q');
  // Each node tells the managers its CSI node ID (NodeGetInfo) before a volume can be published to it.
  await eventually(async () => (await run(manager, 'node', 'inspect', '--format', '{{len .Description.CSIInfo}}', 'self', workerId)) === '1\n1', 60_000, 'both nodes report their CSI node IDs');
}, HOOK_MS);

afterAll(async () => {
  await lab?.heal('swarm2').catch(() => undefined);
  if (manager) {
    await manager.docker(['service', 'rm', 'writer', 'second', 'fenced'], { reject: false });
    await new Promise((r) => setTimeout(r, 3000));
    for (const v of ['journal', 'fenced']) await manager.docker(['volume', 'rm', '-f', v], { reject: false });
  }
  for (const host of [worker, manager]) {
    if (!host) continue;
    await host.docker(['swarm', 'leave', '--force'], { reject: false });
    await host.docker(['plugin', 'disable', '-f', PLUGIN], { reject: false });
    await host.stop().catch(() => undefined);
  }
  await server?.stop();
  await lab?.destroy();
  if (work) await unmountLeftovers(work);
  for (const n of ['1', '2']) await unmountLeftovers(`/run/tether-sw-${process.pid}-${n}`);
  for (const n of ['1', '2']) await rm(`/run/tether-sw-${process.pid}-${n}`, { recursive: true, force: true });
  if (work && !(await mountsUnder(work)).length) await rm(work, { recursive: true, force: true });
}, HOOK_MS);

describe('a Swarm service on a onewriter cluster volume', () => {
  it('runs on the worker and writes through tether', async () => {
    await run(manager, 'volume', 'create', '--driver', PLUGIN, '--type', 'mount', '--scope', 'single', '--sharing', 'onewriter', '--availability', 'active', '--required-bytes', '1G', 'journal');
    await run(manager, 'service', 'create', '--detach', '--quiet', '--no-resolve-image', '--name', 'writer', '--constraint', 'node.role==worker', '--env', 'NODE={{.Node.ID}}',
      '--mount', 'type=cluster,src=journal,dst=/data', '--entrypoint', 'sh', image, '-c', 'while true; do echo "$NODE $(date +%s)" >> /data/log; sleep 0.2; done');
    await eventually(async () => (await read(onServer('journal', 'data', 'log'))).includes(workerId), 90_000, 'the worker writes');
    expect(await calls(manager, 'ControllerPublishVolume', 'OK')).toBeGreaterThanOrEqual(1);
    expect(await calls(worker, 'NodeStageVolume', 'OK')).toBeGreaterThanOrEqual(1);
  }, STEP_MS);

  it('keeps a second service on the volume from running while the first holds it (onewriter)', async () => {
    await run(manager, 'service', 'create', '--detach', '--quiet', '--no-resolve-image', '--name', 'second', '--constraint', 'node.role==manager',
      '--mount', 'type=cluster,src=journal,dst=/data', '--entrypoint', 'sh', image, '-c', 'echo second >> /data/log; sleep 600');
    await new Promise((r) => setTimeout(r, 15_000));
    const states = await run(manager, 'service', 'ps', '--format', '{{.CurrentState}} {{.Error}}', 'second');
    expect(states).not.toMatch(/Running/);
    expect(await read(onServer('journal', 'data', 'log'))).not.toContain('second');
    console.log(`swarm: a second service on the onewriter volume: ${states.split('\n')[0]}`);
    await run(manager, 'service', 'rm', 'second');
  }, STEP_MS);

  it('moves to the manager when the worker is drained; the data follows, and the two never write at once', async () => {
    await run(manager, 'service', 'update', '--detach', '--quiet', '--no-resolve-image', '--constraint-rm', 'node.role==worker', 'writer');
    await run(manager, 'node', 'update', '--availability', 'drain', workerId);
    const managerId = await run(manager, 'node', 'inspect', '--format', '{{.ID}}', 'self');
    await eventually(async () => (await read(onServer('journal', 'data', 'log'))).includes(managerId), 120_000, 'the manager writes');
    const lines = (await read(onServer('journal', 'data', 'log'))).trimEnd().split('\n');
    const firstManager = lines.findIndex((l) => l.startsWith(managerId));
    expect(lines.slice(firstManager).filter((l) => l.startsWith(workerId))).toEqual([]); // no line of the worker's after the manager's first
    expect(lines.slice(0, firstManager).length).toBeGreaterThan(0);
    const refusals = await calls(manager, 'ControllerPublishVolume', 'FAILED_PRECONDITION');
    console.log(`swarm: drained; the manager's first line came after ${firstManager} of the worker's; ControllerPublish to the manager refused ${refusals} time(s) while the worker held the volume`);
  }, STEP_MS);

  it("with the worker cut off from the server mid-write during a move, none of its late writes lands after the manager's", async () => {
    await run(manager, 'service', 'rm', 'writer');
    await run(manager, 'node', 'update', '--availability', 'active', workerId);
    await run(manager, 'volume', 'create', '--driver', PLUGIN, '--type', 'mount', '--scope', 'single', '--sharing', 'onewriter', '--availability', 'active', 'fenced');
    await run(manager, 'service', 'create', '--detach', '--quiet', '--no-resolve-image', '--name', 'fenced', '--constraint', 'node.role==worker', '--env', 'NODE={{.Node.ID}}',
      '--mount', 'type=cluster,src=fenced,dst=/data', '--mount', `type=bind,src=${WRITER},dst=/w,readonly`, '--mount', `type=bind,src=${join(work, 'progress')},dst=/p`, '--entrypoint', 'sh', image, '-c', writerScript('fenced'));
    await eventually(async () => durableRecords(await read(join(work, 'progress', 'fenced-A'))).size >= 50, 90_000, 'the worker writes');
    await lab.cut('swarm2');
    const cutAt = Date.now();
    await run(manager, 'service', 'update', '--detach', '--quiet', '--no-resolve-image', '--constraint-rm', 'node.role==worker', 'fenced');
    await run(manager, 'node', 'update', '--availability', 'drain', workerId);
    await eventually(async () => durableRecords(await read(join(work, 'progress', 'fenced-B'))).size >= 40, 180_000, "the manager's writer finishes");
    const tookMs = Date.now() - cutAt;
    await lab.heal('swarm2'); // anything the worker still held back would land now
    await new Promise((r) => setTimeout(r, 3000));
    const durableA = durableRecords(await read(join(work, 'progress', 'fenced-A')));
    expect(verifyRound(await read(onServer('fenced', 'data', 'f')), durableA, 40)).toEqual([]);
    expect(tookMs).toBeGreaterThanOrEqual(LEASE.termSeconds * 1000);
    const workerLog = await pluginLog(worker);
    expect(workerLog).toMatch(/"event":"fence"/); // the worker fenced itself, completely:
    expect(workerLog).not.toMatch(/weaker than asked|"event":"weak-fence"/); // the plugin has the capabilities a fence needs
    console.log(`swarm: the manager's writer finished ${tookMs} ms after the worker's link was cut (lease term ${LEASE.termSeconds} s); the worker had ${durableA.size} durable records`);
  }, STEP_MS);
});
