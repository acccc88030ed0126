// Two controller replicas on one NFS backend, INSIDE the user-mode Linux guest (test/nfs/run.sh):
// two tether processes, each with its own mount of the export (the kernel NFS client), deciding at
// once. The compare-and-swap of records is an exclusive NFS LINK on the server (nfs-ganesha here):
// a single-writer volume goes to one node, no change is lost, one name makes one volume. And two
// node plugins with no ControllerPublish: the second NodeStage is refused, naming the first.
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { VolumeStore } from '../../src/volumes/store.js';
import { csiClient, type CsiClient } from '../support/csi-client.js';
import { nfsBackendConfig, startDriverWith, type RunningDriver } from '../support/driver.js';
import { localBackend } from '../support/handlers.js';
import { createRace, MadeVolumes, manyWriters, publishRace } from '../support/replica-races.js';
import { cat, failure, mountCap, recordOn, tearDown, uniq, volumeDir, write } from '../support/helpers.js';

if (process.env.IN_UML !== '1') throw new Error('the NFS tests run inside the guest: bash test/nfs/run.sh');

const EXPORT_DIR = process.env.NFS_EXPORT_DIR!;
const ROUNDS = 5;
/** Nodes that publish one MULTI_NODE_MULTI_WRITER volume at once (each change is a few NFS round trips in the guest). */
const MANY = 10;
const NODES = Array.from({ length: 20 }, (_, i) => `node-${String(i).padStart(2, '0')}`);
const SNW = mountCap('SINGLE_NODE_WRITER');

let work: string;
let replicaA: RunningDriver;
let replicaB: RunningDriver;
let a: CsiClient;
let b: CsiClient;
const volumes = new MadeVolumes();

const publishedOnServer = async (id: string) => ((await recordOn(join(EXPORT_DIR, volumeDir(id)))).publications as { nodeId: string }[]).map((p) => p.nodeId);

beforeAll(async () => {
  work = await mkdtemp('/tmp/tether-nfs-replicas-');
  replicaA = await startDriverWith([nfsBackendConfig()], { mode: 'controller', logLevel: 'info' });
  replicaB = await startDriverWith([nfsBackendConfig()], { mode: 'controller', logLevel: 'info' });
  a = csiClient(replicaA.endpoint);
  b = csiClient(replicaB.endpoint);
  const store = new VolumeStore(localBackend('nfs', EXPORT_DIR)); // the server's own directory, as node plugins' registration writes it
  for (const node of NODES) await store.registerNode(node, 0, new Date());
}, 150_000);

afterAll(async () => {
  await volumes.removeAll(a);
  await tearDown({ work, drivers: [{ driver: replicaA, csi: a }, { driver: replicaB, csi: b }], volumes: { controller: a, ids: [], nodeIds: [] }, servers: [] });
}, 180_000);

describe('two controller processes on one NFS backend', () => {
  it(`20 concurrent ControllerPublish of a SINGLE_NODE_WRITER volume through both replicas, ${ROUNDS} rounds: one node wins every round`, async () => {
    const tally: Record<string, number> = {};
    for (let round = 1; round <= ROUNDS; round++) {
      const race = await publishRace(a, b, NODES, `race-${round}`);
      volumes.add(race.id, race.winners);
      for (const code of race.codes) tally[code] = (tally[code] ?? 0) + 1;
      expect({ round, winners: race.winners.length }).toEqual({ round, winners: 1 });
      expect(race.codes.filter((c) => !['OK', 'ABORTED', 'FAILED_PRECONDITION'].includes(c))).toEqual([]);
      expect(await publishedOnServer(race.id)).toEqual(race.winners);
      expect(race.seenBy).toEqual([race.winners, race.winners]);
    }
    console.log(`nfs replicas: ${ROUNDS} rounds of ${NODES.length} concurrent publishes: ${JSON.stringify(tally)}`);
  }, 300_000);

  it(`${MANY} nodes publish a MULTI_NODE_MULTI_WRITER volume through both replicas at once, retrying what is ABORTED: all are in the record; and all unpublish`, async () => {
    const run = await manyWriters(a, b, NODES.slice(0, MANY), publishedOnServer);
    volumes.add(run.id);
    expect(run.afterPublish).toEqual(NODES.slice(0, MANY));
    expect(run.afterUnpublish).toEqual([]);
  }, 300_000);

  it(`CreateVolume of one name with exactly 1 GiB and exactly 2 GiB on the two replicas at once: one volume, the other ALREADY_EXISTS (${ROUNDS} rounds)`, async () => {
    for (let round = 1; round <= ROUNDS; round++) {
      const name = uniq(`twice-${round}`);
      volumes.add(`nfs/${name}`);
      const race = await createRace(a, b, name);
      expect(race.codes).toEqual(['ALREADY_EXISTS', 'OK']);
      expect((await recordOn(join(EXPORT_DIR, name))).capacityBytes).toBe(race.wonSize);
    }
  }, 300_000);
});

describe('two node plugins on one NFS backend, no ControllerPublish', () => {
  let nodeA: RunningDriver;
  let nodeB: RunningDriver;
  let na: CsiClient;
  let nb: CsiClient;
  const staged = new Map<string, string>();
  const publishedTargets = new Map<string, string>();

  beforeAll(async () => {
    nodeA = await startDriverWith([nfsBackendConfig()], { mode: 'node', nodeId: 'node-a' });
    nodeB = await startDriverWith([nfsBackendConfig()], { mode: 'node', nodeId: 'node-b' });
    na = csiClient(nodeA.endpoint);
    nb = csiClient(nodeB.endpoint);
  }, 150_000);
  afterAll(async () => {
    await tearDown({ work: undefined, drivers: [{ driver: nodeA, csi: na, staged, published: publishedTargets }, { driver: nodeB, csi: nb, staged }], servers: [] });
  }, 120_000);

  it("node-b's NodeStage is refused naming node-a; after node-a unstages, node-b stages and reads node-a's data", async () => {
    const id = (await a.CreateVolume({ name: uniq('claimed'), volume_capabilities: [SNW] })).volume.volume_id as string;
    volumes.add(id);
    const [stagingA, stagingB, target] = [join(work, 'a-staging'), join(work, 'b-staging'), join(work, 'a-pod')];
    await na.NodeStageVolume({ volume_id: id, staging_target_path: stagingA, volume_capability: SNW });
    staged.set(stagingA, id);
    await na.NodePublishVolume({ volume_id: id, staging_target_path: stagingA, target_path: target, volume_capability: SNW });
    publishedTargets.set(target, id);
    expect((await write(join(target, 'log.txt'), 'from node-a\n')).exitCode).toBe(0);
    const refused = await failure(nb.NodeStageVolume({ volume_id: id, staging_target_path: stagingB, volume_capability: SNW }), status.FAILED_PRECONDITION);
    expect(refused.details).toContain('node-a');
    const deleteRefused = await failure(a.DeleteVolume({ volume_id: id }), status.FAILED_PRECONDITION);
    expect(deleteRefused.details).toContain('staged on node node-a');

    await na.NodeUnpublishVolume({ volume_id: id, target_path: target });
    publishedTargets.delete(target);
    await na.NodeUnstageVolume({ volume_id: id, staging_target_path: stagingA });
    staged.delete(stagingA);
    await nb.NodeStageVolume({ volume_id: id, staging_target_path: stagingB, volume_capability: SNW });
    expect((await cat(join(stagingB, 'data', 'log.txt'))).stdout).toBe('from node-a');
    await nb.NodeUnstageVolume({ volume_id: id, staging_target_path: stagingB });
  }, 180_000);
});
