// NFS volumes with a real kernel NFS client: the user's story, run INSIDE the user-mode Linux guest
// of test/nfs/uml-run.sh (test/nfs/run.sh does that), against nfs-ganesha serving the guest's
// $NFS_SERVER:$NFS_SHARE. tether runs as `--mode all` with one NFS backend; its controller mounts
// the export itself, its node side mounts `share/<volume>` and bind-mounts `data/` for the pod.
//
// Everything that touches an NFS mount runs as an external command with a timeout (tee, cat,
// findmnt), so a dead server can never wedge this process. The server's own backing directory
// ($NFS_EXPORT_DIR, a guest tmpfs) is read directly: it is local to the server, not an NFS mount.
import { chmod, mkdtemp, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { execa } from 'execa';
import { csiClient, type CsiClient } from '../support/csi-client.js';
import { nfsBackendConfig, startDriverWith, type RunningDriver } from '../support/driver.js';
import { cat, exists, failure, isMounted, mountCap, mountsUnder, recordOn, tearDown, timed, uniq, volumeDir, write } from '../support/helpers.js';

if (process.env.IN_UML !== '1') throw new Error('the NFS tests run inside the guest: bash test/nfs/run.sh');

const EXPORT_DIR = process.env.NFS_EXPORT_DIR!;
const SERVER_CTL = process.env.NFS_SERVER_CTL!;
/** The bound asked of NodeUnpublishVolume and NodeUnstageVolume on a dead server. */
const TEARDOWN_BOUND_MS = 40_000;
/** NodeGetVolumeStats must report a dead server this fast (its probe has a 5 s timeout). */
const STATS_BOUND_MS = 10_000;
const PROBE_BOUND_MS = 1_000;
const TEST_TIMEOUT_MS = 180_000;

/** Kubernetes sends ReadWriteOnce as SINGLE_NODE_MULTI_WRITER to a driver that advertises it (tether does). */
const RWO = mountCap('SINGLE_NODE_MULTI_WRITER');

let driver: RunningDriver;
let csi: CsiClient;
let work: string;
const staged = new Map<string, string>(); // staging path -> volume ID
const published = new Map<string, string>(); // target path -> volume ID
const volumes = new Set<string>();
const times: Record<string, number> = {};

const onServer = (id: string, ...parts: string[]) => join(EXPORT_DIR, volumeDir(id), ...parts);
const server = (command: 'kill' | 'start' | 'restore') => execa(SERVER_CTL, [command], { timeout: 60_000 });

async function createVolume(name: string, capability = RWO): Promise<string> {
  const { volume } = await csi.CreateVolume({ name, volume_capabilities: [capability], capacity_range: { required_bytes: String(1 << 30) } });
  volumes.add(volume.volume_id);
  return volume.volume_id as string;
}

async function stage(id: string, staging: string, capability = RWO): Promise<void> {
  await csi.NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: capability });
  staged.set(staging, id);
}

async function publish(id: string, staging: string, target: string, readonly = false, capability = RWO): Promise<void> {
  await csi.NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: capability, readonly });
  published.set(target, id);
}

async function unpublish(id: string, target: string): Promise<void> {
  await csi.NodeUnpublishVolume({ volume_id: id, target_path: target });
  published.delete(target);
}

async function unstage(id: string, staging: string): Promise<void> {
  await csi.NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
  staged.delete(staging);
}

/** A new volume, staged and published as `pod-<name>`, with `file` written by the pod. */
async function podWrote(name: string, file: string, content: string): Promise<{ id: string; staging: string; target: string }> {
  const id = await createVolume(uniq(`pvc-${name}`));
  const staging = join(work, `staging-${name}`);
  const target = join(work, `pod-${name}`);
  await stage(id, staging);
  await publish(id, staging, target);
  expect((await write(join(target, file), content)).exitCode).toBe(0);
  return { id, staging, target };
}

