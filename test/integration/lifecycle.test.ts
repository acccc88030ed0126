// The life of one volume, told the way a cluster lives it: provisioned, attached to node-a, staged and
// published for a pod, written to, measured, snapshotted, cloned, grown, and finally torn down and
// deleted. Everything runs against a real sshd and real sshfs mounts; the driver is `tether-csi`
// itself (dist/src/main.js) as a child process, spoken to over its CSI socket.
//
// File operations through a mount run as external commands with timeouts (tee, cat, ls), so a hung
// FUSE request can never wedge the test process itself.
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { execa } from 'execa';
import { startSshServer, type SshServer } from '../support/sshd.js';
import { startDriver, type RunningDriver } from '../support/driver.js';
import { csiClient, type CsiClient } from '../support/csi-client.js';
import { CMD_TIMEOUT_MS, cat, exists, failure, mountCap, mountsUnder, recordOn, tearDown, uniq, volumeDir, write } from '../support/helpers.js';

const TEST_TIMEOUT_MS = 60_000;
const HOOK_TIMEOUT_MS = 90_000;
const GiB = 1024 ** 3;

let server: SshServer;
let driver: RunningDriver;
let csi: CsiClient;
let work: string;
/** Every (volume, staging, target) this file mounted, for cleanup even when a test fails half-way. */
const staged = new Map<string, string>(); // staging path -> volume ID
const published = new Map<string, string>(); // target path -> volume ID

/** Kubernetes sends SINGLE_NODE_MULTI_WRITER for ReadWriteOnce when the driver has that capability (tether does). */
const RWO = mountCap('SINGLE_NODE_MULTI_WRITER');
const onServer = (...parts: string[]) => join(server.root, ...parts);
const ls = async (dir: string) => String((await execa('ls', ['-A', dir], { timeout: CMD_TIMEOUT_MS })).stdout).split('\n').filter(Boolean);

async function createVolume(name: string, extra: Record<string, unknown> = {}, cap = RWO) {
  const res = await csi.CreateVolume({ name, volume_capabilities: [cap], capacity_range: { required_bytes: String(GiB) }, ...extra });
  return res.volume.volume_id as string;
}

/** kubelet's part: it makes the staging directory; the driver makes the target directory. */
async function stage(volumeId: string, name: string, cap = RWO): Promise<string> {
  const staging = join(work, 'staging', name);
  await mkdir(staging, { recursive: true });
  staged.set(staging, volumeId);
  await csi.NodeStageVolume({ volume_id: volumeId, staging_target_path: staging, volume_capability: cap });
  return staging;
}

async function publish(volumeId: string, staging: string, name: string, opts: { readonly?: boolean; cap?: object } = {}): Promise<string> {
  const target = join(work, 'pods', name, 'mount');
  published.set(target, volumeId);
  await csi.NodePublishVolume({ volume_id: volumeId, staging_target_path: staging, target_path: target, volume_capability: opts.cap ?? RWO, readonly: Boolean(opts.readonly) });
  return target;
}

async function unpublish(volumeId: string, target: string) {
  await csi.NodeUnpublishVolume({ volume_id: volumeId, target_path: target });
  published.delete(target);
}

async function unstage(volumeId: string, staging: string) {
  await csi.NodeUnstageVolume({ volume_id: volumeId, staging_target_path: staging });
  staged.delete(staging);
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tether-lifecycle-'));
  server = await startSshServer();
  driver = await startDriver(server, { nodeId: 'node-a', mode: 'all' });
  csi = csiClient(driver.endpoint);
  // kubelet registers the plugin: NodeGetInfo also registers node-a with the backend.
  expect((await csi.NodeGetInfo({})).node_id).toBe('node-a');
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  await tearDown({ work, drivers: [{ driver, csi, staged, published }], servers: [server] });
}, HOOK_TIMEOUT_MS);

