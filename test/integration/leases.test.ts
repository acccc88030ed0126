// Writer leases on a real SSH server and real sshfs mounts, with short terms (6 s, renewed every
// 0.5 s, fenced 2 s early: a plugin restart must fit into the 4 s between, even on a busy machine). A node plugin frozen with SIGSTOP stands for a node that stops renewing
// while its mounts live on (the partition test, test/partition, cuts real links); a plugin killed
// and started again for one that restarts.
import { mkdir, mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { status } from '@grpc/grpc-js';
import { csiClient, type CsiClient } from '../support/csi-client.js';
import { startDriver, type RunningDriver } from '../support/driver.js';
import { cat, failure, mountCap, recordOn, tearDown, uniq, volumeDir, write } from '../support/helpers.js';
import { freePort, startSshServer, type SshServer } from '../support/sshd.js';

const RWO = mountCap('SINGLE_NODE_WRITER');
const LEASE = { termSeconds: 6, renewSeconds: 0.5, fenceMarginSeconds: 2 };
const TERM_MS = LEASE.termSeconds * 1000;

interface Node {
  id: string;
  driver: RunningDriver;
  csi: CsiClient;
  dir: string;
  runtimeDir: string;
  metrics: string;
  staged: Map<string, string>;
  published: Map<string, string>;
}

let server: SshServer;
let work: string;
let controllerDriver: RunningDriver;
let controller: CsiClient;
let nodeA: Node;
let nodeB: Node;
const volumes = new Set<string>();

async function startNode(id: string, runtimeDir = join(work, id, 'run')): Promise<Node> {
  const dir = join(work, id);
  await mkdir(dir, { recursive: true });
  const metrics = `127.0.0.1:${await freePort()}`;
  const driver = await startDriver(server, { nodeId: id, mode: 'node', metricsAddress: metrics, extraConfig: { lease: LEASE, runtimeDir, releaseIdleAfterSeconds: 0 } });
  const csi = csiClient(driver.endpoint);
  await csi.NodeGetInfo({});
  return { id, driver, csi, dir, runtimeDir, metrics, staged: new Map(), published: new Map() };
}

const paths = (node: Node, pod: string) => ({ staging: join(node.dir, pod, 'globalmount'), target: join(node.dir, pod, 'data') });
async function mountOn(node: Node, id: string, pod: string) {
  const { staging, target } = paths(node, pod);
  await node.csi.NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: RWO });
  node.staged.set(staging, id);
  await node.csi.NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: RWO });
  node.published.set(target, id);
  return target;
}
const record = (id: string) => recordOn(join(server.root, volumeDir(id)));
const leasesOf = async (id: string) => (await record(id)).leases as { nodeId: string; renewals: number; id: string }[];
const createVolume = async () => {
  const id = (await controller.CreateVolume({ name: uniq('pvc-lease'), volume_capabilities: [RWO] })).volume.volume_id as string;
  volumes.add(id);
  return id;
};
const metric = async (node: Node, name: string) => {
  const text = await (await fetch(`http://${node.metrics}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(name)).reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
};

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tether-leases-'));
  server = await startSshServer();
  controllerDriver = await startDriver(server, { mode: 'controller', extraConfig: { lease: LEASE } });
  controller = csiClient(controllerDriver.endpoint);
  nodeA = await startNode('node-a');
  nodeB = await startNode('node-b');
}, 60_000);

afterAll(async () => {
  for (const node of [nodeA, nodeB]) node && process.kill(node.driver.process.pid!, 'SIGCONT');
  await tearDown({ work, drivers: [nodeA, nodeB, { driver: controllerDriver, csi: controller }], volumes: { controller, ids: volumes, nodeIds: ['node-a', 'node-b'] }, servers: [server] });
}, 120_000);

describe('a single-writer volume with a writer lease', () => {
  it('node-a holds the lease while it has the volume staged, and renews it every half second', async () => {
    const id = await createVolume();
    await controller.ControllerPublishVolume({ volume_id: id, node_id: 'node-a', volume_capability: RWO });
    await mountOn(nodeA, id, 'pod1');
    const [first] = await leasesOf(id);
    expect(first).toMatchObject({ nodeId: 'node-a', accessMode: 'SINGLE_NODE_WRITER', termMs: TERM_MS });
    await sleep(2_000);
    const [later] = await leasesOf(id);
    expect(later!.id).toBe(first!.id);
    expect(later!.renewals - first!.renewals).toBeGreaterThanOrEqual(2);
  });

  it('force-detached from node-a, the volume cannot go to node-b while node-a renews: FAILED_PRECONDITION naming node-a and the earliest takeover', async () => {
    const id = [...volumes][0]!;
    await controller.ControllerUnpublishVolume({ volume_id: id, node_id: 'node-a' });
    for (let i = 0; i < 5; i++) {
      const err = await failure(controller.ControllerPublishVolume({ volume_id: id, node_id: 'node-b', volume_capability: RWO }), status.FAILED_PRECONDITION);
      expect(err.details).toMatch(/held by node node-a .*taken over in \d s at the earliest, and only if node node-a stops renewing it/);
      await sleep(1_000);
    }
    // NodeStage on node-b without a publication is refused by the publication rule; with none at all, by node-a's lease.
    const staged = await failure(nodeB.csi.NodeStageVolume({ volume_id: id, staging_target_path: paths(nodeB, 'x').staging, volume_capability: RWO }), status.FAILED_PRECONDITION);
    expect(staged.details).toContain('node-a');
  }, 30_000);

  it('node-a stops renewing (its plugin frozen): a full term later node-b takes the volume over, the record names both; thawed, node-a fences itself at once', async () => {
    const id = [...volumes][0]!;
    const targetA = paths(nodeA, 'pod1').target;
    expect((await write(join(targetA, 'a.txt'), 'from node-a\n')).exitCode).toBe(0);
    process.kill(nodeA.driver.process.pid!, 'SIGSTOP');
    const frozenAt = Date.now();
    let tries = 0;
    for (;;) {
      tries++;
      const ok = await controller.ControllerPublishVolume({ volume_id: id, node_id: 'node-b', volume_capability: RWO }).then(() => true, () => false);
      if (ok) break;
      expect(Date.now() - frozenAt).toBeLessThan(TERM_MS + 5_000);
      await sleep(250);
    }
    const takeoverMs = Date.now() - frozenAt;
    expect(takeoverMs).toBeGreaterThanOrEqual(TERM_MS);
    expect(tries).toBeGreaterThan(1);
    const after = await record(id);
    expect(after.leases).toEqual([]);
    expect(after.takeovers).toEqual([expect.objectContaining({ from: 'node-a', to: 'node-b' })]);
    const targetB = await mountOn(nodeB, id, 'pod1');
    expect((await cat(join(targetB, 'a.txt'))).stdout).toBe('from node-a');
    expect(((await leasesOf(id)).map((l) => l.nodeId))).toEqual(['node-b']);

    process.kill(nodeA.driver.process.pid!, 'SIGCONT');
    await sleep(1_000);
    const fence = nodeA.driver.logs().split('\n').find((l) => l.includes('"event":"fence"'));
    expect(fence).toBeDefined();
    // Its sshfs and ssh were frozen before the abort (an aborted sshfs exits at once): found, their connections reset, killed.
    expect(JSON.parse(fence!).steps.join(' ')).toMatch(/^[1-9]\d* processes frozen, FUSE connection aborted [1-9]\d* connections reset, [1-9]\d* processes killed orphaned connections to .* reset$/);
    const late = await write(join(targetA, 'a.txt'), 'late from node-a\n');
    expect(late.exitCode).not.toBe(0);
    expect(await readFile(join(server.root, volumeDir(id), 'data', 'a.txt'), 'utf8')).toBe('from node-a\n');
    // node-b's mount of the same volume (on this same host, with the same source) is not node-a's to fence.
    expect((await write(join(targetB, 'b.txt'), 'from node-b\n')).exitCode).toBe(0);
    expect(await metric(nodeA, 'tether_lease_fences_total')).toBe(1);
    console.log(`leases: takeover ${takeoverMs} ms after node-a stopped renewing (term ${LEASE.termSeconds} s); fence ${JSON.parse(fence!).fenceMs} ms`);
  }, 30_000);

  it('the fenced volume says why on node-a: stats abnormal, NodePublish refused, and NodeStage there is refused naming node-b', async () => {
    const id = [...volumes][0]!;
    const stats = await nodeA.csi.NodeGetVolumeStats({ volume_id: id, volume_path: paths(nodeA, 'pod1').target });
    expect(stats.volume_condition).toEqual({ abnormal: true, message: expect.stringMatching(/fenced on this node at .*: its lease (was not renewed for \d+ s|was taken over)/) });
    const pub = await failure(nodeA.csi.NodePublishVolume({ volume_id: id, staging_target_path: paths(nodeA, 'pod1').staging, target_path: paths(nodeA, 'pod2').target, volume_capability: RWO }), status.FAILED_PRECONDITION);
    expect(pub.details).toMatch(/was fenced on this node/);
    const restage = await failure(nodeA.csi.NodeStageVolume({ volume_id: id, staging_target_path: paths(nodeA, 'pod1').staging, volume_capability: RWO }), status.FAILED_PRECONDITION);
    expect(restage.details).toContain('node-b');
    // The pod goes: node-a's dead mount is taken down, and nothing of node-b's lease is touched.
    await nodeA.csi.NodeUnpublishVolume({ volume_id: id, target_path: paths(nodeA, 'pod1').target });
    nodeA.published.delete(paths(nodeA, 'pod1').target);
    await nodeA.csi.NodeUnstageVolume({ volume_id: id, staging_target_path: paths(nodeA, 'pod1').staging });
    nodeA.staged.delete(paths(nodeA, 'pod1').staging);
    expect((await leasesOf(id)).map((l) => l.nodeId)).toEqual(['node-b']);
  }, 30_000);

  it('NodeUnstage gives the lease back: node-a gets the volume at once', async () => {
    const id = [...volumes][0]!;
    await nodeB.csi.NodeUnpublishVolume({ volume_id: id, target_path: paths(nodeB, 'pod1').target });
    nodeB.published.delete(paths(nodeB, 'pod1').target);
    await nodeB.csi.NodeUnstageVolume({ volume_id: id, staging_target_path: paths(nodeB, 'pod1').staging });
    nodeB.staged.delete(paths(nodeB, 'pod1').staging);
    expect(await leasesOf(id)).toEqual([]);
    await controller.ControllerUnpublishVolume({ volume_id: id, node_id: 'node-b' });
    await controller.ControllerPublishVolume({ volume_id: id, node_id: 'node-a', volume_capability: RWO });
    await mountOn(nodeA, id, 'pod3');
    expect((await leasesOf(id)).map((l) => l.nodeId)).toEqual(['node-a']);
  }, 30_000);

  it('a node plugin restarted within the term goes on renewing its lease: no fence', async () => {
    const id = [...volumes][0]!;
    const before = (await leasesOf(id))[0]!;
    process.kill(nodeA.driver.process.pid!, 'SIGKILL');
    await nodeA.driver.process.catch(() => undefined);
    nodeA = { ...(await startNode('node-a', nodeA.runtimeDir)), staged: nodeA.staged, published: nodeA.published };
    await sleep(2_000);
    const after = (await leasesOf(id))[0]!;
    expect(after.id).toBe(before.id);
    expect(after.renewals).toBeGreaterThan(before.renewals);
    expect(nodeA.driver.logs()).not.toContain('"event":"fence"');
    expect((await write(join(paths(nodeA, 'pod3').target, 'b.txt'), 'still here\n')).exitCode).toBe(0);
  }, 30_000);

  it('a node plugin down for longer than its term less the margin fences the volume as soon as it starts again', async () => {
    const id = [...volumes][0]!;
    process.kill(nodeA.driver.process.pid!, 'SIGKILL');
    await nodeA.driver.process.catch(() => undefined);
    await sleep(TERM_MS - LEASE.fenceMarginSeconds * 1000 + 500);
    nodeA = { ...(await startNode('node-a', nodeA.runtimeDir)), staged: nodeA.staged, published: nodeA.published };
    expect(nodeA.driver.logs()).toContain('"event":"fence"'); // before it served anything
    expect(nodeA.driver.logs().indexOf('"event":"fence"')).toBeLessThan(nodeA.driver.logs().indexOf('tether is serving'));
    const stats = await nodeA.csi.NodeGetVolumeStats({ volume_id: id, volume_path: paths(nodeA, 'pod3').target });
    expect(stats.volume_condition.message).toMatch(/fenced on this node .*was not renewed for \d+ s \(this node plugin was not running\)/);
  }, 30_000);
});