/** findmnt's FSTYPE and SOURCE of the mount at `path` (from the mount table only). */
async function mountOf(path: string): Promise<{ fstype: string; source: string }> {
  const { stdout } = await execa('findmnt', ['-n', '-o', 'FSTYPE,SOURCE', '--mountpoint', path], { timeout: 10_000 });
  const [fstype = '', source = ''] = String(stdout).trim().split(/\s+/);
  return { fstype, source };
}

beforeAll(async () => {
  work = await mkdtemp('/tmp/tether-nfs-');
  await chmod(work, 0o755); // kubelet's pods directory: a pod's uid may pass through it
  driver = await startDriverWith([nfsBackendConfig()], { nodeId: 'node-a' });
  csi = csiClient(driver.endpoint);
  await csi.NodeGetInfo({}); // registers node-a, as kubelet's registration does
}, 150_000);

afterAll(async () => {
  await server('start').catch(() => undefined); // a test that failed half-way may have left it down
  await tearDown({ work, drivers: [{ driver, csi, staged, published }], volumes: { controller: csi, ids: volumes, nodeIds: ['node-a'] }, servers: [] });
  console.log(`nfs times (ms): ${JSON.stringify(times)}`);
}, 120_000);

describe('an NFS volume, from the StorageClass to the pod and to another node', () => {
  let id: string;

  test('CreateVolume makes <share>/<volume>/data and its record on the server, through the controller\'s own mount of the export', async () => {
    id = await createVolume(uniq('pvc-story'));
    expect(id).toMatch(/^nfs\/pvc-story-/);
    expect(await exists(onServer(id, 'data'))).toBe(true);
    const record = await recordOn(onServer(id));
    expect(record).toMatchObject({ capacityBytes: 1 << 30 });
    const again = await csi.CreateVolume({ name: volumeDir(id), volume_capabilities: [RWO], capacity_range: { required_bytes: String(1 << 30) } });
    expect(again.volume.volume_id).toBe(id);
  }, TEST_TIMEOUT_MS);

  test('staged and published on node-a, the pod writes and the server has the file', async () => {
    await csi.ControllerPublishVolume({ volume_id: id, node_id: 'node-a', volume_capability: RWO });
    const staging = join(work, 'staging-1');
    const target = join(work, 'pod-1');
    const t0 = performance.now();
    await stage(id, staging);
    times['stage'] = Math.round(performance.now() - t0);
    expect(await mountOf(staging)).toEqual({ fstype: 'nfs4', source: `${process.env.NFS_SERVER}:${process.env.NFS_SHARE}/${volumeDir(id)}` });
    await publish(id, staging, target);
    expect((await write(join(target, 'hello.txt'), 'written on node-a')).exitCode).toBe(0);
    expect(await readFile(onServer(id, 'data', 'hello.txt'), 'utf8')).toBe('written on node-a');
    // The pod sees data/ only, never the record.
    expect((await execa('ls', ['-A', target], { timeout: 10_000 })).stdout.split('\n')).toEqual(['hello.txt']);
    const stats = await csi.NodeGetVolumeStats({ volume_id: id, volume_path: target });
    expect(stats.volume_condition.abnormal).toBe(false);
    expect(Number(stats.usage.find((u: { unit: string }) => u.unit === 'BYTES').total)).toBeGreaterThan(0);
  }, TEST_TIMEOUT_MS);

  test('moved to another staging path (another node\'s view), the data are there', async () => {
    await unpublish(id, join(work, 'pod-1'));
    await unstage(id, join(work, 'staging-1'));
    expect(await mountsUnder(work)).toEqual([]);
    await csi.ControllerUnpublishVolume({ volume_id: id, node_id: 'node-a' });
    await csi.ControllerPublishVolume({ volume_id: id, node_id: 'node-a', volume_capability: RWO });
    const staging = join(work, 'staging-2');
    const target = join(work, 'pod-2');
    await stage(id, staging);
    await publish(id, staging, target);
    expect((await cat(join(target, 'hello.txt'))).stdout).toBe('written on node-a');
  }, TEST_TIMEOUT_MS);

  test('a read-only publish refuses writes; the writable one beside it still writes', async () => {
    const staging = join(work, 'staging-2');
    const readonlyTarget = join(work, 'pod-2-ro');
    await publish(id, staging, readonlyTarget, true);
    const refused = await write(join(readonlyTarget, 'nope.txt'), 'must not land');
    expect(refused.exitCode).not.toBe(0);
    expect(refused.stderr).toMatch(/read-only file system/i);
    expect(await exists(onServer(id, 'data', 'nope.txt'))).toBe(false);
    expect((await cat(join(readonlyTarget, 'hello.txt'))).stdout).toBe('written on node-a');
    expect((await write(join(work, 'pod-2', 'second.txt'), 'still writable')).exitCode).toBe(0);
    await unpublish(id, readonlyTarget);
  }, TEST_TIMEOUT_MS);

  test('StorageClass mountOptions reach the kernel (vers=3 gives an NFSv3 mount) and pass the allowlist', async () => {
    const v3 = mountCap('SINGLE_NODE_MULTI_WRITER', { mount_flags: ['vers=3', 'nolock'] });
    const v3Id = await createVolume(uniq('pvc-v3'), v3);
    const staging = join(work, 'staging-v3');
    const target = join(work, 'pod-v3');
    await stage(v3Id, staging, v3);
    expect((await mountOf(staging)).fstype).toBe('nfs');
    await publish(v3Id, staging, target, false, v3);
    expect((await write(join(target, 'v3.txt'), 'over NFSv3')).exitCode).toBe(0);
    expect(await readFile(onServer(v3Id, 'data', 'v3.txt'), 'utf8')).toBe('over NFSv3');
    await unpublish(v3Id, target);
    await unstage(v3Id, staging);

    const cached = mountCap('SINGLE_NODE_MULTI_WRITER', { mount_flags: ['fsc'] });
    const err = await failure(csi.NodeStageVolume({ volume_id: v3Id, staging_target_path: join(work, 'staging-fsc'), volume_capability: cached }), status.INVALID_ARGUMENT);
    expect(err.details).toMatch(/"fsc" is not on the allowlist/);
    expect(await isMounted(join(work, 'staging-fsc'))).toBe(false);
  }, TEST_TIMEOUT_MS);
});