describe('a volume from CreateVolume to DeleteVolume', () => {
  const name = uniq('pvc-life');
  let id: string;
  let dir: string;
  let staging: string;
  let target: string;
  let roTarget: string;
  let snapshotId: string;
  const extraVolumes: string[] = [];

  afterAll(async () => {
    for (const v of extraVolumes) await csi.DeleteVolume({ volume_id: v }).catch(() => undefined);
    if (snapshotId) await csi.DeleteSnapshot({ snapshot_id: snapshotId }).catch(() => undefined);
  }, HOOK_TIMEOUT_MS);

  it('CreateVolume is idempotent by name; the same name with another size is ALREADY_EXISTS', async () => {
    id = await createVolume(name);
    dir = volumeDir(id);
    expect(await createVolume(name)).toBe(id);
    expect((await recordOn(onServer(dir)))).toMatchObject({ name, capacityBytes: GiB, publications: [] });
    expect(await exists(onServer(dir, 'data'))).toBe(true);

    const err = await failure(csi.CreateVolume({ name, volume_capabilities: [RWO], capacity_range: { required_bytes: String(2 * GiB) } }), status.ALREADY_EXISTS);
    expect(err.details).toMatch(name);
  }, TEST_TIMEOUT_MS);

  it('ControllerPublish attaches it to node-a; NodeStage mounts it; NodePublish makes the target', async () => {
    await csi.ControllerPublishVolume({ volume_id: id, node_id: 'node-a', volume_capability: RWO, readonly: false });
    staging = await stage(id, name);
    expect(await mountsUnder(staging, 'fuse.sshfs')).toEqual([staging]);
    target = await publish(id, staging, 'pod-1');
    expect(await mountsUnder(target)).toEqual([target]);
  }, TEST_TIMEOUT_MS);

  it('the pod writes through the target and the file lands on the server under <root>/<dir>/data/', async () => {
    const w = await write(join(target, 'hello.txt'), 'hello from pod-1\n');
    expect(w.stderr).toBe('');
    expect(w.exitCode).toBe(0);
    expect(await readFile(onServer(dir, 'data', 'hello.txt'), 'utf8')).toBe('hello from pod-1\n');
    expect((await cat(join(target, 'hello.txt'))).stdout).toBe('hello from pod-1');
  }, TEST_TIMEOUT_MS);

  it("the pod sees its data only: tether's record is not in the target", async () => {
    expect(await ls(target)).toEqual(['hello.txt']);
    const record = (await readdir(onServer(dir))).find((n) => /^volume\.\d+\.json$/.test(n))!;
    expect(record).toBeDefined();
    expect((await cat(join(target, record))).exitCode).not.toBe(0);
    expect((await cat(join(target, '..', record))).exitCode).not.toBe(0);
  }, TEST_TIMEOUT_MS);

  it('a read-only NodePublish at a second target reads the data and refuses writes (EROFS)', async () => {
    roTarget = await publish(id, staging, 'pod-2', { readonly: true });
    expect((await cat(join(roTarget, 'hello.txt'))).stdout).toBe('hello from pod-1');
    const w = await write(join(roTarget, 'nope.txt'), 'x');
    expect(w.exitCode).not.toBe(0);
    expect(w.stderr).toMatch(/Read-only file system/);
    expect(await exists(onServer(dir, 'data', 'nope.txt'))).toBe(false);
  }, TEST_TIMEOUT_MS);

  it('NodeGetVolumeStats reports BYTES and INODES usage and a healthy condition', async () => {
    const stats = await csi.NodeGetVolumeStats({ volume_id: id, volume_path: target });
    const units = (stats.usage as { unit: string }[]).map((u) => u.unit);
    expect(units).toEqual(['BYTES', 'INODES']);
    const bytes = stats.usage.find((u: { unit: string }) => u.unit === 'BYTES');
    expect(Number(bytes.total)).toBeGreaterThan(0);
    expect(Number(bytes.available)).toBeGreaterThan(0);
    expect(Number(bytes.used)).toBeGreaterThanOrEqual(0);
    // The server's filesystem as a whole (a directory has no quota of its own): its inodes are in use.
    const inodes = stats.usage.find((u: { unit: string }) => u.unit === 'INODES');
    expect(Number(inodes.total)).toBeGreaterThan(0);
    expect(Number(inodes.used)).toBeGreaterThan(0);
    expect(Number(inodes.used) + Number(inodes.available)).toBeLessThanOrEqual(Number(inodes.total));
    expect(stats.volume_condition).toMatchObject({ abnormal: false });
  }, TEST_TIMEOUT_MS);

  it('ControllerGetVolume and ListVolumes show the volume published to [node-a]', async () => {
    const got = await csi.ControllerGetVolume({ volume_id: id });
    expect(got.volume.volume_id).toBe(id);
    expect(got.status.published_node_ids).toEqual(['node-a']);
    expect(got.status.volume_condition).toMatchObject({ abnormal: false });

    const list = await csi.ListVolumes({});
    const entry = list.entries.find((e: { volume: { volume_id: string } }) => e.volume.volume_id === id);
    expect(entry).toBeDefined();
    expect(entry.status.published_node_ids).toEqual(['node-a']);
  }, TEST_TIMEOUT_MS);

  it('a snapshot, restored into a new volume, holds the file', async () => {
    const snap = await csi.CreateSnapshot({ name: uniq('snap-life'), source_volume_id: id });
    snapshotId = snap.snapshot.snapshot_id;
    expect(snap.snapshot).toMatchObject({ source_volume_id: id, ready_to_use: true });

    const restored = await createVolume(uniq('pvc-restored'), { volume_content_source: { snapshot: { snapshot_id: snapshotId } } });
    extraVolumes.push(restored);
    expect(await readFile(onServer(volumeDir(restored), 'data', 'hello.txt'), 'utf8')).toBe('hello from pod-1\n');
    expect((await csi.ControllerGetVolume({ volume_id: restored })).volume.content_source.snapshot.snapshot_id).toBe(snapshotId);
  }, TEST_TIMEOUT_MS);

  it('a clone of the volume holds the file', async () => {
    const clone = await createVolume(uniq('pvc-clone'), { volume_content_source: { volume: { volume_id: id } } });
    extraVolumes.push(clone);
    expect(await readFile(onServer(volumeDir(clone), 'data', 'hello.txt'), 'utf8')).toBe('hello from pod-1\n');
    expect((await readdir(onServer(volumeDir(clone), 'data'))).filter((n) => n.startsWith('volume.'))).toEqual([]);
  }, TEST_TIMEOUT_MS);

  it('ControllerExpandVolume records the new size', async () => {
    const res = await csi.ControllerExpandVolume({ volume_id: id, capacity_range: { required_bytes: String(2 * GiB) }, volume_capability: RWO });
    expect(res).toMatchObject({ capacity_bytes: String(2 * GiB), node_expansion_required: false });
    expect((await recordOn(onServer(dir))).capacityBytes).toBe(2 * GiB);
    expect((await csi.ControllerGetVolume({ volume_id: id })).volume.capacity_bytes).toBe(String(2 * GiB));
  }, TEST_TIMEOUT_MS);

  it('DeleteVolume while published is FAILED_PRECONDITION and names node-a', async () => {
    const err = await failure(csi.DeleteVolume({ volume_id: id }), status.FAILED_PRECONDITION);
    expect(err.details).toMatch(/node-a/);
    expect(await exists(onServer(dir, 'data', 'hello.txt'))).toBe(true);
  }, TEST_TIMEOUT_MS);

  it('teardown: NodeUnpublish removes the targets, NodeUnstage unmounts, nothing sshfs is left', async () => {
    await unpublish(id, roTarget);
    await unpublish(id, target);
    expect(await exists(target)).toBe(false);
    expect(await exists(roTarget)).toBe(false);
    // Unpublishing again is fine (kubelet retries).
    await csi.NodeUnpublishVolume({ volume_id: id, target_path: target });

    await unstage(id, staging);
    expect(await mountsUnder(staging)).toEqual([]);
    await csi.NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
    expect(await mountsUnder(work, 'fuse.sshfs')).toEqual([]);

    await csi.ControllerUnpublishVolume({ volume_id: id, node_id: 'node-a' });
    expect((await csi.ControllerGetVolume({ volume_id: id })).status.published_node_ids).toEqual([]);
  }, TEST_TIMEOUT_MS);

  it('DeleteVolume removes <root>/<dir>; deleting again is OK', async () => {
    await csi.DeleteVolume({ volume_id: id });
    expect(await exists(onServer(dir))).toBe(false);
    await csi.DeleteVolume({ volume_id: id });
    await failure(csi.ControllerGetVolume({ volume_id: id }), status.NOT_FOUND);
  }, TEST_TIMEOUT_MS);
});

