// "A volume follows its workload": two tether node plugins on one SSH server. Driver A runs the
// controller and the node plugin of node-a (--mode all); driver B is only the node plugin of node-b
// (--mode node). B has no controller: it tells the controller that it exists by registering itself
// with the backend (<root>/.nodes/node-b.json) when it starts, and A's controller reads that.
//
// Both "nodes" are this host, so each has its own staging and pod directories (as two kubelets would),
// and each node's calls go to its own driver's socket. File operations through mounts run as external
// commands with timeouts, so a hung FUSE request can never wedge the test process itself.
import { mkdir, mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { status, type ServiceError } from '@grpc/grpc-js';
import { startSshServer, type SshServer } from '../support/sshd.js';
import { startDriver, type RunningDriver } from '../support/driver.js';
import { csiClient, type CsiClient } from '../support/csi-client.js';
import { cat, exists, failure, mountCap, mountsUnder, tearDown, uniq, volumeDir, write } from '../support/helpers.js';

const TEST_TIMEOUT_MS = 60_000;
const HOOK_TIMEOUT_MS = 90_000;
const REGISTRATION_WAIT_MS = 5_000;

interface Node {
  id: string;
  driver: RunningDriver;
  csi: CsiClient;
  /** This node's kubelet directory: staging and pod targets live under it. */
  dir: string;
  staged: Map<string, string>; // staging path -> volume ID
  published: Map<string, string>; // target path -> volume ID
}

let server: SshServer;
let work: string;
let nodeA: Node;
let nodeB: Node;
/** The controller lives in driver A only. */
let controller: CsiClient;
const volumes = new Set<string>();

async function startNode(id: string, mode: 'all' | 'node'): Promise<Node> {
  const dir = join(work, id);
  await mkdir(dir);
  const driver = await startDriver(server, { nodeId: id, mode });
  return { id, driver, csi: csiClient(driver.endpoint), dir, staged: new Map(), published: new Map() };
}

async function createVolume(name: string, cap: object) {
  const id = (await controller.CreateVolume({ name, volume_capabilities: [cap] })).volume.volume_id as string;
  volumes.add(id);
  return id;
}

/** kubelet on `node`: mkdir the staging dir, NodeStage, NodePublish (the driver makes the target). */
async function mountOn(node: Node, volumeId: string, cap: object, pod: string, readonly = false) {
  const staging = join(node.dir, 'plugins', 'staging', pod);
  await mkdir(staging, { recursive: true });
  node.staged.set(staging, volumeId);
  await node.csi.NodeStageVolume({ volume_id: volumeId, staging_target_path: staging, volume_capability: cap });
  const target = join(node.dir, 'pods', pod, 'mount');
  node.published.set(target, volumeId);
  await node.csi.NodePublishVolume({ volume_id: volumeId, staging_target_path: staging, target_path: target, volume_capability: cap, readonly });
  return { staging, target };
}

/** kubelet on `node` tears everything down it mounted for `volumeId`. */
async function unmountOn(node: Node, volumeId: string) {
  for (const [target, id] of node.published) {
    if (id !== volumeId) continue;
    await node.csi.NodeUnpublishVolume({ volume_id: id, target_path: target });
    node.published.delete(target);
  }
  for (const [staging, id] of node.staged) {
    if (id !== volumeId) continue;
    await node.csi.NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
    node.staged.delete(staging);
  }
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tether-two-nodes-'));
  server = await startSshServer();
  nodeA = await startNode('node-a', 'all');
  controller = nodeA.csi;
  nodeB = await startNode('node-b', 'node');
  await nodeA.csi.NodeGetInfo({}); // kubelet on node-a registers its plugin
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  await tearDown({ work, drivers: [nodeA, nodeB], volumes: { controller, ids: volumes, nodeIds: ['node-a', 'node-b'] }, servers: [server] });
}, HOOK_TIMEOUT_MS);