describe('as csi-driver-nfs users expect', () => {
  test('volumeNameTemplate names the directory from the PVC; a pod running as uid 1000 with fsGroup 2000 writes to it', async () => {
    const asPod = mountCap('SINGLE_NODE_SINGLE_WRITER', { volume_mount_group: '2000' });
    const { volume } = await csi.CreateVolume({
      name: 'pvc-0b1c2d3e-aaaa-bbbb-cccc-000000000001',
      volume_capabilities: [asPod],
      parameters: {
        volumeNameTemplate: '${pvc.metadata.namespace}-${pvc.metadata.name}',
        'csi.storage.k8s.io/pvc/namespace': 'shop',
        'csi.storage.k8s.io/pvc/name': 'Data_Orders',
        'csi.storage.k8s.io/pv/name': 'pvc-0b1c2d3e-aaaa-bbbb-cccc-000000000001',
      },
    });
    const id: string = volume.volume_id;
    volumes.add(id);
    expect(volumeDir(id)).toMatch(/^shop-data_orders-[0-9a-f]{8}$/);
    expect(await exists(onServer(id, 'data'))).toBe(true);

    const staging = join(work, 'staging-fsgroup');
    const target = join(work, 'pod-fsgroup');
    await stage(id, staging, asPod);
    await publish(id, staging, target, false, asPod);
    const wrote = await execa('setpriv', ['--reuid=1000', '--regid=2000', '--clear-groups', 'tee', join(target, 'by-uid-1000.txt')], { input: 'not root', timeout: 15_000, reject: false });
    expect(wrote.stderr).toBe('');
    expect(wrote.exitCode).toBe(0);
    const onDisk = await stat(onServer(id, 'data', 'by-uid-1000.txt'));
    expect({ uid: onDisk.uid, gid: onDisk.gid }).toEqual({ uid: 1000, gid: 2000 });
    // A second NodeStage (kubelet retries) is a no-op.
    await stage(id, staging, asPod);
    await unpublish(id, target);
    await unstage(id, staging);
  }, TEST_TIMEOUT_MS);
});

