// Two controller replicas on one backend, as an operator runs them with leader election off (or as
// the attacher's leader and the resizer's leader sit in different pods): two tether processes, each
// with its own SSH connection — through two sshd servers that serve one directory — and nothing
// shared but the files. Whatever they are asked at once, a single-writer volume is published to one
// node, no change to a record is lost, and one name makes one volume.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { status, type ServiceError } from '@grpc/grpc-js';
import { VolumeStore } from '../../src/volumes/store.js';
import { csiClient, type CsiClient } from '../support/csi-client.js';
import { startDriver, type RunningDriver } from '../support/driver.js';
import { localBackend } from '../support/handlers.js';
import { createRace, MadeVolumes, manyWriters, publishRace } from '../support/replica-races.js';
import { failure, mountCap, recordOn, tearDown, uniq, volumeDir } from '../support/helpers.js';
import { startSshServer, type SshServer } from '../support/sshd.js';

const ROUNDS = 20;
/** Nodes that publish one MULTI_NODE_MULTI_WRITER volume at once. */
const MANY = 50;
const NODES = Array.from({ length: 50 }, (_, i) => `node-${String(i).padStart(2, '0')}`);
const SNW = mountCap('SINGLE_NODE_WRITER');

let work: string;
let serverA: SshServer;
let serverB: SshServer;
let replicaA: RunningDriver;
let replicaB: RunningDriver;
let a: CsiClient;
let b: CsiClient;
const volumes = new MadeVolumes();

const publishedOnServer = async (id: string) => ((await recordOn(join(serverA.root, volumeDir(id)))).publications as { nodeId: string }[]).map((p) => p.nodeId);

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tether-replicas-'));
  serverA = await startSshServer();
  serverB = await startSshServer({ root: serverA.root });
  replicaA = await startDriver(serverA, { mode: 'controller', logLevel: 'info' });
  replicaB = await startDriver(serverB, { mode: 'controller', logLevel: 'info' });
  a = csiClient(replicaA.endpoint);
  b = csiClient(replicaB.endpoint);
  // 50 node plugins have registered with the backend (as NodeGetInfo does on each node).
  const store = new VolumeStore(localBackend('box', serverA.root));
  for (const node of NODES) await store.registerNode(node, 0, new Date());
}, 60_000);

afterAll(async () => {
  await volumes.removeAll(a);
  await tearDown({ work, drivers: [{ driver: replicaA, csi: a }, { driver: replicaB, csi: b }], volumes: { controller: a, ids: [], nodeIds: [] }, servers: [serverA, serverB] });
}, 120_000);

describe('two controller processes on one sshfs backend', () => {
  it(`50 concurrent ControllerPublish of a SINGLE_NODE_WRITER volume to 50 nodes, through both replicas, ${ROUNDS} rounds: one node wins every round, and the record lists exactly it`, async () => {
    const tally: Record<string, number> = {};
    for (let round = 1; round <= ROUNDS; round++) {
      const race = await publishRace(a, b, NODES, `race-${round}`);
      volumes.add(race.id, race.winners);
      for (const code of race.codes) tally[code] = (tally[code] ?? 0) + 1;
      expect({ round, winners: race.winners.length }).toEqual({ round, winners: 1 });
      expect(race.codes.filter((c) => !['OK', 'ABORTED', 'FAILED_PRECONDITION'].includes(c))).toEqual([]);
      expect(await publishedOnServer(race.id)).toEqual(race.winners);
      expect(race.seenBy).toEqual([race.winners, race.winners]);
      if (race.loserMessage) expect(race.loserMessage).toContain(race.winners[0]); // a loser hears who won
    }
    console.log(`replicas: ${ROUNDS} rounds of 50 concurrent publishes: ${JSON.stringify(tally)}`);
  }, 180_000);

  it('50 nodes publish a MULTI_NODE_MULTI_WRITER volume through both replicas at once, retrying what is ABORTED: all 50 are in the record, none lost; and all 50 unpublish', async () => {
    const run = await manyWriters(a, b, NODES.slice(0, MANY), publishedOnServer);
    volumes.add(run.id);
    expect(run.afterPublish).toEqual(NODES.slice(0, MANY));
    expect(run.afterUnpublish).toEqual([]);
    console.log(`replicas: 50 publishes and 50 unpublishes through two replicas, ${run.abortedRetries} ABORTED retries on the way`);
  }, 180_000);

  it('CreateVolume of one name with exactly 1 GiB and exactly 2 GiB on the two replicas at once: one volume, the other call ALREADY_EXISTS (10 rounds)', async () => {
    // (Without a limit, a 2 GiB volume answers a request for at least 1 GiB: OK, as the spec says. Limits make the two requests exclusive.)
    for (let round = 1; round <= 10; round++) {
      const name = uniq(`twice-${round}`);
      volumes.add(`box/${name}`);
      const race = await createRace(a, b, name);
      expect(race.codes).toEqual(['ALREADY_EXISTS', 'OK']);
      expect((await recordOn(join(serverA.root, name))).capacityBytes).toBe(race.wonSize);
      expect(race.again).toEqual([String(race.wonSize), String(race.wonSize)]); // the same request again, on either replica: the same volume
    }
  }, 120_000);

  it("a replica whose SSH server freezes mid-publish never overwrites the other replica's newer decision", async () => {
    const id = (await a.CreateVolume({ name: uniq('frozen'), volume_capabilities: [SNW] })).volume.volume_id as string;
    volumes.add(id);
    await serverA.freeze();
    try {
      const stalled = await failure(a.ControllerPublishVolume({ volume_id: id, node_id: 'node-01', volume_capability: SNW }, { deadlineMs: 2_000 }));
      expect([status.DEADLINE_EXCEEDED, status.UNAVAILABLE]).toContain(stalled.code);
      // The other replica answers meanwhile, and publishes the volume to another node.
      await b.ControllerPublishVolume({ volume_id: id, node_id: 'node-02', volume_capability: SNW }, { deadlineMs: 5_000 });
      volumes.add(id, ['node-02']);
      // On the stalled replica the volume stays locked until that call's work has stopped.
      const busy = await failure(a.ControllerPublishVolume({ volume_id: id, node_id: 'node-02', volume_capability: SNW }, { deadlineMs: 5_000 }), status.ABORTED);
      expect(busy.details).toContain('still stopping its work');
    } finally {
      await serverA.thaw();
    }
    // Thawed: the stalled call stops before writing anything; a retry of it hears who holds the volume.
    let retry: ServiceError | undefined;
    for (let i = 0; i < 100; i++) {
      retry = await a.ControllerPublishVolume({ volume_id: id, node_id: 'node-01', volume_capability: SNW }).then(() => undefined, (e: ServiceError) => e);
      if (retry?.code !== status.ABORTED) break;
      await sleep(100);
    }
    expect(retry?.code).toBe(status.FAILED_PRECONDITION);
    expect(retry?.details).toContain('node-02');
    expect(await publishedOnServer(id)).toEqual(['node-02']);
    // Its log line reaches us through the replica's stdout, possibly after the retry's answer: wait for it (bounded).
    for (let i = 0; i < 50 && !/ControllerPublishVolume stopped its work after its call had ended/.test(replicaA.logs()); i++) await sleep(100);
    expect(replicaA.logs()).toMatch(/ControllerPublishVolume stopped its work after its call had ended/);
  }, 60_000);
});
