// "A single-writer volume is never written from two nodes at once" — also where the CO does not call
// ControllerPublish (Docker Swarm after a leader change, a CSIDriver with attachRequired: false, a
// hand-run CO), and nothing of anyone else's is ever unmounted. Three node plugins on one SSH
// server: node-a (with the controller), node-b and node-c, each with its own kubelet directory.
import { mkdir, mkdtemp, readdir, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { status } from '@grpc/grpc-js';
import { execa } from 'execa';
import { csiClient, type CsiClient } from '../support/csi-client.js';
import { startDriver, type RunningDriver } from '../support/driver.js';
import { CMD_TIMEOUT_MS, cat, exists, failure, isMounted, mountCap, mountsUnder, recordOn, tearDown, uniq, volumeDir, write } from '../support/helpers.js';
import { startSshServer, type SshServer } from '../support/sshd.js';

const RWO = mountCap('SINGLE_NODE_WRITER');
/** Nodes let go of a claimed volume this long after its last target went (default 30 s). */
const GRACE_S = 2;

interface Node {
  id: string;
  driver: RunningDriver;
  csi: CsiClient;
  dir: string;
  staged: Map<string, string>;
  published: Map<string, string>;
}

let server: SshServer;
let work: string;
let nodeA: Node;
let nodeB: Node;
let nodeC: Node;
/** Run as Swarm's plugin (--orchestrator swarm): Swarm publishes with ControllerPublish, yet never unstages. */
let nodeD: Node;
let controller: CsiClient;
const volumes = new Set<string>();

async function startNode(id: string, mode: 'all' | 'node', extraArgs: string[] = []): Promise<Node> {
  const dir = join(work, id);
  await mkdir(dir);
  const driver = await startDriver(server, { nodeId: id, mode, extraConfig: { releaseIdleAfterSeconds: GRACE_S }, extraArgs });
  return { id, driver, csi: csiClient(driver.endpoint), dir, staged: new Map(), published: new Map() };
}

const createVolume = async (cap = RWO) => {
  const id = (await controller.CreateVolume({ name: uniq('pvc'), volume_capabilities: [cap] })).volume.volume_id as string;
  volumes.add(id);
  return id;
};
const paths = (node: Node, pod: string) => ({ staging: join(node.dir, 'plugins', pod, 'globalmount'), target: join(node.dir, 'pods', pod, 'volumes', 'data') });
const stage = (node: Node, id: string, pod: string, cap = RWO) => {
  node.staged.set(paths(node, pod).staging, id);
  return node.csi.NodeStageVolume({ volume_id: id, staging_target_path: paths(node, pod).staging, volume_capability: cap });
};
const publish = (node: Node, id: string, pod: string, cap = RWO) => {
  node.published.set(paths(node, pod).target, id);
  return node.csi.NodePublishVolume({ volume_id: id, staging_target_path: paths(node, pod).staging, target_path: paths(node, pod).target, volume_capability: cap });
};
const unpublish = async (node: Node, id: string, pod: string) => {
  await node.csi.NodeUnpublishVolume({ volume_id: id, target_path: paths(node, pod).target });
  node.published.delete(paths(node, pod).target);
};
const unstage = async (node: Node, id: string, pod: string) => {
  await node.csi.NodeUnstageVolume({ volume_id: id, staging_target_path: paths(node, pod).staging });
  node.staged.delete(paths(node, pod).staging);
};
const leasesOf = async (id: string) => ((await recordOn(join(server.root, volumeDir(id)))).leases as { nodeId: string }[]).map((l) => l.nodeId);
const claimsOf = async (id: string) => ((await recordOn(join(server.root, volumeDir(id)))).claims as { nodeId: string }[]).map((c) => c.nodeId);

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tether-single-writer-'));
  server = await startSshServer();
  nodeA = await startNode('node-a', 'all');
  controller = nodeA.csi;
  nodeB = await startNode('node-b', 'node');
  nodeC = await startNode('node-c', 'node');
  nodeD = await startNode('node-d', 'node', ['--orchestrator', 'swarm']);
}, 60_000);