describe('the controller never writes where the export is not', () => {
  test('with something else mounted where its export mount belongs, CreateVolume is UNAVAILABLE and writes nothing; then it mounts the export again', async () => {
    await createVolume(uniq('pvc-warm')); // the controller's export mount is up
    const exportMount = join(driver.dir, 'run', 'controller', 'nfs');
    expect((await mountOf(exportMount)).fstype).toMatch(/^nfs/);
    await execa('umount', ['-l', exportMount], { timeout: 15_000 });
    await execa('mount', ['-t', 'tmpfs', 'impostor', exportMount], { timeout: 15_000 });
    try {
      const err = await failure(csi.CreateVolume({ name: uniq('pvc-wrong-place'), volume_capabilities: [RWO] }), status.UNAVAILABLE);
      expect(err.details).toMatch(/holds impostor \(tmpfs\), not the export .*refusing to use it/);
      expect((await execa('ls', ['-A', exportMount], { timeout: 15_000 })).stdout).toBe('');
    } finally {
      await execa('umount', [exportMount], { timeout: 15_000 });
    }
    await createVolume(uniq('pvc-right-place'));
    expect((await mountOf(exportMount)).fstype).toMatch(/^nfs/);
  }, TEST_TIMEOUT_MS);
});

describe('the NFS server dies, and comes back', () => {
  test('killed: the volume is abnormal within seconds, Probe answers, unpublish and unstage finish in bounded time, the data survive', async () => {
    const { id, staging, target } = await podWrote('kill', 'precious.txt', 'written before the crash');
    await execa('sync', [], { timeout: 30_000 });

    await server('kill');
    const stats = await timed(() => csi.NodeGetVolumeStats({ volume_id: id, volume_path: target }, { deadlineMs: 30_000 }));
    times['kill.stats'] = stats.ms;
    expect(stats.value?.volume_condition).toMatchObject({ abnormal: true, message: expect.stringMatching(/not usable/) });
    expect(stats.ms).toBeLessThan(STATS_BOUND_MS);
    const probe = await timed(() => csi.Probe({}, { deadlineMs: 5_000 }));
    times['kill.probe'] = probe.ms;
    expect(probe.error).toBeUndefined();
    expect(probe.ms).toBeLessThan(PROBE_BOUND_MS);

    const unpublished = await timed(() => unpublish(id, target));
    times['kill.unpublish'] = unpublished.ms;
    expect(unpublished.error).toBeUndefined();
    expect(unpublished.ms).toBeLessThan(TEARDOWN_BOUND_MS);
    const unstaged = await timed(() => unstage(id, staging));
    times['kill.unstage'] = unstaged.ms;
    expect(unstaged.error).toBeUndefined();
    expect(unstaged.ms).toBeLessThan(TEARDOWN_BOUND_MS);
    expect(await isMounted(target)).toBe(false);
    expect(await isMounted(staging)).toBe(false);

    await server('start');
    expect(await readFile(onServer(id, 'data', 'precious.txt'), 'utf8')).toBe('written before the crash');
    // The first story's volume stayed mounted through the outage (a hard mount, as users have): it
    // heals by itself, and tearing down this volume did not break it although they share the NFS client.
    // Linux 6.1's client (this guest) sometimes fails the first request after the restart with
    // "Unknown error 512" (ERESTARTSYS leaked by its state recovery; seen with and without tether's
    // umount -f): that once, and nothing else, is tolerated — the README's NFS section says so.
    const healStart = Date.now();
    const failures: string[] = [];
    let healed = await cat(join(work, 'pod-2', 'hello.txt'));
    while (healed.exitCode !== 0 && failures.length < 3) {
      failures.push(String(healed.stderr));
      healed = await cat(join(work, 'pod-2', 'hello.txt'));
    }
    times['kill.other-volume-healed'] = Date.now() - healStart;
    expect({ stdout: healed.stdout, stderr: healed.stderr }).toEqual({ stdout: 'written on node-a', stderr: '' });
    expect(failures.length).toBeLessThanOrEqual(1);
    for (const failure of failures) expect(failure).toMatch(/Unknown error 512$/);
    if (failures.length) console.log(`nfs: the other volume's first read after the restart failed once: ${failures[0]}`);
    await stage(id, staging);
    await publish(id, staging, target);
    expect((await cat(join(target, 'precious.txt'))).stdout).toBe('written before the crash');
    await unpublish(id, target);
    await unstage(id, staging);
  }, TEST_TIMEOUT_MS);

  test('restored onto a new disk: the stale file handle is reported, and a pod restart or NodeStage mounts the volume again', async () => {
    const { id, staging, target } = await podWrote('stale', 'kept.txt', 'survives the restore');

    await server('restore'); // same files, new file handles: every old mount of the export is stale
    expect((await cat(join(target, 'kept.txt'))).stderr).toMatch(/stale file handle/i);
    const stats = await csi.NodeGetVolumeStats({ volume_id: id, volume_path: target });
    expect(stats.volume_condition.abnormal).toBe(true);
    expect(stats.volume_condition.message).toMatch(/stale file handle.*restarting the pod/i);

    // The pod restarts: kubelet unpublishes and publishes again; NodePublish finds the staging mount
    // gone for good and makes it again.
    await unpublish(id, target);
    const republished = await timed(() => publish(id, staging, target));
    times['stale.republish'] = republished.ms;
    expect(republished.error).toBeUndefined();
    expect((await cat(join(target, 'kept.txt'))).stdout).toBe('survives the restore');
    expect((await csi.NodeGetVolumeStats({ volume_id: id, volume_path: staging })).volume_condition.abnormal).toBe(false);

    // NodeStage of a staged, healthy volume is a no-op; after another restore it mounts again.
    await stage(id, staging);
    await server('restore');
    await stage(id, staging);
    expect((await csi.NodeGetVolumeStats({ volume_id: id, volume_path: staging })).volume_condition.abnormal).toBe(false);
    expect((await cat(join(staging, 'data', 'kept.txt'))).stdout).toBe('survives the restore');

    // The controller's own mount of the export was stale too: it mounts again by itself.
    const after = await timed(() => createVolume(uniq('pvc-after-restore')));
    expect(after.error).toBeUndefined();
    expect((await csi.GetCapacity({})).available_capacity).not.toBe('0');

    await unpublish(id, target);
    await unstage(id, staging);
    expect(await isMounted(target)).toBe(false);
    expect(await isMounted(staging)).toBe(false);
  }, TEST_TIMEOUT_MS);
});

describe('deleting NFS volumes', () => {
  test('the first story\'s volume, stale since the restore, is unpublished and unstaged all the same; DeleteVolume waits for ControllerUnpublish, then removes each volume\'s directory', async () => {
    for (const [target, id] of [...published]) await unpublish(id, target);
    for (const [staging, id] of [...staged]) await unstage(id, staging);
    expect(await mountsUnder(work)).toEqual([]);
    const inUse = await failure(csi.DeleteVolume({ volume_id: [...volumes][0] }), status.FAILED_PRECONDITION);
    expect(inUse.details).toMatch(/published to node node-a/);
    for (const id of [...volumes]) {
      await csi.ControllerUnpublishVolume({ volume_id: id, node_id: 'node-a' });
      await csi.DeleteVolume({ volume_id: id });
      expect(await exists(onServer(id))).toBe(false);
      volumes.delete(id);
    }
    expect((await csi.ListVolumes({})).entries).toEqual([]);
  }, TEST_TIMEOUT_MS);
});
