// Bad input and broken state never wedge the driver, leak, or reach outside a volume — each case a
// regression test of what a hostile battery found, against a real sshd and the real driver, all
// calls over ONE gRPC connection (as kubelet has): an oversized ID followed by normal calls;
// `lost+found` and foreign directories in the base; long paths and node IDs; a controller killed
// mid-create, its half-made volumes deleted or finished.
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { startSshServer, type SshServer } from '../support/sshd.js';
import { startDriver, type RunningDriver } from '../support/driver.js';
import { csiClient, type CsiClient } from '../support/csi-client.js';
import { failure, mountCap, tearDown, timed, uniq } from '../support/helpers.js';

const TEST_TIMEOUT_MS = 120_000;
const RWO = mountCap('SINGLE_NODE_MULTI_WRITER');

let server: SshServer;
let driver: RunningDriver;
let csi: CsiClient;
let work: string;
const others: { driver: RunningDriver; csi: CsiClient }[] = [];

const onServer = (...parts: string[]) => join(server.root, ...parts);
const create = async (name: string, extra: object = {}) => (await csi.CreateVolume({ name, volume_capabilities: [RWO], ...extra })).volume.volume_id as string;
const listed = async () => ((await csi.ListVolumes({})).entries as { volume: { volume_id: string } }[]).map((e) => e.volume.volume_id).sort();

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tether-hostile-'));
  server = await startSshServer();
  driver = await startDriver(server, { nodeId: 'node-a' });
  csi = csiClient(driver.endpoint);
  await csi.NodeGetInfo({});
}, 60_000);

afterAll(async () => {
  await tearDown({ work, drivers: [{ driver, csi, staged: new Map(), published: new Map() }, ...others.map((o) => ({ ...o, staged: new Map(), published: new Map() }))], servers: [server] });
}, 60_000);

describe('one oversized request never harms the connection it came on', () => {
  test('a 100,000-character volume ID, 30 times: INVALID_ARGUMENT at once, a short message; the same connection then serves normal calls', async () => {
    const huge = `box/${'x'.repeat(100_000)}`;
    for (let i = 0; i < 30; i++) {
      const { error, ms } = await timed(() => csi.ControllerGetVolume({ volume_id: huge }, { deadlineMs: 5000 }));
      expect(error?.code).toBe(status.INVALID_ARGUMENT);
      expect(error?.details).toMatch(/^volume_id is 100004 bytes; at most 128 are accepted/);
      expect(ms).toBeLessThan(1000);
    }
    expect((await csi.Probe({}, { deadlineMs: 2000 })).ready.value).toBe(true);
    const id = await create(uniq('after-huge'));
    expect((await csi.ControllerGetVolume({ volume_id: id })).volume.volume_id).toBe(id);
  }, TEST_TIMEOUT_MS);

  test.each<[string, string, object]>([
    ['DeleteVolume', 'volume_id', { volume_id: 'x'.repeat(1 << 20) }],
    ['CreateVolume', 'name', { name: '\u202e'.repeat(50_000), volume_capabilities: [RWO] }],
    ['CreateVolume', 'parameters', { name: 'n', volume_capabilities: [RWO], parameters: Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`k${i}`, 'v'])) }],
    ['NodeStageVolume', 'staging_target_path', { volume_id: 'box/v', staging_target_path: `/${'a/'.repeat(2500)}`, volume_capability: RWO }],
    ['NodePublishVolume', 'target_path', { volume_id: 'box/v', staging_target_path: '/tmp/s', target_path: `/tmp/${'b'.repeat(300)}`, volume_capability: RWO }],
    ['ControllerPublishVolume', 'node_id', { volume_id: 'box/v', node_id: 'n'.repeat(257), volume_capability: RWO }],
  ])('%s with an oversized %s: INVALID_ARGUMENT naming the field, nothing echoed; Probe answers after', async (method, field, request) => {
    const err = await failure(csi[method]!(request, { deadlineMs: 5000 }), status.INVALID_ARGUMENT);
    expect(err.details).toContain(field);
    expect(Buffer.byteLength(err.details)).toBeLessThan(300);
    expect((await csi.Probe({}, { deadlineMs: 2000 })).ready.value).toBe(true);
  }, TEST_TIMEOUT_MS);
});