describe('what DeleteVolume does with the data (onDelete)', () => {
  it('onDelete=archive moves the directory under <root>/.archive/', async () => {
    const id = await createVolume(uniq('pvc-archive'), { parameters: { onDelete: 'archive' } });
    const dir = volumeDir(id);
    await writeFile(onServer(dir, 'data', 'keep.txt'), 'archived\n');

    await csi.DeleteVolume({ volume_id: id });
    expect(await exists(onServer(dir))).toBe(false);
    const archived = (await readdir(onServer('.archive'))).filter((d) => d.startsWith(`${dir}-`));
    expect(archived).toHaveLength(1);
    expect(await readFile(onServer('.archive', archived[0]!, 'data', 'keep.txt'), 'utf8')).toBe('archived\n');
    // Out of tether's sight: not listed, and deleting again is OK.
    const list = await csi.ListVolumes({});
    expect(list.entries.map((e: { volume: { volume_id: string } }) => e.volume.volume_id)).not.toContain(id);
    await csi.DeleteVolume({ volume_id: id });
  }, TEST_TIMEOUT_MS);

  it('onDelete=retain keeps the data in place; the volume is gone for the CO', async () => {
    const name = uniq('pvc-retain');
    const id = await createVolume(name, { parameters: { onDelete: 'retain' } });
    const dir = volumeDir(id);
    await writeFile(onServer(dir, 'data', 'keep.txt'), 'retained\n');

    await csi.DeleteVolume({ volume_id: id });
    expect(await readFile(onServer(dir, 'data', 'keep.txt'), 'utf8')).toBe('retained\n');
    await failure(csi.ControllerGetVolume({ volume_id: id }), status.NOT_FOUND);
    const list = await csi.ListVolumes({});
    expect(list.entries.map((e: { volume: { volume_id: string } }) => e.volume.volume_id)).not.toContain(id);
    await csi.DeleteVolume({ volume_id: id });
    // The name is not silently reused on top of someone's retained data.
    const err = await failure(csi.CreateVolume({ name, volume_capabilities: [RWO], parameters: { onDelete: 'retain' } }), status.ALREADY_EXISTS);
    expect(err.details).toMatch(/retain/);
    await rm(onServer(dir), { recursive: true, force: true });
  }, TEST_TIMEOUT_MS);

  it('ControllerModifyVolume switches onDelete: delete becomes retain', async () => {
    const id = await createVolume(uniq('pvc-modify'));
    const dir = volumeDir(id);
    await writeFile(onServer(dir, 'data', 'keep.txt'), 'saved by modify\n');

    await csi.ControllerModifyVolume({ volume_id: id, mutable_parameters: { onDelete: 'retain' } });
    expect((await recordOn(onServer(dir))).onDelete).toBe('retain');

    await csi.DeleteVolume({ volume_id: id });
    expect(await readFile(onServer(dir, 'data', 'keep.txt'), 'utf8')).toBe('saved by modify\n');
    await rm(onServer(dir), { recursive: true, force: true });
  }, TEST_TIMEOUT_MS);
});

