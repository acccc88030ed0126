// A workload's symlinks lead nowhere but into its own volume. A pod on volume A makes symlinks that
// point at volume B's data, at A's own record, at /etc/passwd of the server and at a sentinel file
// outside the SSH server's root, by absolute paths and by relative paths that climb out of data/.
// Then the pod reads them, the volume is snapshotted, restored and cloned, and the copies are deleted
// and archived: nothing outside the volume is ever reached, read or written.
//
// Node and server are the same host here, so a symlink resolved by the node's kernel and one resolved
// by the SSH server would read the same files. Reads "as a node" therefore run in a mount namespace of
// their own where the server's side is not there: the server's root and the sentinel's directory are
// empty tmpfs and /etc/passwd is another file — as on a real node, which is another machine. A read
// that still returns a secret was resolved by the server. The control test mounts A by hand with
// follow_symlinks (tether refuses it) and shows that the same reads then do return every secret.
//
// Everything that touches a mount runs as an external command with a timeout.
import { mkdir, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { status } from '@grpc/grpc-js';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { startSshServer, type SshServer } from '../support/sshd.js';
import { DRIVER_MAIN, backendConfig, startDriver, type RunningDriver } from '../support/driver.js';
import { csiClient, type CsiClient } from '../support/csi-client.js';
import { CMD_TIMEOUT_MS, exists, failure, mountCap, mountsUnder, recordOn, tearDown, uniq, volumeDir } from '../support/helpers.js';
import { PASSWD, WORKLOAD_FILES, expectedLinks, filesFound, fingerprint, linksFound, secret, secretsUnder, workloadLinks, workloadReads, type Link, type Read, type Secrets, endStory } from '../support/workload-links.js';

const TEST_TIMEOUT_MS = 60_000;
const HOOK_TIMEOUT_MS = 90_000;
const RWO = mountCap('SINGLE_NODE_MULTI_WRITER');
/** A's mode: no writer lease, so no renewal replaces the record generation the pod's links point at. */
const RWX = mountCap('MULTI_NODE_MULTI_WRITER');

let server: SshServer;
let driver: RunningDriver;
let csi: CsiClient;
let work: string;
const staged = new Map<string, string>(); // staging path -> volume ID
const published = new Map<string, string>(); // target path -> volume ID
const volumes = new Set<string>();

let a: string; // volume IDs
let b: string;
let staging: string; // A's staging path
let target: string; // A's NodePublish target: what the pod sees
let outside: string; // outside the served tree: sentinel.txt
let recordFile: string; // A's record when the pod made its links, on the server
let secrets: Secrets;
let links: Link[];
let reads: Read[];

const onServer = (...parts: string[]) => join(server.root, ...parts);

async function createVolume(name: string, extra: Record<string, unknown> = {}): Promise<string> {
  const id = (await csi.CreateVolume({ name, volume_capabilities: [RWO], ...extra })).volume.volume_id as string;
  volumes.add(id);
  return id;
}

/** A kubelet-like pod path, six levels below `base`: a relative link climbing out of the volume lands elsewhere than on the server. */
const podPath = (base: string) => join(base, 'kubelet', 'pods', 'pod-a', 'volumes', 'kubernetes.io~csi', 'pvc-a', 'mount');

/** Runs `command` as on the node, another machine: the server's root and the sentinel's directory are not there, /etc/passwd is the node's. */
async function asNode(command: string[]) {
  const script = 'mount -t tmpfs -o size=1m tmpfs "$1" && mount -t tmpfs -o size=1m tmpfs "$2" && mount --bind "$3" /etc/passwd && shift 3 && exec "$@"';
  const nodePasswd = join(work, 'node-passwd');
  return execa('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'as-node', server.root, outside, nodePasswd, ...command], {
    timeout: CMD_TIMEOUT_MS,
    reject: false,
  });
}

