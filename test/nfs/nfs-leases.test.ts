// Writer leases on NFS, INSIDE the user-mode Linux guest (test/nfs/run.sh): a controller and two
// node plugins on one nfs-ganesha export, short terms (5 s, renewed every second, fenced 2 s
// early). node-a's plugin is frozen (SIGSTOP): it stops renewing while its kernel NFS mount lives
// on. node-b takes the volume over only after a full term; node-a, thawed, fences the volume and
// says so. What the fence can do depends on the kernel (see the README): it is printed.
import { mkdtemp, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { status } from '@grpc/grpc-js';
import { csiClient, type CsiClient } from '../support/csi-client.js';
import { nfsBackendConfig, startDriverWith, type RunningDriver } from '../support/driver.js';
import { cat, failure, mountCap, recordOn, tearDown, uniq, volumeDir, write } from '../support/helpers.js';

if (process.env.IN_UML !== '1') throw new Error('the NFS tests run inside the guest: bash test/nfs/run.sh');

const EXPORT_DIR = process.env.NFS_EXPORT_DIR!;
const RWO = mountCap('SINGLE_NODE_WRITER');
const extraConfig = { lease: { termSeconds: 5, renewSeconds: 1, fenceMarginSeconds: 2 }, releaseIdleAfterSeconds: 0 };

let work: string;
let controllerDriver: RunningDriver;
let nodeADriver: RunningDriver;
let nodeBDriver: RunningDriver;
let c: CsiClient;
let na: CsiClient;
let nb: CsiClient;
let id: string;
const staged = { a: new Map<string, string>(), b: new Map<string, string>() };
const published = { a: new Map<string, string>(), b: new Map<string, string>() };

beforeAll(async () => {
  work = await mkdtemp('/tmp/tether-nfs-leases-');
  controllerDriver = await startDriverWith([nfsBackendConfig()], { mode: 'controller', extraConfig, logLevel: 'info' });
  nodeADriver = await startDriverWith([nfsBackendConfig()], { mode: 'node', nodeId: 'node-a', extraConfig, logLevel: 'info' });
  nodeBDriver = await startDriverWith([nfsBackendConfig()], { mode: 'node', nodeId: 'node-b', extraConfig, logLevel: 'info' });
  [c, na, nb] = [controllerDriver, nodeADriver, nodeBDriver].map((d) => csiClient(d.endpoint)) as [CsiClient, CsiClient, CsiClient];
  await na.NodeGetInfo({});
  await nb.NodeGetInfo({});
}, 240_000);

afterAll(async () => {
  if (nodeADriver) process.kill(nodeADriver.process.pid!, 'SIGCONT');
  await tearDown({
    work,
    drivers: [{ driver: nodeADriver, csi: na, staged: staged.a, published: published.a }, { driver: nodeBDriver, csi: nb, staged: staged.b, published: published.b }, { driver: controllerDriver, csi: c }],
    volumes: { controller: c, ids: id ? [id] : [], nodeIds: ['node-a', 'node-b'] },
    servers: [],
  });
}, 180_000);

const paths = (node: 'a' | 'b') => ({ staging: join(work, `${node}-staging`), target: join(work, `${node}-pod`) });
async function mountOn(node: 'a' | 'b') {
  const csi = node === 'a' ? na : nb;
  const { staging, target } = paths(node);
  await csi.NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: RWO });
  staged[node].set(staging, id);
  await csi.NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: RWO });
  published[node].set(target, id);
  return target;
}
const record = () => recordOn(join(EXPORT_DIR, volumeDir(id)));