describe('copies racing the deletion of their source', () => {
  /** Enough files that the server-side copy is still running when the deletion lands. */
  const FILES = 3000;

  /** Polls until `path` holds something besides `known`, for at most 10 s; answers the new names. */
  async function untilNew(path: string, known: string[] = []): Promise<string[]> {
    const until = Date.now() + 10_000;
    while (Date.now() < until) {
      const fresh = (await readdir(path).catch(() => [] as string[])).filter((n) => !known.includes(n));
      if (fresh.length) return fresh;
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error(`nothing new appeared in ${path} for 10 s`);
  }

  /** A volume full of small files. */
  async function fullVolume(): Promise<string> {
    const id = await createVolume(uniq('pvc-full'));
    await Promise.all(Array.from({ length: FILES }, (_, i) => writeFile(onServer(volumeDir(id), 'data', `f${i}`), `${i}\n`)));
    return id;
  }

  /** Starts `copy`, waits until its copy under `root` has begun, runs `remove`; answers the copy's error and directory. */
  async function deletedMidCopy(root: string, copy: () => Promise<unknown>, remove: () => Promise<unknown>) {
    const before = await readdir(onServer(root)).catch(() => [] as string[]);
    const ended = failure(copy());
    const made = await untilNew(onServer(root), before);
    expect(made).toHaveLength(1);
    await untilNew(onServer(root, made[0]!, 'data'));
    await remove();
    return { err: await ended, dir: made[0]! };
  }

  it('a snapshot of a volume deleted meanwhile is NOT_FOUND, and its half-made copy is removed', async () => {
    const id = await fullVolume();
    const name = uniq('snap-race');
    const { err, dir } = await deletedMidCopy('.snapshots', () => csi.CreateSnapshot({ name, source_volume_id: id }), () => csi.DeleteVolume({ volume_id: id }));
    expect(err.code).toBe(status.NOT_FOUND);
    expect(err.details).toMatch(/deleted/);
    expect(await exists(onServer('.snapshots', dir))).toBe(false);
    expect((await csi.ListSnapshots({ source_volume_id: id })).entries).toEqual([]);
    // Its retry finds the volume gone, too.
    await failure(csi.CreateSnapshot({ name, source_volume_id: id }), status.NOT_FOUND);
  }, TEST_TIMEOUT_MS);

  it('a clone of a volume deleted meanwhile is NOT_FOUND and no volume (never half the data)', async () => {
    const id = await fullVolume();
    const name = uniq('pvc-clone-race');
    const clone = () => csi.CreateVolume({ name, volume_capabilities: [RWO], volume_content_source: { volume: { volume_id: id } } });
    const { err, dir } = await deletedMidCopy('.', clone, () => csi.DeleteVolume({ volume_id: id }));
    expect(err.code).toBe(status.NOT_FOUND);
    expect(err.details).toMatch(/deleted/);
    const listed = (await csi.ListVolumes({})).entries.map((e: { volume: { volume_id: string } }) => e.volume.volume_id);
    expect(listed.filter((v: string) => volumeDir(v) === dir)).toEqual([]);
    await failure(clone(), status.NOT_FOUND);
    // What is left is a volume being created: DeleteVolume of its ID (a CO's clean-up) removes it.
    await csi.DeleteVolume({ volume_id: `${id.slice(0, id.indexOf('/'))}/${dir}` });
    expect(await exists(onServer(dir))).toBe(false);
  }, TEST_TIMEOUT_MS);
});

describe('SINGLE_NODE_SINGLE_WRITER (ReadWriteOncePod)', () => {
  it('a second NodePublish on the node is FAILED_PRECONDITION and its target dir is not created', async () => {
    const SNSW = mountCap('SINGLE_NODE_SINGLE_WRITER');
    const name = uniq('pvc-rwop');
    const id = await createVolume(name, {}, SNSW);
    await csi.ControllerPublishVolume({ volume_id: id, node_id: 'node-a', volume_capability: SNSW, readonly: false });
    const staging = await stage(id, name, SNSW);
    const first = await publish(id, staging, 'rwop-pod-1', { cap: SNSW });
    expect(await mountsUnder(first)).toEqual([first]);

    const second = join(work, 'pods', 'rwop-pod-2', 'mount');
    published.set(second, id);
    const err = await failure(
      csi.NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: second, volume_capability: SNSW, readonly: false }),
      status.FAILED_PRECONDITION,
    );
    expect(err.details).toMatch(first);
    expect(await exists(second)).toBe(false);
    published.delete(second);

    // The same request for the first target again is idempotent.
    await csi.NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: first, volume_capability: SNSW, readonly: false });

    await unpublish(id, first);
    await unstage(id, staging);
    await csi.ControllerUnpublishVolume({ volume_id: id, node_id: 'node-a' });
    await csi.DeleteVolume({ volume_id: id });
    expect(await exists(onServer(volumeDir(id)))).toBe(false);
  }, TEST_TIMEOUT_MS);
});