afterAll(async () => {
  await tearDown({ work, drivers: [nodeA, nodeB, nodeC, nodeD], volumes: { controller, ids: volumes, nodeIds: ['node-a', 'node-b', 'node-c', 'node-d'] }, servers: [server] });
}, 120_000);

describe('without ControllerPublish, node claims keep a single-writer volume on one node', () => {
  it("node-b's NodeStage is refused naming node-a, which holds it; once node-a unstages, node-b stages it and finds node-a's data", async () => {
    const id = await createVolume();
    await stage(nodeA, id, 'app');
    await publish(nodeA, id, 'app');
    expect((await write(join(paths(nodeA, 'app').target, 'log.txt'), 'written on node-a\n')).exitCode).toBe(0);
    expect(await claimsOf(id)).toEqual(['node-a']);

    const refused = await failure(stage(nodeB, id, 'app'), status.FAILED_PRECONDITION);
    expect(refused.details).toContain('node-a');
    // node-b mounts while its claim is decided: refused, the mount it made is gone, and its key copy with it.
    expect(await isMounted(paths(nodeB, 'app').staging)).toBe(false);
    expect(await exists(join(nodeB.driver.dir, 'run', 'mounts', Buffer.from(paths(nodeB, 'app').staging).toString('base64url').slice(-120)))).toBe(false);
    nodeB.staged.delete(paths(nodeB, 'app').staging);

    await unpublish(nodeA, id, 'app');
    await unstage(nodeA, id, 'app');
    expect(await claimsOf(id)).toEqual([]);
    await stage(nodeB, id, 'app');
    await publish(nodeB, id, 'app');
    expect((await cat(join(paths(nodeB, 'app').target, 'log.txt'))).stdout).toBe('written on node-a');
    expect(await claimsOf(id)).toEqual(['node-b']);
    await unpublish(nodeB, id, 'app');
    await unstage(nodeB, id, 'app');
  }, 60_000);

  it('a NodeUnstage of another staging path (a confused CO) leaves the claim: the volume is still staged here', async () => {
    const id = await createVolume();
    await stage(nodeA, id, 'app');
    await nodeA.csi.NodeUnstageVolume({ volume_id: id, staging_target_path: paths(nodeA, 'elsewhere').staging });
    expect(await isMounted(paths(nodeA, 'app').staging)).toBe(true);
    expect(await claimsOf(id)).toEqual(['node-a']);
    expect((await failure(stage(nodeB, id, 'app'), status.FAILED_PRECONDITION)).details).toContain('node-a');
    nodeB.staged.delete(paths(nodeB, 'app').staging);
    await unstage(nodeA, id, 'app');
    expect(await claimsOf(id)).toEqual([]);
  }, 60_000);

  it('published to node-b by ControllerPublish, the volume cannot be staged for writing on node-c', async () => {
    const id = await createVolume();
    await controller.ControllerPublishVolume({ volume_id: id, node_id: 'node-b', volume_capability: RWO });
    const refused = await failure(stage(nodeC, id, 'app'), status.FAILED_PRECONDITION);
    expect(refused.details).toContain('node-b');
    nodeC.staged.delete(paths(nodeC, 'app').staging);
    await stage(nodeB, id, 'app'); // the node it is published to: no claim needed
    expect(await claimsOf(id)).toEqual([]);
    await unstage(nodeB, id, 'app');
    await controller.ControllerUnpublishVolume({ volume_id: id, node_id: 'node-b' });
  }, 60_000);

  it('a claim keeps ControllerPublish of the volume to another node off', async () => {
    const id = await createVolume();
    await stage(nodeC, id, 'app');
    const refused = await failure(controller.ControllerPublishVolume({ volume_id: id, node_id: 'node-b', volume_capability: RWO }), status.FAILED_PRECONDITION);
    expect(refused.details).toContain('staged on node node-c');
    await unstage(nodeC, id, 'app');
    await controller.ControllerPublishVolume({ volume_id: id, node_id: 'node-b', volume_capability: RWO });
    await controller.ControllerUnpublishVolume({ volume_id: id, node_id: 'node-b' });
  }, 60_000);

  it('DeleteVolume of a volume staged and published with no ControllerPublish: refused naming the node; the data under the live mount is intact', async () => {
    const id = await createVolume();
    await stage(nodeA, id, 'app');
    await publish(nodeA, id, 'app');
    await write(join(paths(nodeA, 'app').target, 'precious.txt'), 'still here\n');
    const refused = await failure(controller.DeleteVolume({ volume_id: id }), status.FAILED_PRECONDITION);
    expect(refused.details).toContain('staged on node node-a');
    expect((await cat(join(paths(nodeA, 'app').target, 'precious.txt'))).stdout).toBe('still here');
    expect(await readdir(paths(nodeA, 'app').target)).toEqual(['precious.txt']);
    await unpublish(nodeA, id, 'app');
    await unstage(nodeA, id, 'app');
    await controller.DeleteVolume({ volume_id: id });
    volumes.delete(id);
  }, 60_000);

  it(`a CO that never sends NodeUnstage (Docker Swarm): ${GRACE_S} s after the last target went, the node lets go by itself; a later NodePublish there stages it again`, async () => {
    const id = await createVolume();
    await stage(nodeA, id, 'task');
    await publish(nodeA, id, 'task');
    await write(join(paths(nodeA, 'task').target, 'a.txt'), 'from node-a\n');
    await unpublish(nodeA, id, 'task'); // the task stopped; no NodeUnstage follows
    expect(await isMounted(paths(nodeA, 'task').staging)).toBe(true);
    expect(await claimsOf(id)).toEqual(['node-a']);
    // Within the grace, a new task on node-a gets it back at once (nothing was let go).
    await publish(nodeA, id, 'task');
    await unpublish(nodeA, id, 'task');

    const deadline = Date.now() + GRACE_S * 1000 + 10_000;
    while ((await claimsOf(id)).length && Date.now() < deadline) await sleep(200);
    expect(await claimsOf(id)).toEqual([]);
    expect(await isMounted(paths(nodeA, 'task').staging)).toBe(false);
    expect(nodeA.driver.logs()).toContain('let go of a volume no workload used for the grace period');

    // The task moves to node-b, which can now take the volume.
    await stage(nodeB, id, 'task');
    await publish(nodeB, id, 'task');
    expect((await cat(join(paths(nodeB, 'task').target, 'a.txt'))).stdout).toBe('from node-a');
    // Swarm sends node-a a NodePublish of the old staging path (it thinks the volume is still staged there): refused while node-b holds it.
    const refused = await failure(publish(nodeA, id, 'task'), status.FAILED_PRECONDITION);
    expect(refused.details).toContain('node-b');
    nodeA.published.delete(paths(nodeA, 'task').target);
    await unpublish(nodeB, id, 'task');
    await unstage(nodeB, id, 'task');
    // node-b has let go: now node-a's NodePublish stages the volume again, claim and all.
    await publish(nodeA, id, 'task');
    expect(await claimsOf(id)).toEqual(['node-a']);
    expect((await cat(join(paths(nodeA, 'task').target, 'a.txt'))).stdout).toBe('from node-a');
    await unpublish(nodeA, id, 'task');
    await unstage(nodeA, id, 'task');
  }, 60_000);
});

