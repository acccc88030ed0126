// The races two controller replicas run against each other, shared by the sshfs test
// (test/integration/replicas.test.ts) and the NFS one (test/nfs/nfs-replicas.test.ts). Each returns
// what it saw; the test files assert.
import { setTimeout as sleep } from 'node:timers/promises';
import { status, type ServiceError } from '@grpc/grpc-js';
import type { CsiClient } from './csi-client.js';
import { mountCap, uniq } from './helpers.js';

const SNW = mountCap('SINGLE_NODE_WRITER');
const MNMW = mountCap('MULTI_NODE_MULTI_WRITER');

export const codeOf = (r: PromiseSettledResult<unknown>) => (r.status === 'fulfilled' ? 'OK' : (status[(r.reason as ServiceError).code] ?? 'unknown'));

/** One round: a new SINGLE_NODE_WRITER volume, published to every node at once, half through each replica. */
export async function publishRace(a: CsiClient, b: CsiClient, nodes: readonly string[], name: string) {
  const id = (await a.CreateVolume({ name: uniq(name), volume_capabilities: [SNW] })).volume.volume_id as string;
  const results = await Promise.allSettled(nodes.map((node, i) => (i % 2 ? b : a).ControllerPublishVolume({ volume_id: id, node_id: node, volume_capability: SNW })));
  const winners = nodes.filter((_, i) => results[i]!.status === 'fulfilled');
  const loser = results.find((r) => r.status === 'rejected' && (r.reason as ServiceError).code === status.FAILED_PRECONDITION) as PromiseRejectedResult | undefined;
  const seenBy = await Promise.all([a, b].map(async (replica) => (await replica.ControllerGetVolume({ volume_id: id })).status.published_node_ids as string[]));
  return { id, winners, codes: results.map(codeOf), loserMessage: loser?.reason.details as string | undefined, seenBy };
}

/** Calls `call` until it is not ABORTED (the replica is busy with the volume), with a short random pause; counts the retries. */
async function untilNotAborted(call: () => Promise<unknown>, retries: { n: number }): Promise<void> {
  for (;;) {
    const err = await call().then(() => undefined, (e: ServiceError) => e);
    if (!err) return;
    if (err.code !== status.ABORTED) throw err;
    retries.n++;
    await sleep(5 + Math.random() * 30);
  }
}

/** A MULTI_NODE_MULTI_WRITER volume published to every node at once through both replicas (retrying ABORTED); then unpublished the same way. */
export async function manyWriters(a: CsiClient, b: CsiClient, nodes: readonly string[], readPublished: (id: string) => Promise<string[]>) {
  const id = (await a.CreateVolume({ name: uniq('many'), volume_capabilities: [MNMW] })).volume.volume_id as string;
  const retries = { n: 0 };
  await Promise.all(nodes.map((node, i) => untilNotAborted(() => (i % 2 ? b : a).ControllerPublishVolume({ volume_id: id, node_id: node, volume_capability: MNMW }), retries)));
  const afterPublish = (await readPublished(id)).sort();
  await Promise.all(nodes.map((node, i) => untilNotAborted(() => (i % 2 ? a : b).ControllerUnpublishVolume({ volume_id: id, node_id: node }), retries)));
  return { id, afterPublish, afterUnpublish: await readPublished(id), abortedRetries: retries.n };
}

/** One name created at once on both replicas with two exact sizes (1 and 2 GiB). */
export async function createRace(a: CsiClient, b: CsiClient, name: string) {
  const sizes = [1, 2].map((g) => String(g * 1024 ** 3));
  const exactly = (size: string) => ({ required_bytes: size, limit_bytes: size });
  const results = await Promise.allSettled([a, b].map((replica, i) => replica.CreateVolume({ name, volume_capabilities: [SNW], capacity_range: exactly(sizes[i]!) })));
  const won = results.findIndex((r) => r.status === 'fulfilled');
  const again = won < 0 ? [] : await Promise.all([a, b].map(async (replica) => (await replica.CreateVolume({ name, volume_capabilities: [SNW], capacity_range: exactly(sizes[won]!) })).volume.capacity_bytes as string));
  return { codes: results.map(codeOf).sort(), wonSize: Number(sizes[won]), again };
}

/** The volumes a race test made and the nodes each is still published to, removed in one go at the end. */
export class MadeVolumes {
  private readonly made = new Map<string, string[]>();

  add(id: string, publishedTo: string[] = []): void {
    this.made.set(id, publishedTo);
  }

  /** Unpublishes each volume from the nodes it is published to and deletes it (cheaper than every node × every volume). */
  async removeAll(controller: CsiClient): Promise<void> {
    for (const [id, nodes] of this.made) {
      for (const node of nodes) await controller.ControllerUnpublishVolume({ volume_id: id, node_id: node }).catch(() => undefined);
      await controller.DeleteVolume({ volume_id: id }).catch(() => undefined);
    }
    this.made.clear();
  }
}
