import { notFound, resourceExhausted, toCsiError, unavailable } from '../csi/errors.js';
import type { NodeRecord } from '../volumes/records.js';
import type { ControllerRpcs } from '../grpc/rpc.js';
import { requireFields } from '../grpc/validate.js';
import { decidePublish, requireCapability } from '../volumes/access.js';
import { volumeId } from '../volumes/ids.js';
import { live, type Backends } from '../volumes/registry.js';
import { applyTakeover, planTakeover, type TakeoverPlan } from '../volumes/takeover.js';
import { checkMountFlags } from './capabilities.js';
import type { ControllerDeps } from './deps.js';

/**
 * ControllerPublishVolume: records the node in the volume's publications, if the access mode lets it
 * join those who hold it (see decidePublish), the node is known, and its attach limit allows one more.
 * The record changes by compare-and-swap: of two controllers publishing a single-node volume to two
 * nodes at once, one wins and the other decides again on the winner's record (FAILED_PRECONDITION).
 */
export function publishVolume({ backends, watch, metrics, now }: ControllerDeps): ControllerRpcs['ControllerPublishVolume'] {
  return {
    validate(req) {
      requireFields(req, 'volume_id', 'node_id');
      requireCapability(req.volume_capability, 'volume_capability');
    },
    lockKey: (req) => req.volume_id,
    async handle(req, { signal, log }) {
      const { ref, store, record } = await backends.resolveVolume(req.volume_id, 'volume', signal);
      const node = await findNode(backends, req.node_id, signal);
      if (!node) throw notFound(`node ${req.node_id} is not known to tether: no tether node plugin with this ID has registered`);
      checkMountFlags(store, req.volume_capability ? [req.volume_capability] : []);
      const publication = { nodeId: req.node_id, accessMode: requireCapability(req.volume_capability, 'volume_capability'), readonly: Boolean(req.readonly) };
      if (decidePublish(planTakeover(req.volume_id, record, publication, watch).holders, publication) === 'add' && node.maxVolumes && (await publishedTo(backends, req.node_id, req.volume_id, signal)) >= node.maxVolumes) {
        throw resourceExhausted(`node ${req.node_id} already has ${node.maxVolumes} tether volumes published, its limit (maxVolumesPerNode)`);
      }
      let taken: TakeoverPlan | undefined;
      await store.updateVolume(ref.dir, (current) => {
        const volume = live(current, req.volume_id);
        const { holders, plan } = planTakeover(req.volume_id, volume, publication, watch);
        taken = undefined;
        if (decidePublish(holders, publication) === 'exists') return volume;
        taken = plan;
        return applyTakeover({ ...volume, publications: [...volume.publications, publication] }, plan, req.node_id, now());
      }, signal);
      if (taken?.from.length) {
        metrics.takeovers.inc({ backend: store.backend.name }, taken.from.length);
        log.warn({ event: 'lease-takeover', volume: req.volume_id, from: taken.from, to: req.node_id, watchedMs: Math.round(taken.watchedMs) }, 'took the volume over from a node that stopped renewing its lease');
      }
      return { publish_context: {} };
    },
  };
}

/** ControllerUnpublishVolume: drops the node's publication (all of them without a node ID); OK if there is none. */
export function unpublishVolume({ backends }: ControllerDeps): ControllerRpcs['ControllerUnpublishVolume'] {
  return {
    validate: (req) => requireFields(req, 'volume_id'),
    lockKey: (req) => req.volume_id,
    async handle(req, { signal }) {
      const found = await backends.findVolume(req.volume_id, signal);
      if (!found) return {}; // nothing is published anywhere
      await found.store.updateVolume(found.ref.dir, (current) => {
        const kept = current?.publications.filter((p) => req.node_id && p.nodeId !== req.node_id);
        return current && kept && kept.length !== current.publications.length ? { ...current, publications: kept } : current;
      }, signal);
      return {};
    },
  };
}

/**
 * A node that has registered with any backend, or undefined. A backend that could not be asked
 * might know it: with no answer elsewhere, that is UNAVAILABLE naming the backend, not NOT_FOUND.
 */
async function findNode(backends: Backends, nodeId: string, signal: AbortSignal) {
  const results = await Promise.allSettled(backends.all().map((s) => s.readNode(nodeId, signal)));
  const found = results.find((r) => r.status === 'fulfilled' && r.value !== undefined);
  if (found) return (found as PromiseFulfilledResult<NodeRecord>).value;
  const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [`backend ${backends.all()[i]!.backend.name}: ${toCsiError(r.reason).message}`] : []));
  if (failed.length) throw unavailable(`cannot tell whether node ${nodeId} is known: ${failed.join('; ')}`);
  return undefined;
}

/** How many volumes, other than `except`, are published to `nodeId` (for the node's attach limit). */
async function publishedTo(backends: Backends, nodeId: string, except: string, signal: AbortSignal): Promise<number> {
  let count = 0;
  for (const store of backends.all()) {
    for (const dir of await store.volumeDirs(signal)) {
      const id = volumeId({ backend: store.backend.name, dir });
      if (id === except) continue;
      // A record that cannot be read might name the node: it counts, so the limit is never overrun.
      const record = await store.readVolume(dir, signal).catch(() => 'unreadable' as const);
      if (record === 'unreadable' || record?.publications.some((p) => p.nodeId === nodeId)) count++;
    }
  }
  return count;
}