describe('the controller keeps no state of its own', () => {
  it('after a restart, ListVolumes still shows the volume and its publication (state is on the backend)', async () => {
    const id = await createVolume(uniq('pvc-restart'));
    try {
      await csi.ControllerPublishVolume({ volume_id: id, node_id: 'node-a', volume_capability: RWO, readonly: false });

      csi.close();
      await driver.stop();
      driver = await startDriver(server, { nodeId: 'node-a', mode: 'all' });
      csi = csiClient(driver.endpoint);

      const list = await csi.ListVolumes({});
      const entry = list.entries.find((e: { volume: { volume_id: string } }) => e.volume.volume_id === id);
      expect(entry).toBeDefined();
      expect(entry.volume.capacity_bytes).toBe(String(GiB));
      expect(entry.status.published_node_ids).toEqual(['node-a']);
      // And it still enforces what it recorded before the restart.
      await failure(csi.DeleteVolume({ volume_id: id }), status.FAILED_PRECONDITION);
    } finally {
      await csi.ControllerUnpublishVolume({ volume_id: id, node_id: 'node-a' }).catch(() => undefined);
      await csi.DeleteVolume({ volume_id: id }).catch(() => undefined);
    }
    expect(await exists(onServer(volumeDir(id)))).toBe(false);
  }, TEST_TIMEOUT_MS);
});