describe('a volume follows its workload from node-a to node-b', () => {
  it('node-b, which has no controller of its own, becomes known to the controller on node-a by registering with the backend', async () => {
    // B registers in the background as it starts; wait (bounded) until A's controller stops answering NOT_FOUND for node-b.
    const probe = await createVolume(uniq('pvc-probe'), mountCap('MULTI_NODE_MULTI_WRITER'));
    const deadline = Date.now() + REGISTRATION_WAIT_MS;
    let last: ServiceError | undefined;
    for (;;) {
      last = await controller.ControllerPublishVolume({ volume_id: probe, node_id: 'node-b', volume_capability: mountCap('MULTI_NODE_MULTI_WRITER') }).then(
        () => undefined,
        (e: ServiceError) => e,
      );
      if (last?.code !== status.NOT_FOUND || Date.now() > deadline) break;
      await sleep(100);
    }
    expect(last && `${status[last.code]}: ${last.details}`).toBeUndefined();
    expect(JSON.parse(await readFile(join(server.root, '.nodes', 'node-b.json'), 'utf8'))).toMatchObject({ nodeId: 'node-b' });
    await controller.ControllerUnpublishVolume({ volume_id: probe, node_id: 'node-b' });
    await controller.DeleteVolume({ volume_id: probe });
    volumes.delete(probe);
  }, TEST_TIMEOUT_MS);

  it('SINGLE_NODE_WRITER: the volume moves to node-b only after node-a let it go, and the data comes along', async () => {
    const RWO = mountCap('SINGLE_NODE_WRITER');
    const id = await createVolume(uniq('pvc-follow'), RWO);

    // The workload runs on node-a and writes its data.
    await controller.ControllerPublishVolume({ volume_id: id, node_id: 'node-a', volume_capability: RWO, readonly: false });
    const onA = await mountOn(nodeA, id, RWO, 'app-on-a');
    const w = await write(join(onA.target, 'state.txt'), 'written on node-a\n');
    expect(w.exitCode).toBe(0);

    // It is rescheduled to node-b while node-a still holds the volume: refused, naming the holder.
    const refused = await failure(
      controller.ControllerPublishVolume({ volume_id: id, node_id: 'node-b', volume_capability: RWO, readonly: false }),
      status.FAILED_PRECONDITION,
    );
    expect(refused.details).toContain('node-a');
    expect((await controller.ControllerGetVolume({ volume_id: id })).status.published_node_ids).toEqual(['node-a']);

    // node-a lets go: kubelet unmounts, the attach/detach controller unpublishes.
    await unmountOn(nodeA, id);
    expect(await exists(onA.target)).toBe(false);
    expect(await mountsUnder(onA.staging)).toEqual([]);
    await controller.ControllerUnpublishVolume({ volume_id: id, node_id: 'node-a' });

    // Now node-b gets it, mounts it at its own paths through its own driver, and finds the data.
    await controller.ControllerPublishVolume({ volume_id: id, node_id: 'node-b', volume_capability: RWO, readonly: false });
    expect((await controller.ControllerGetVolume({ volume_id: id })).status.published_node_ids).toEqual(['node-b']);
    const onB = await mountOn(nodeB, id, RWO, 'app-on-b');
    expect(onB.target.startsWith(nodeB.dir)).toBe(true);
    expect(await mountsUnder(onB.target)).toEqual([onB.target]);
    const r = await cat(join(onB.target, 'state.txt'));
    expect(r.stdout).toBe('written on node-a');
    expect((await write(join(onB.target, 'state.txt'), 'and now node-b\n')).exitCode).toBe(0);
    expect(await readFile(join(server.root, volumeDir(id), 'data', 'state.txt'), 'utf8')).toBe('and now node-b\n');

    // node-a cannot take it back while node-b holds it.
    const back = await failure(
      controller.ControllerPublishVolume({ volume_id: id, node_id: 'node-a', volume_capability: RWO, readonly: false }),
      status.FAILED_PRECONDITION,
    );
    expect(back.details).toContain('node-b');

    await unmountOn(nodeB, id);
    expect(await exists(onB.target)).toBe(false);
    await controller.ControllerUnpublishVolume({ volume_id: id, node_id: 'node-b' });
    await controller.DeleteVolume({ volume_id: id });
    volumes.delete(id);
  }, TEST_TIMEOUT_MS);

  it('MULTI_NODE_SINGLE_WRITER: a writer on node-a and a reader on node-b; a second writer is refused, naming node-a', async () => {
    const MNSW = mountCap('MULTI_NODE_SINGLE_WRITER');
    const id = await createVolume(uniq('pvc-one-writer'), MNSW);

    await controller.ControllerPublishVolume({ volume_id: id, node_id: 'node-a', volume_capability: MNSW, readonly: false });
    const writer = await mountOn(nodeA, id, MNSW, 'writer');
    expect((await write(join(writer.target, 'log.txt'), 'line from the writer\n')).exitCode).toBe(0);

    // node-b asks to write as well: one writer only, and it is on node-a.
    const second = await failure(
      controller.ControllerPublishVolume({ volume_id: id, node_id: 'node-b', volume_capability: MNSW, readonly: false }),
      status.FAILED_PRECONDITION,
    );
    expect(second.details).toContain('node-a');

    // node-b as a reader is fine, and reads what node-a wrote; its mount refuses writes.
    await controller.ControllerPublishVolume({ volume_id: id, node_id: 'node-b', volume_capability: MNSW, readonly: true });
    expect((await controller.ControllerGetVolume({ volume_id: id })).status.published_node_ids.slice().sort()).toEqual(['node-a', 'node-b']);
    const reader = await mountOn(nodeB, id, MNSW, 'reader', true);
    expect((await cat(join(reader.target, 'log.txt'))).stdout).toBe('line from the writer');
    const w = await write(join(reader.target, 'log.txt'), 'overwrite\n');
    expect(w.exitCode).not.toBe(0);
    expect(w.stderr).toMatch(/Read-only file system/);

    await unmountOn(nodeB, id);
    await unmountOn(nodeA, id);
    expect(await mountsUnder(work)).toEqual([]);
    await controller.ControllerUnpublishVolume({ volume_id: id, node_id: 'node-b' });
    await controller.ControllerUnpublishVolume({ volume_id: id, node_id: 'node-a' });
    await controller.DeleteVolume({ volume_id: id });
    volumes.delete(id);
  }, TEST_TIMEOUT_MS);

  it('ControllerPublish to a node that never registered is NOT_FOUND', async () => {
    const cap = mountCap('SINGLE_NODE_WRITER');
    const id = await createVolume(uniq('pvc-nowhere'), cap);
    const err = await failure(controller.ControllerPublishVolume({ volume_id: id, node_id: 'node-typo', volume_capability: cap, readonly: false }), status.NOT_FOUND);
    expect(err.details).toContain('node-typo');
    expect((await controller.ControllerGetVolume({ volume_id: id })).status.published_node_ids).toEqual([]);
    await controller.DeleteVolume({ volume_id: id });
    volumes.delete(id);
  }, TEST_TIMEOUT_MS);
});