/** What `path` is (lstat, as `stat -c %F` names it), seen from the node. */
const typeOnNode = async (path: string) => String((await asNode(['stat', '-c', '%F', '--', path])).stdout);
/** What reading `path` from the node gives: its bytes, or nothing and an error. */
const readOnNode = async (path: string) => String((await asNode(['cat', '--', path])).stdout);
/** The secret that reading `path` from the node gives away, if any. */
const leakedOnNode = async (path: string) => {
  const got = await readOnNode(path);
  return [secrets.b, secrets.sentinel, secrets.record, PASSWD].find((s) => got.includes(s));
};

/** The link targets (A's record only while A exists), B's data and the sentinel's directory: unchanged means nothing wrote or removed them. */
const targets = (withRecord = true) =>
  fingerprint([...(withRecord ? [recordFile] : []), onServer(volumeDir(b), 'data', 'secret.txt'), join(outside, 'sentinel.txt'), '/etc/passwd'], [onServer(volumeDir(b), 'data'), outside]);

/** A copy of A's data on the server holds the links as links and the pod's files as they were. */
async function expectCopy(data: string) {
  expect(await linksFound(data, links)).toEqual(expectedLinks(links));
  expect(await filesFound(data)).toEqual(WORKLOAD_FILES);
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tether-symlinks-'));
  outside = join(work, 'outside');
  await mkdir(outside);
  secrets = { b: secret('volume-b-secret'), sentinel: secret('sentinel-outside-the-root'), record: '' };
  await writeFile(join(outside, 'sentinel.txt'), `${secrets.sentinel}\n`);
  await writeFile(join(work, 'node-passwd'), 'the node has a passwd file of its own\n');
  expect((await readFile('/etc/passwd', 'utf8')).startsWith(PASSWD)).toBe(true);
  server = await startSshServer();
  expect(relative(server.root, outside).startsWith('..')).toBe(true); // outside the served tree
  driver = await startDriver(server, { nodeId: 'node-a', mode: 'all' });
  csi = csiClient(driver.endpoint);
  await csi.NodeGetInfo({});
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  await tearDown({ work, drivers: [{ driver, csi, staged, published }], volumes: { controller: csi, ids: volumes, nodeIds: ['node-a'] }, servers: [server] });
}, HOOK_TIMEOUT_MS);