describe('with ControllerPublish, a node of a CO that never unstages (Swarm) lets go of its writer lease by itself', () => {
  it(`node-d (--orchestrator swarm) drops its lease ${GRACE_S} s after its last target went; node-b gets the volume; a Kubernetes node keeps its staging`, async () => {
    const id = await createVolume();
    await controller.ControllerPublishVolume({ volume_id: id, node_id: 'node-d', volume_capability: RWO });
    await stage(nodeD, id, 'task');
    await publish(nodeD, id, 'task');
    await write(join(paths(nodeD, 'task').target, 'd.txt'), 'from node-d\n');
    await unpublish(nodeD, id, 'task'); // the task moved; Swarm sends no NodeUnstage
    await controller.ControllerUnpublishVolume({ volume_id: id, node_id: 'node-d' });
    expect(await leasesOf(id)).toEqual(['node-d']); // staged, renewing: the next node must wait
    const refused = await failure(controller.ControllerPublishVolume({ volume_id: id, node_id: 'node-b', volume_capability: RWO }), status.FAILED_PRECONDITION);
    expect(refused.details).toContain('node-d');
    const deadline = Date.now() + GRACE_S * 1000 + 10_000;
    while ((await leasesOf(id)).length && Date.now() < deadline) await sleep(200);
    expect(await leasesOf(id)).toEqual([]);
    expect(await isMounted(paths(nodeD, 'task').staging)).toBe(false);
    nodeD.staged.delete(paths(nodeD, 'task').staging);

    await controller.ControllerPublishVolume({ volume_id: id, node_id: 'node-b', volume_capability: RWO });
    await stage(nodeB, id, 'task');
    await publish(nodeB, id, 'task');
    expect((await cat(join(paths(nodeB, 'task').target, 'd.txt'))).stdout).toBe('from node-d');
    // node-b runs for Kubernetes, whose kubelet always unstages: an idle staging stays until it does.
    await unpublish(nodeB, id, 'task');
    await sleep(GRACE_S * 1000 + 2000);
    expect(await isMounted(paths(nodeB, 'task').staging)).toBe(true);
    expect(await leasesOf(id)).toEqual(['node-b']);
    await unstage(nodeB, id, 'task');
    await controller.ControllerUnpublishVolume({ volume_id: id, node_id: 'node-b' });
  }, 60_000);
});

