// The NFS side of test/integration/symlinks.test.ts, run INSIDE the user-mode Linux guest of
// test/nfs/uml-run.sh against nfs-ganesha: a pod on volume A makes symlinks, through its real kernel
// NFS mount, to volume B's data, to A's own record, to /etc/passwd and to a sentinel outside the
// export, by absolute paths and by relative paths that climb out of data/. Then the controller copies
// A (snapshot, restore, clone: cp -a on its own mount of the export) and deletes the copies (GNU rm)
// and archives one: every copy holds the links as links, no file anywhere holds what they point at,
// and nothing they point at changes.
//
// Reads through the pod's mount are not tested here: an NFS client resolves every symlink itself, in
// the pod's view; there is no server-side resolution to switch on. The server's backing directory
// ($NFS_EXPORT_DIR, a guest tmpfs) is read directly.
import { chmod, mkdir, mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { execa } from 'execa';
import { csiClient, type CsiClient } from '../support/csi-client.js';
import { nfsBackendConfig, startDriverWith, type RunningDriver } from '../support/driver.js';
import { CMD_TIMEOUT_MS, exists, mountCap, recordOn, tearDown, uniq, volumeDir } from '../support/helpers.js';
import { WORKLOAD_FILES, expectedLinks, filesFound, fingerprint, linksFound, secret, secretsUnder, workloadLinks, type Link, type Secrets, endStory } from '../support/workload-links.js';

if (process.env.IN_UML !== '1') throw new Error('the NFS tests run inside the guest: bash test/nfs/run.sh');

const EXPORT_DIR = process.env.NFS_EXPORT_DIR!;
const TEST_TIMEOUT_MS = 180_000;
/** A's mode: no writer lease, so no renewal replaces the record generation the pod's links point at. */
const RWX = mountCap('MULTI_NODE_MULTI_WRITER');

let driver: RunningDriver;
let csi: CsiClient;
let work: string;
const staged = new Map<string, string>(); // staging path -> volume ID
const published = new Map<string, string>(); // target path -> volume ID
const volumes = new Set<string>();

let a: string;
let b: string;
let staging: string;
let target: string;
let outside: string;
let recordFile: string;
let secrets: Secrets;
let links: Link[];

const onServer = (...parts: string[]) => join(EXPORT_DIR, ...parts);

async function createVolume(name: string, extra: Record<string, unknown> = {}): Promise<string> {
  const id = (await csi.CreateVolume({ name, volume_capabilities: [RWX], ...extra })).volume.volume_id as string;
  volumes.add(id);
  return id;
}

const targets = (withRecord = true) =>
  fingerprint([...(withRecord ? [recordFile] : []), onServer(volumeDir(b), 'data', 'secret.txt'), join(outside, 'sentinel.txt'), '/etc/passwd'], [onServer(volumeDir(b), 'data'), outside]);

async function expectCopy(data: string) {
  expect(await linksFound(data, links)).toEqual(expectedLinks(links));
  expect(await filesFound(data)).toEqual(WORKLOAD_FILES);
}

beforeAll(async () => {
  work = await mkdtemp('/tmp/tether-nfs-links-');
  await chmod(work, 0o755);
  outside = join(work, 'outside');
  await mkdir(outside);
  expect(relative(EXPORT_DIR, outside).startsWith('..')).toBe(true); // outside the export
  secrets = { b: secret('volume-b-secret'), sentinel: secret('sentinel-outside-the-export'), record: '' };
  await writeFile(join(outside, 'sentinel.txt'), `${secrets.sentinel}\n`);
  driver = await startDriverWith([nfsBackendConfig()], { nodeId: 'node-a' });
  csi = csiClient(driver.endpoint);
  await csi.NodeGetInfo({});
}, 150_000);

afterAll(async () => {
  await tearDown({ work, drivers: [{ driver, csi, staged, published }], volumes: { controller: csi, ids: volumes, nodeIds: ['node-a'] }, servers: [] });
}, 120_000);

describe('an NFS pod points symlinks out of its volume; snapshot, restore, clone, delete and archive never follow them', () => {
  let snapshotId: string;
  let restored: string;
  let clone: string;
  let before: string;

  test('volume B holds a secret; the pod on volume A makes its links through its NFS mount', async () => {
    b = await createVolume(uniq('pvc-b'));
    await writeFile(onServer(volumeDir(b), 'data', 'secret.txt'), `${secrets.b}\n`);
    a = await createVolume(uniq('pvc-a'));
    await csi.ControllerPublishVolume({ volume_id: a, node_id: 'node-a', volume_capability: RWX, readonly: false });
    staging = join(work, 'staging-a');
    await mkdir(staging);
    staged.set(staging, a);
    await csi.NodeStageVolume({ volume_id: a, staging_target_path: staging, volume_capability: RWX });
    target = join(work, 'pod-a');
    published.set(target, a);
    await csi.NodePublishVolume({ volume_id: a, staging_target_path: staging, target_path: target, volume_capability: RWX, readonly: false });

    const record = await recordOn(onServer(volumeDir(a)));
    const recordName = `volume.${String(record.generation)}.json`;
    recordFile = onServer(volumeDir(a), recordName);
    secrets.record = String(record.writeId);
    links = workloadLinks({ root: EXPORT_DIR, a: volumeDir(a), b: volumeDir(b), record: recordName, outside });

    const pod = (command: string, ...args: string[]) => execa(command, args, { timeout: CMD_TIMEOUT_MS });
    await pod('mkdir', join(target, 'sub'));
    for (const [file, content] of Object.entries(WORKLOAD_FILES)) await execa('tee', [join(target, file)], { input: content, timeout: CMD_TIMEOUT_MS });
    for (const link of links) await pod('ln', '-s', '--', link.to, join(target, link.name));

    await expectCopy(onServer(volumeDir(a), 'data'));
    for (const link of links) expect({ link: link.name, reaches: await exists(onServer(volumeDir(a), 'data', link.name)) }).toEqual({ link: link.name, reaches: true });
  }, TEST_TIMEOUT_MS);

  test('CreateSnapshot of A (cp -a): the snapshot holds each link as a symlink with its text, and no byte of any target', async () => {
    before = await targets();
    snapshotId = (await csi.CreateSnapshot({ name: uniq('snap-links'), source_volume_id: a })).snapshot.snapshot_id as string;
    await expectCopy(onServer(volumeDir(snapshotId), 'data'));
    expect(await secretsUnder(onServer('.snapshots'), secrets)).toBe('');
    expect(await targets()).toBe(before);
  }, TEST_TIMEOUT_MS);

  test('CreateVolume from the snapshot (onDelete=archive) and from A: both hold the links as links, and no byte of any target', async () => {
    restored = await createVolume(uniq('pvc-restored'), { parameters: { onDelete: 'archive' }, volume_content_source: { snapshot: { snapshot_id: snapshotId } } });
    clone = await createVolume(uniq('pvc-clone'), { volume_content_source: { volume: { volume_id: a } } });
    for (const id of [restored, clone]) {
      await expectCopy(onServer(volumeDir(id), 'data'));
      expect(await secretsUnder(onServer(volumeDir(id)), secrets)).toBe('');
    }
    expect(await targets()).toBe(before);
  }, TEST_TIMEOUT_MS);

  test('DeleteVolume of the clone (GNU rm) and of the restored volume (onDelete=archive): every target is unchanged; the archive holds the links as links', async () => {
    await csi.DeleteVolume({ volume_id: clone });
    expect(await exists(onServer(volumeDir(clone)))).toBe(false);
    expect(await targets()).toBe(before);

    await csi.DeleteVolume({ volume_id: restored });
    const archived = (await readdir(onServer('.archive'))).filter((d) => d.startsWith(`${volumeDir(restored)}-`));
    expect(archived).toHaveLength(1);
    await expectCopy(onServer('.archive', archived[0]!, 'data'));
    expect(await targets()).toBe(before);
  }, TEST_TIMEOUT_MS);

  test('DeleteSnapshot, then A torn down and deleted: B, the sentinel and /etc/passwd are unchanged', async () => {
    const end = await endStory(csi, { a, snapshotId, staging, target, staged, published }, targets, async (id) => !(await exists(onServer(volumeDir(id)))));
    expect(end).toEqual({ afterSnapshot: before, snapshotGone: true, othersBefore: end.othersBefore, othersAfter: end.othersBefore, aGone: true });
  }, TEST_TIMEOUT_MS);
});