it('node-a stops renewing: node-b takes over after a full term, recorded; node-a fences itself when it runs again, and says so', async () => {
  id = (await c.CreateVolume({ name: uniq('leased'), volume_capabilities: [RWO] })).volume.volume_id as string;
  await c.ControllerPublishVolume({ volume_id: id, node_id: 'node-a', volume_capability: RWO });
  const targetA = await mountOn('a');
  expect((await write(join(targetA, 'a.txt'), 'from node-a\n')).exitCode).toBe(0);
  expect(((await record()).leases as { nodeId: string }[]).map((l) => l.nodeId)).toEqual(['node-a']);

  await c.ControllerUnpublishVolume({ volume_id: id, node_id: 'node-a' }); // the force-detach
  const refused = await failure(c.ControllerPublishVolume({ volume_id: id, node_id: 'node-b', volume_capability: RWO }), status.FAILED_PRECONDITION);
  expect(refused.details).toContain('held by node node-a');

  process.kill(nodeADriver.process.pid!, 'SIGSTOP');
  const frozenAt = Date.now();
  for (;;) {
    if (await c.ControllerPublishVolume({ volume_id: id, node_id: 'node-b', volume_capability: RWO }).then(() => true, () => false)) break;
    expect(Date.now() - frozenAt).toBeLessThan(5_000 + 10_000);
    await sleep(250);
  }
  const takeoverMs = Date.now() - frozenAt;
  expect(takeoverMs).toBeGreaterThanOrEqual(5_000);
  expect((await record()).takeovers).toEqual([expect.objectContaining({ from: 'node-a', to: 'node-b' })]);
  const targetB = await mountOn('b');
  expect((await cat(join(targetB, 'a.txt'))).stdout).toBe('from node-a');

  process.kill(nodeADriver.process.pid!, 'SIGCONT');
  let fence: { steps: string[]; fenceMs: number } | undefined;
  for (let i = 0; i < 40 && !fence; i++, await sleep(250)) {
    const line = nodeADriver.logs().split('\n').find((l) => l.includes('"event":"fence"'));
    fence = line ? JSON.parse(line) : undefined;
  }
  expect(fence?.steps.join(' | ')).toMatch(/umount --force \(requests in flight failed\)/);
  const stats = await na.NodeGetVolumeStats({ volume_id: id, volume_path: targetA });
  expect(stats.volume_condition).toEqual({ abnormal: true, message: expect.stringContaining('fenced on this node') });
  expect((await failure(na.NodePublishVolume({ volume_id: id, staging_target_path: paths('a').staging, target_path: join(work, 'a-pod2'), volume_capability: RWO }), status.FAILED_PRECONDITION)).details).toMatch(/was fenced/);
  expect((await failure(na.NodeStageVolume({ volume_id: id, staging_target_path: paths('a').staging, volume_capability: RWO }), status.FAILED_PRECONDITION)).details).toContain('node-b');

  // What the kernel let through after the fence (measured, not promised: see the README).
  const late = await write(join(targetA, 'late.txt'), 'late from node-a\n');
  await sleep(500);
  const landed = (await readFile(join(EXPORT_DIR, volumeDir(id), 'data', 'late.txt'), 'utf8').catch(() => '')) !== '';
  console.log(`nfs leases: takeover ${takeoverMs} ms after node-a stopped renewing (term 5 s); fence ${fence?.fenceMs} ms: ${fence?.steps.join(' | ')}; a write by node-a's workload after the fence ${late.exitCode === 0 ? 'succeeded' : 'failed'} and ${landed ? 'reached' : 'did not reach'} the server`);
}, 120_000);

it('node-a unstages its fenced volume without touching node-b\'s lease', async () => {
  await na.NodeUnpublishVolume({ volume_id: id, target_path: paths('a').target });
  published.a.delete(paths('a').target);
  await na.NodeUnstageVolume({ volume_id: id, staging_target_path: paths('a').staging });
  staged.a.delete(paths('a').staging);
  expect(((await record()).leases as { nodeId: string }[]).map((l) => l.nodeId)).toEqual(['node-b']);
  expect((await write(join(paths('b').target, 'b.txt'), 'from node-b\n')).exitCode).toBe(0);
}, 60_000);