describe('a pod points symlinks out of its volume', () => {
  it('volume B holds a secret; volume A is published to the pod, which makes its links through the mount', async () => {
    b = await createVolume(uniq('pvc-b'));
    await writeFile(onServer(volumeDir(b), 'data', 'secret.txt'), `${secrets.b}\n`);
    a = await createVolume(uniq('pvc-a'));
    await csi.ControllerPublishVolume({ volume_id: a, node_id: 'node-a', volume_capability: RWX, readonly: false });
    staging = join(work, 'kubelet', 'plugins', 'kubernetes.io', 'csi', 'globalmount-a');
    await mkdir(staging, { recursive: true });
    staged.set(staging, a);
    await csi.NodeStageVolume({ volume_id: a, staging_target_path: staging, volume_capability: RWX });
    target = podPath(work);
    published.set(target, a);
    await csi.NodePublishVolume({ volume_id: a, staging_target_path: staging, target_path: target, volume_capability: RWX, readonly: false });

    const record = await recordOn(onServer(volumeDir(a)));
    const recordName = `volume.${String(record.generation)}.json`;
    recordFile = onServer(volumeDir(a), recordName);
    secrets.record = String(record.writeId);
    links = workloadLinks({ root: server.root, a: volumeDir(a), b: volumeDir(b), record: recordName, outside });
    reads = workloadReads(secrets);

    // The workload's own commands, through its mount.
    const pod = (command: string, ...args: string[]) => execa(command, args, { timeout: CMD_TIMEOUT_MS });
    await pod('mkdir', join(target, 'sub'));
    for (const [file, content] of Object.entries(WORKLOAD_FILES)) await execa('tee', [join(target, file)], { input: content, timeout: CMD_TIMEOUT_MS });
    for (const link of links) await pod('ln', '-s', '--', link.to, join(target, link.name));

    // On the server they are symlinks with exactly these texts, and every target is there to be reached.
    await expectCopy(onServer(volumeDir(a), 'data'));
    for (const link of links) expect({ link: link.name, reaches: await exists(onServer(volumeDir(a), 'data', link.name)) }).toEqual({ link: link.name, reaches: true }); // access() follows
  }, TEST_TIMEOUT_MS);

  it("read through the pod's mount from the node, each link is a symlink and gives away nothing of what it points at on the server", async () => {
    for (const link of links) expect({ link: link.name, type: await typeOnNode(join(target, link.name)) }).toEqual({ link: link.name, type: 'symbolic link' });
    for (const read of reads) expect({ read: read.path, leaked: await leakedOnNode(join(target, read.path)) }).toEqual({ read: read.path, leaked: undefined });
  }, TEST_TIMEOUT_MS);

  it('control: through a hand-made sshfs mount of A with follow_symlinks, the same reads do reach every secret (so the test above would catch it)', async () => {
    const control = podPath(join(work, 'control'));
    await mkdir(control, { recursive: true });
    const knownHosts = join(work, 'known_hosts');
    await writeFile(knownHosts, `[${server.host}]:${server.port} ${server.hostKey}\n`);
    const options = [`IdentityFile=${server.clientKeyFile}`, `UserKnownHostsFile=${knownHosts}`, 'StrictHostKeyChecking=yes', 'BatchMode=yes', 'follow_symlinks'];
    await execa('sshfs', [`${server.user}@${server.host}:${onServer(volumeDir(a), 'data')}`, control, '-p', String(server.port), '-o', options.join(',')], { timeout: CMD_TIMEOUT_MS });
    try {
      expect(await typeOnNode(join(control, 'record-relative'))).toBe('regular file');
      for (const read of reads) expect({ read: read.path, leaked: await leakedOnNode(join(control, read.path)) }).toEqual({ read: read.path, leaked: read.secret });
    } finally {
      await execa('umount', ['-l', control], { timeout: CMD_TIMEOUT_MS });
    }
  }, TEST_TIMEOUT_MS);
});

describe('snapshot, restore and clone copy the links as links; delete and archive leave their targets alone', () => {
  let snapshotId: string;
  let restored: string;
  let clone: string;
  let before: string;

  it('CreateSnapshot of A: the snapshot holds each link as a symlink with its text, and no byte of any target', async () => {
    before = await targets();
    snapshotId = (await csi.CreateSnapshot({ name: uniq('snap-links'), source_volume_id: a })).snapshot.snapshot_id as string;
    await expectCopy(onServer(volumeDir(snapshotId), 'data'));
    expect(await secretsUnder(onServer('.snapshots'), secrets)).toBe('');
    // The copy's scratch directory is gone; A is as the pod left it.
    expect((await readdir(onServer(volumeDir(a)))).filter((n) => n.startsWith('.copy-'))).toEqual([]);
    await expectCopy(onServer(volumeDir(a), 'data'));
    expect(await targets()).toBe(before);
  }, TEST_TIMEOUT_MS);

  it('CreateVolume from the snapshot (onDelete=archive) and CreateVolume from A: both hold the links as links, and no byte of any target', async () => {
    restored = await createVolume(uniq('pvc-restored'), { parameters: { onDelete: 'archive' }, volume_content_source: { snapshot: { snapshot_id: snapshotId } } });
    clone = await createVolume(uniq('pvc-clone'), { volume_content_source: { volume: { volume_id: a } } });
    for (const id of [restored, clone]) {
      await expectCopy(onServer(volumeDir(id), 'data'));
      expect(await secretsUnder(onServer(volumeDir(id)), secrets)).toBe('');
    }
    expect(await targets()).toBe(before);
  }, TEST_TIMEOUT_MS);

  it('DeleteVolume of the clone (onDelete=delete): its directory is gone, every target is still there, unchanged', async () => {
    await csi.DeleteVolume({ volume_id: clone });
    expect(await exists(onServer(volumeDir(clone)))).toBe(false);
    expect(await targets()).toBe(before);
  }, TEST_TIMEOUT_MS);

  it('DeleteVolume of the restored volume (onDelete=archive): the archive holds the links as links, every target is unchanged', async () => {
    await csi.DeleteVolume({ volume_id: restored });
    const archived = (await readdir(onServer('.archive'))).filter((d) => d.startsWith(`${volumeDir(restored)}-`));
    expect(archived).toHaveLength(1);
    await expectCopy(onServer('.archive', archived[0]!, 'data'));
    expect(await secretsUnder(onServer('.archive'), secrets)).toBe('');
    expect(await targets()).toBe(before);
  }, TEST_TIMEOUT_MS);

  it('DeleteSnapshot, then A torn down and deleted: B, the sentinel and /etc/passwd are unchanged', async () => {
    const end = await endStory(csi, { a, snapshotId, staging, target, staged, published }, targets, async (id) => !(await exists(onServer(volumeDir(id)))));
    expect(end).toEqual({ afterSnapshot: before, snapshotGone: true, othersBefore: end.othersBefore, othersAfter: end.othersBefore, aGone: true });
  }, TEST_TIMEOUT_MS);
});