describe('a base directory that holds more than tether volumes', () => {
  test('lost+found (as every fresh ext4 export has) and foreign directories: List lists the volumes only; Get says NOT_FOUND; DeleteVolume touches nothing of theirs', async () => {
    const id = await create(uniq('beside-lost-found'));
    await mkdir(onServer('lost+found'), { mode: 0o700 });
    await mkdir(onServer('photos', 'data'), { recursive: true });
    await writeFile(onServer('photos', 'holiday.jpg'), 'precious');
    expect(await listed()).toContain(id);
    expect((await listed()).filter((v) => /lost\+found|photos/.test(v))).toEqual([]);
    await failure(csi.ControllerGetVolume({ volume_id: 'box/lost+found' }), status.NOT_FOUND);
    await failure(csi.ControllerGetVolume({ volume_id: 'box/photos' }), status.NOT_FOUND);
    await csi.DeleteVolume({ volume_id: 'box/photos' });
    await csi.DeleteVolume({ volume_id: 'box/lost+found' });
    expect(await readFile(onServer('photos', 'holiday.jpg'), 'utf8')).toBe('precious');
    expect(await readdir(onServer())).toEqual(expect.arrayContaining(['lost+found', 'photos']));
  }, TEST_TIMEOUT_MS);
});

describe('long node IDs', () => {
  test('a node plugin whose ID is 250 bytes of unicode registers (its record file name stays within NAME_MAX) and can be published to', async () => {
    const nodeId = 'ü'.repeat(125);
    const node = await startDriver(server, { nodeId, mode: 'node' });
    const nodeCsi = csiClient(node.endpoint);
    others.push({ driver: node, csi: nodeCsi });
    expect((await nodeCsi.NodeGetInfo({})).node_id).toBe(nodeId);
    const files = await readdir(onServer('.nodes'));
    expect(files.every((f) => Buffer.byteLength(f) <= 255)).toBe(true);
    const id = await create(uniq('long-node'));
    await csi.ControllerPublishVolume({ volume_id: id, node_id: nodeId, volume_capability: RWO });
    expect((await csi.ControllerGetVolume({ volume_id: id })).status.published_node_ids).toEqual([nodeId]);
    await csi.ControllerUnpublishVolume({ volume_id: id, node_id: nodeId });
  }, TEST_TIMEOUT_MS);
});

describe('a controller killed in the middle of CreateVolume', () => {
  test('kill -9 while 12 clones are copied: the half-made volumes are invisible; DeleteVolume removes half of them, the retried CreateVolume finishes the others', async () => {
    const source = await create(uniq('clone-source'));
    const data = onServer(source.split('/')[1]!, 'data');
    for (let i = 0; i < 150; i++) await writeFile(join(data, `file-${i}`), Buffer.alloc(64 * 1024, i));
    const names = Array.from({ length: 12 }, (_, i) => `killed-${i}`);
    const before = await listed();
    const calls = names.map((name) => create(name, { volume_content_source: { volume: { volume_id: source } } }).catch(() => undefined));
    await new Promise((r) => setTimeout(r, 400));
    driver.process.kill('SIGKILL');
    await Promise.all(calls);
    const halfMade = (await readdir(onServer())).filter((d) => d.startsWith('killed-'));
    csi.close();
    await driver.stop().catch(() => undefined);
    driver = await startDriver(server, { nodeId: 'node-a' });
    csi = csiClient(driver.endpoint);
    // Whatever was left half-made is invisible: the list is what it was, plus the clones that finished before the kill.
    const finishedBeforeKill = (await listed()).filter((v) => !before.includes(v));
    expect(finishedBeforeKill.length).toBeLessThan(names.length);
    expect(halfMade.length).toBeGreaterThan(finishedBeforeKill.length);

    const [toDelete, toFinish] = [names.slice(0, 6), names.slice(6)];
    for (const name of toDelete) await csi.DeleteVolume({ volume_id: `box/${name}` });
    for (const name of toFinish) await create(name, { volume_content_source: { volume: { volume_id: source } } });
    const left = (await readdir(onServer())).filter((d) => d.startsWith('killed-')).sort();
    expect(left).toEqual([...toFinish].sort());
    for (const name of toFinish) expect((await readdir(onServer(name, 'data'))).length).toBe(150);
    expect((await listed()).filter((v) => v.startsWith('box/killed-'))).toEqual(toFinish.map((n) => `box/${n}`).sort());
  }, TEST_TIMEOUT_MS);
});

afterAll(() => rm(work, { recursive: true, force: true }));
