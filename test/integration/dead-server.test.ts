// "The server dies at 3 a.m.": a volume is created, staged and published (driver --mode all, real
// sshd, real sshfs), then its SSH server is killed (a) or frozen with SIGSTOP (b). The node must keep
// answering: NodeGetVolumeStats reports the volume abnormal within seconds, Probe stays fast, other
// volumes are not held up, and NodeUnpublish/NodeUnstage finish in bounded time without touching the data.
//
// Nothing in this process touches a dead mount directly: every check of a mount path runs as an
// external command with a timeout (findmnt, cat), so a hung FUSE request can never wedge the test.
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { startSshServer, type SshServer } from '../support/sshd.js';
import { backendConfig, startDriver, type RunningDriver } from '../support/driver.js';
import { csiClient, type CsiClient } from '../support/csi-client.js';
import { cat, isMounted, mountCap, mountsUnder, recordOn, tearDown, timed } from '../support/helpers.js';

/** The bound asked of NodeUnpublishVolume and NodeUnstageVolume on a dead or hung server. */
const TEARDOWN_BOUND_MS = 40_000;
/** "within ~10 s": NodeGetVolumeStats must report a dead or hung server this fast. */
const STATS_BOUND_MS = 10_000;
const PROBE_BOUND_MS = 1_000;
const MOUNT_OPTIONS = ['ServerAliveInterval=2', 'ServerAliveCountMax=2'];

const CAPABILITY = mountCap('SINGLE_NODE_WRITER');

let serverA: SshServer | undefined;
let serverB: SshServer | undefined;
let driver: RunningDriver | undefined;
let client: CsiClient | undefined;
let work: string;

/** Measured times, printed at the end (they go into the docs). */
const times: Record<string, number> = {};
/** The volume_condition messages seen, printed with the times. */
const messages: Record<string, string> = {};

function api(): CsiClient {
  if (!client) throw new Error('driver not started');
  return client;
}

/** Polls `check` every 50 ms until it holds or `ms` pass; returns the time waited. */
async function waitFor(check: () => boolean, ms: number): Promise<number> {
  const t0 = Date.now();
  while (!check() && Date.now() - t0 < ms) await sleep(50);
  return Date.now() - t0;
}

/** A process's command name from /proc (never touches a mount). */
function procComm(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** PIDs of sshfs processes serving a mount at `mountpoint` (read from /proc, for checking only). */
function sshfsProcessesFor(mountpoint: string): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .filter((pid) => {
      try {
        const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        return argv[0]?.endsWith('sshfs') && argv.includes(mountpoint);
      } catch {
        return false;
      }
    })
    .map(Number);
}

async function createVolume(name: string, backend: string): Promise<string> {
  const res = await api().CreateVolume({ name, volume_capabilities: [CAPABILITY], parameters: { backend }, capacity_range: { required_bytes: '1048576' } });
  return res.volume.volume_id as string;
}

/** Stages and publishes `id` under the work dir; returns the paths. */
async function stageAndPublish(id: string, tag: string): Promise<{ staging: string; target: string }> {
  const staging = join(work, `staging-${tag}`);
  const target = join(work, `target-${tag}`);
  await api().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: CAPABILITY });
  await api().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: CAPABILITY, readonly: false });
  expect(await isMounted(staging)).toBe(true);
  expect(await isMounted(target)).toBe(true);
  return { staging, target };
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tether-dead-server-'));
  serverA = await startSshServer();
  serverB = await startSshServer();
  driver = await startDriver(serverA, {
    mode: 'all',
    mountOptions: MOUNT_OPTIONS,
    extraConfig: { backends: [backendConfig(serverA, 'box', MOUNT_OPTIONS), backendConfig(serverB, 'box2', MOUNT_OPTIONS)] },
  });
  client = csiClient(driver.endpoint);
}, 60_000);

afterAll(async () => {
  // Thaw before anything else: a frozen server would hang every later step.
  await serverA?.thaw().catch(() => undefined);
  await serverB?.thaw().catch(() => undefined);
  await tearDown({ work, drivers: [{ driver, csi: client }], servers: [serverA, serverB] });
  if (Object.keys(times).length) console.log(`dead-server times (ms): ${JSON.stringify(times)}\nvolume_condition messages: ${JSON.stringify(messages)}`);
}, 60_000);