describe('follow_symlinks is refused wherever it could be asked for', () => {
  const FOLLOW = mountCap('SINGLE_NODE_MULTI_WRITER', { mount_flags: ['reconnect', 'follow_symlinks'] });
  const WHY = /"follow_symlinks" is refused: it makes the SSH server resolve the workload's symlinks/;

  it('a StorageClass mount flag in CreateVolume: INVALID_ARGUMENT saying why, and no volume', async () => {
    const name = uniq('pvc-follow');
    const err = await failure(csi.CreateVolume({ name, volume_capabilities: [FOLLOW] }), status.INVALID_ARGUMENT);
    expect(err.details).toMatch(WHY);
    expect((await readdir(server.root)).filter((d) => d.startsWith(name))).toEqual([]);
  }, TEST_TIMEOUT_MS);

  it('a mount flag in NodeStageVolume: INVALID_ARGUMENT saying why, and nothing mounted', async () => {
    const id = await createVolume(uniq('pvc-stage-follow'));
    await csi.ControllerPublishVolume({ volume_id: id, node_id: 'node-a', volume_capability: RWO, readonly: false });
    const staging = join(work, 'kubelet', 'plugins', 'kubernetes.io', 'csi', 'globalmount-follow');
    await mkdir(staging, { recursive: true });
    const err = await failure(csi.NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: FOLLOW }), status.INVALID_ARGUMENT);
    expect(err.details).toMatch(WHY);
    expect(await mountsUnder(staging)).toEqual([]);
    await csi.ControllerUnpublishVolume({ volume_id: id, node_id: 'node-a' });
  }, TEST_TIMEOUT_MS);

  it('in the backend\'s mountOptions: tether-csi exits with code 2 naming the field and saying why', async () => {
    const config = join(work, 'follow.yaml');
    await writeFile(config, stringify({ backends: [backendConfig(server, 'box', ['reconnect', 'follow_symlinks'])] }));
    const socket = join(work, 'follow.sock');
    const run = await execa('node', [DRIVER_MAIN, '--endpoint', `unix://${socket}`, '--node-id', 'node-a', '--mode', 'all', '--config', config], { timeout: CMD_TIMEOUT_MS, reject: false, env: { NODE_OPTIONS: '' } });
    expect(run.exitCode).toBe(2);
    expect(String(run.stderr)).toMatch(/^tether-csi: .*backends\.0\.mountOptions: mount option "follow_symlinks": /);
    expect(String(run.stderr)).toMatch(WHY);
    expect(await exists(socket)).toBe(false);
  }, TEST_TIMEOUT_MS);
});