describe("messages in the CO's own words", () => {
  it('node-d runs for Swarm: a volume whose FUSE daemon died says to restart the task, not the pod', async () => {
    const id = await createVolume();
    await controller.ControllerPublishVolume({ volume_id: id, node_id: 'node-d', volume_capability: RWO });
    await stage(nodeD, id, 'words');
    await publish(nodeD, id, 'words');
    const { staging, target } = paths(nodeD, 'words');
    await execa('pkill', ['-KILL', '-f', `sshfs .*${staging}`], { reject: false, timeout: CMD_TIMEOUT_MS }); // the daemon dies
    const stats = await nodeD.csi.NodeGetVolumeStats({ volume_id: id, volume_path: target });
    expect(stats.volume_condition).toMatchObject({ abnormal: true, message: expect.stringMatching(/restarting the task does it\)$/) });
    expect(stats.volume_condition.message).not.toMatch(/\bpod\b/);
    await unpublish(nodeD, id, 'words');
    await unstage(nodeD, id, 'words');
    await controller.ControllerUnpublishVolume({ volume_id: id, node_id: 'node-d' });
  }, 60_000);
});

describe('only the volume\'s own mounts are ever unmounted', () => {
  const tmpfsAt = async (path: string) => {
    await mkdir(path, { recursive: true });
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tether-test-foreign', path], { timeout: CMD_TIMEOUT_MS });
    await write(join(path, 'theirs.txt'), 'not tether\'s\n');
  };

  it.each<[string, string]>([
    ['an ID tether did not make', 'NOT_FOUND'],
    ["another volume's ID", 'FAILED_PRECONDITION'],
  ])('a foreign tmpfs at a target and at a staging path, with %s: NodeUnpublish and NodeUnstage leave it mounted (%s)', async (_, code) => {
    const other = await createVolume();
    const id = code === 'NOT_FOUND' ? 'nosuch/x' : other;
    const target = join(nodeC.dir, 'foreign', uniq('target'));
    const staging = join(nodeC.dir, 'foreign', uniq('staging'));
    await tmpfsAt(target);
    await tmpfsAt(staging);
    try {
      const u = await failure(nodeC.csi.NodeUnpublishVolume({ volume_id: id, target_path: target }), status[code as 'NOT_FOUND']);
      const s = await failure(nodeC.csi.NodeUnstageVolume({ volume_id: id, staging_target_path: staging }), status[code as 'NOT_FOUND']);
      if (code === 'FAILED_PRECONDITION') for (const err of [u, s]) expect(err.details).toContain('tether-test-foreign');
      for (const path of [target, staging]) {
        expect(await isMounted(path)).toBe(true);
        expect((await cat(join(path, 'theirs.txt'))).stdout).toBe("not tether's");
      }
    } finally {
      for (const path of [target, staging]) await execa('umount', [path], { timeout: CMD_TIMEOUT_MS, reject: false });
    }
  }, 60_000);

  it('a symlinked kubelet directory (/var/lib/kubelet → elsewhere): stage, publish, unpublish, unstage leave zero mounts and zero key copies', async () => {
    const real = join(nodeB.dir, 'real-kubelet');
    const link = join(nodeB.dir, 'kubelet');
    await mkdir(join(real, 'plugins', 'pv'), { recursive: true });
    await mkdir(join(real, 'pods', 'p1'), { recursive: true });
    await symlink(real, link);
    const staging = join(link, 'plugins', 'pv', 'globalmount');
    const target = join(link, 'pods', 'p1', 'mount');
    const keys = join(nodeB.driver.dir, 'run', 'mounts');
    const id = await createVolume();
    for (let round = 0; round < 2; round++) {
      await nodeB.csi.NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: RWO });
      await nodeB.csi.NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: RWO }); // a retry stacks nothing
      await nodeB.csi.NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: RWO });
      await nodeB.csi.NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: RWO });
      expect(await mountsUnder(real)).toHaveLength(2);
      expect((await write(join(target, 'through-the-link.txt'), 'ok\n')).exitCode).toBe(0);
      const stats = await nodeB.csi.NodeGetVolumeStats({ volume_id: id, volume_path: target });
      expect(stats.volume_condition.abnormal).toBe(false);
      await nodeB.csi.NodeUnpublishVolume({ volume_id: id, target_path: target });
      await nodeB.csi.NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
      expect(await mountsUnder(real)).toEqual([]);
      expect(await readdir(keys).catch(() => [])).toEqual([]);
      expect(await claimsOf(id)).toEqual([]);
    }
  }, 60_000);

  it('a staging path and a target path that are themselves symlinks to directories: the same, nothing stacked, nothing left', async () => {
    const elsewhere = join(nodeB.dir, 'elsewhere');
    await mkdir(join(elsewhere, 'stage'), { recursive: true });
    await mkdir(join(elsewhere, 'target'), { recursive: true });
    await mkdir(join(nodeB.dir, 'links'), { recursive: true });
    const staging = join(nodeB.dir, 'links', 'staging');
    const target = join(nodeB.dir, 'links', 'target');
    await symlink(join(elsewhere, 'stage'), staging);
    await symlink(join(elsewhere, 'target'), target);
    const id = await createVolume();
    await nodeB.csi.NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: RWO });
    await nodeB.csi.NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: RWO });
    await nodeB.csi.NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: RWO });
    expect(await mountsUnder(elsewhere)).toHaveLength(2);
    expect((await write(join(target, 'via-a-link.txt'), 'ok\n')).exitCode).toBe(0);
    await nodeB.csi.NodeUnpublishVolume({ volume_id: id, target_path: target });
    await nodeB.csi.NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
    expect(await mountsUnder(elsewhere)).toEqual([]);
    expect(await readdir(join(nodeB.driver.dir, 'run', 'mounts')).catch(() => [])).toEqual([]);
  }, 60_000);
});