describe('the server dies at 3 a.m.', () => {
  it('(a) killed server: stats abnormal fast, Probe fast, unpublish/unstage bounded and clean, data untouched, restage after restart', async () => {
    const server = serverA!;
    const id = await createVolume('dead-kill', 'box');
    const { staging, target } = await stageAndPublish(id, 'kill');
    await writeFile(join(target, 'precious.txt'), 'written before the crash\n');
    const onServer = join(server.root, 'dead-kill', 'data', 'precious.txt');
    expect(await readFile(onServer, 'utf8')).toBe('written before the crash\n');

    await server.kill();

    // Stats and Probe together: Probe must not wait behind the stats call.
    const statsCall = timed(() => api().NodeGetVolumeStats({ volume_id: id, volume_path: target }, { deadlineMs: 30_000 }));
    const probe = await timed(() => api().Probe({}, { deadlineMs: 5_000 }));
    const stats = await statsCall;
    times['kill.stats'] = stats.ms;
    times['kill.probe'] = probe.ms;
    messages.kill = stats.value?.volume_condition?.message;
    expect(stats.error).toBeUndefined();
    expect(stats.value.volume_condition.abnormal).toBe(true);
    expect(stats.value.volume_condition.message).toMatch(/\S/);
    expect(stats.ms).toBeLessThan(STATS_BOUND_MS);
    expect(probe.error).toBeUndefined();
    expect(probe.value.ready.value).toBe(true);
    expect(probe.ms).toBeLessThan(PROBE_BOUND_MS);

    const unpublish = await timed(() => api().NodeUnpublishVolume({ volume_id: id, target_path: target }, { deadlineMs: 60_000 }));
    times['kill.unpublish'] = unpublish.ms;
    expect(unpublish.error).toBeUndefined();
    expect(unpublish.ms).toBeLessThan(TEARDOWN_BOUND_MS);
    expect(await isMounted(target)).toBe(false);

    const unstage = await timed(() => api().NodeUnstageVolume({ volume_id: id, staging_target_path: staging }, { deadlineMs: 60_000 }));
    times['kill.unstage'] = unstage.ms;
    expect(unstage.error).toBeUndefined();
    expect(unstage.ms).toBeLessThan(TEARDOWN_BOUND_MS);
    expect(await isMounted(staging)).toBe(false);
    expect(await mountsUnder(work)).toEqual([]);

    // The files on the server are exactly as they were.
    expect(await readFile(onServer, 'utf8')).toBe('written before the crash\n');
    await recordOn(join(server.root, 'dead-kill'));

    // The server comes back: a new stage works and sees the data.
    await server.restart();
    const restage = await timed(() => api().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: CAPABILITY }));
    times['kill.restage-after-restart'] = restage.ms;
    expect(restage.error).toBeUndefined();
    expect(await isMounted(staging)).toBe(true);
    const restaged = await cat(join(staging, 'data', 'precious.txt'));
    expect(restaged.stdout).toBe('written before the crash');
    const healthy = await api().NodeGetVolumeStats({ volume_id: id, volume_path: staging });
    expect(healthy.volume_condition.abnormal).toBe(false);
    await api().NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
    expect(await isMounted(staging)).toBe(false);
  }, 120_000);

  it('(b) frozen server: stats abnormal and bounded, Probe fast, other server\'s volume unaffected, unpublish/unstage bounded even with a workload still holding a file open', async () => {
    const server = serverA!;
    const frozenId = await createVolume('dead-freeze', 'box');
    const otherId = await createVolume('alive-other', 'box2');
    const frozen = await stageAndPublish(frozenId, 'freeze');
    const other = await stageAndPublish(otherId, 'other');
    await writeFile(join(frozen.target, 'precious.txt'), 'written before the hang\n'); // also warms the session up
    await writeFile(join(other.target, 'other.txt'), 'other server\n');
    const onServer = join(server.root, 'dead-freeze', 'data', 'precious.txt');
    // A workload process that never let go: it keeps a file on the volume open through the hang,
    // so the target is busy when the CO unpublishes.
    const holder = execa('bash', ['-c', 'exec 3<"$1"; exec sleep 300', 'holder', join(frozen.target, 'precious.txt')], { reject: false, stdin: 'ignore', timeout: 170_000 });
    // And a node-side process (a log shipper, a backup agent) sitting in the staged mount.
    const squatter = execa('bash', ['-c', 'cd "$1" && exec sleep 300', 'squatter', join(frozen.staging, 'data')], { reject: false, stdin: 'ignore', timeout: 170_000 });
    try {
      await waitFor(() => procComm(holder.pid!) === 'sleep' && procComm(squatter.pid!) === 'sleep', 5_000);
      expect(procComm(holder.pid!)).toBe('sleep');
      expect(procComm(squatter.pid!)).toBe('sleep');
      expect(sshfsProcessesFor(frozen.staging)).toHaveLength(1);

      await server.freeze();
      let statsSettled = false;
      const statsCall = timed(() => api().NodeGetVolumeStats({ volume_id: frozenId, volume_path: frozen.target }, { deadlineMs: 60_000 })).finally(() => (statsSettled = true));
      await sleep(500);
      const probe = await timed(() => api().Probe({}, { deadlineMs: 5_000 }));
      const probeWhilePending = !statsSettled;
      const otherStats = await timed(() => api().NodeGetVolumeStats({ volume_id: otherId, volume_path: other.target }, { deadlineMs: 30_000 }));
      const otherWhilePending = !statsSettled;
      const stats = await statsCall;
      times['freeze.stats'] = stats.ms;
      times['freeze.probe-while-stats-pending'] = probe.ms;
      times['freeze.other-volume-stats'] = otherStats.ms;
      messages.freeze = stats.value?.volume_condition?.message;

      expect(probeWhilePending).toBe(true); // the hung stats call really was in flight
      expect(probe.error).toBeUndefined();
      expect(probe.value.ready.value).toBe(true);
      expect(probe.ms).toBeLessThan(PROBE_BOUND_MS);

      expect(otherWhilePending).toBe(true);
      expect(otherStats.error).toBeUndefined();
      expect(otherStats.value.volume_condition.abnormal).toBe(false);
      expect(otherStats.value.usage.length).toBe(2);
      expect(otherStats.ms).toBeLessThan(5_000);

      expect(stats.error).toBeUndefined();
      expect(stats.value.volume_condition.abnormal).toBe(true);
      expect(stats.value.volume_condition.message).toMatch(/\S/);
      expect(stats.ms).toBeLessThan(STATS_BOUND_MS);

      const unpublish = await timed(() => api().NodeUnpublishVolume({ volume_id: frozenId, target_path: frozen.target }, { deadlineMs: 60_000 }));
      times['freeze.unpublish'] = unpublish.ms;
      expect(unpublish.error).toBeUndefined();
      expect(unpublish.ms).toBeLessThan(TEARDOWN_BOUND_MS);
      expect(await isMounted(frozen.target)).toBe(false);

      const unstage = await timed(() => api().NodeUnstageVolume({ volume_id: frozenId, staging_target_path: frozen.staging }, { deadlineMs: 60_000 }));
      times['freeze.unstage'] = unstage.ms;
      expect(unstage.error).toBeUndefined();
      expect(unstage.ms).toBeLessThan(TEARDOWN_BOUND_MS);
      expect(await isMounted(frozen.staging)).toBe(false);
      // Both mounts were busy: the target was detached lazily (umount → lazy); the staged sshfs mount
      // had its FUSE connection aborted first (umount → abort → lazy), so its sshfs is gone already.
      const lazy = (target: string) => driver!.logs().split('\n').filter((l) => l.includes('unmounted lazily') && l.includes(`"${target}"`));
      expect(lazy(frozen.target)).toHaveLength(1);
      expect(lazy(frozen.staging)).toHaveLength(1);
      messages['freeze.sshfs-after-unstage'] = `${sshfsProcessesFor(frozen.staging).length} sshfs process(es) left for the staged mount`;

      // Still frozen: the other server's volume answers as before.
      const otherAgain = await timed(() => api().NodeGetVolumeStats({ volume_id: otherId, volume_path: other.target }, { deadlineMs: 30_000 }));
      times['freeze.other-volume-stats-after-teardown'] = otherAgain.ms;
      expect(otherAgain.value?.volume_condition.abnormal).toBe(false);
      const otherCat = await cat(join(other.target, 'other.txt'));
      expect(otherCat.stdout).toBe('other server');

      // The data is on the server's disk, untouched (read locally: sshd being frozen does not matter).
      expect(await readFile(onServer, 'utf8')).toBe('written before the hang\n');
      await recordOn(join(server.root, 'dead-freeze'));
    } finally {
      holder.kill('SIGKILL');
      squatter.kill('SIGKILL');
      await Promise.all([holder, squatter]);
      await server.thaw();
    }
    // Nothing of the old mount lingers: its sshfs process has exited.
    times['freeze.wait-for-old-sshfs-exit'] = await waitFor(() => sshfsProcessesFor(frozen.staging).length === 0, 15_000);
    expect(sshfsProcessesFor(frozen.staging)).toEqual([]);

    // Thawed: the volume can be staged again; then tear everything down the normal way.
    const restage = await timed(() => api().NodeStageVolume({ volume_id: frozenId, staging_target_path: frozen.staging, volume_capability: CAPABILITY }));
    times['freeze.restage-after-thaw'] = restage.ms;
    expect(restage.error).toBeUndefined();
    await api().NodeUnstageVolume({ volume_id: frozenId, staging_target_path: frozen.staging });
    await api().NodeUnpublishVolume({ volume_id: otherId, target_path: other.target });
    await api().NodeUnstageVolume({ volume_id: otherId, staging_target_path: other.staging });
    expect(await mountsUnder(work)).toEqual([]);
  }, 180_000);
});
