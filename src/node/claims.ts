import { notFound } from '../csi/errors.js';
import { decideNodeStage, fencesOnLoss, type Publication } from '../volumes/access.js';
import type { LeaseWatch } from '../volumes/lease.js';
import { isLive, type Backends } from '../volumes/registry.js';
import { applyTakeover, planTakeover, takeLease, type TakeoverPlan } from '../volumes/takeover.js';
import { monotonicMs } from '../util/time.js';

/**
 * What a node records in a volume's record when it stages it, by compare-and-swap, so that a second
 * node's NodeStage, a ControllerPublish for another node and DeleteVolume all see it:
 * - a claim, where the CO skips ControllerPublish (as Docker Swarm may): this node holds the volume;
 * - a lease, where it stages exclusively (one node, or the one writer): renewed while staged, it is
 *   what lets a node that stopped answering be told from one that merely went quiet (lease.ts).
 * A node that is published to needs no claim, but must be among the publications to write.
 */

export interface StageClaim {
  /** This call added a claim (to be taken back if the mount then fails). */
  added: boolean;
  /** The lease this node now holds, and when the change that took it was sent (monotonic ms). */
  lease?: { id: string; sentAt: number };
  /** Other nodes' lapsed leases this call took over. */
  takeover: TakeoverPlan;
  /** The node stages to write (no read-only mode, no read-only publication): it fences if it loses the lease. */
  fences: boolean;
}

export interface LeaseContext {
  watch: LeaseWatch;
  termMs: number;
}

/**
 * Checks that this node may stage the volume as asked (decideNodeStage, after taking over leases
 * watched unrenewed for a full term) and records its claim and lease as needed.
 */
export async function claimForStage(backends: Backends, volumeId: string, asked: Publication, leases: LeaseContext, signal: AbortSignal, now = new Date()): Promise<StageClaim> {
  const { ref, store } = backends.locateVolume(volumeId);
  const result: StageClaim = { added: false, takeover: { from: [], watchedMs: 0 }, fences: false };
  const sentAt = monotonicMs();
  await store.updateVolume(ref.dir, (current) => {
    if (!isLive(current)) throw notFound(`volume ${volumeId} does not exist`);
    // NodeStage has no read-only flag: a node published read-only (a MULTI_NODE_SINGLE_WRITER reader) stages as a reader.
    const request = current.publications.some((p) => p.nodeId === asked.nodeId && p.readonly) ? { ...asked, readonly: true } : asked;
    result.fences = fencesOnLoss(request);
    const { holders, plan } = planTakeover(volumeId, current, request, leases.watch);
    const claim = decideNodeStage(holders, request);
    const taken = applyTakeover(current, plan, request.nodeId, now);
    const claimed = claim ? { ...taken, claims: [...taken.claims.filter((c) => c.nodeId !== request.nodeId), { ...claim, claimedAt: now.toISOString() }] } : taken;
    const { record, leaseId } = takeLease(claimed, request, leases.termMs, now);
    result.added = claim !== undefined && !current.claims.some((c) => c.nodeId === request.nodeId);
    result.lease = leaseId ? { id: leaseId, sentAt } : undefined;
    result.takeover = plan;
    return record === current ? current : record;
  }, signal);
  return result;
}

/** Takes this node's claim and lease off the volume's record, if it has them (NodeUnstage, or an idle volume let go). */
export async function releaseClaim(backends: Backends, volumeId: string, nodeId: string, signal?: AbortSignal): Promise<void> {
  const { ref, store } = backends.locateVolume(volumeId);
  const mine = (p: { nodeId: string }) => p.nodeId === nodeId;
  await store.updateVolume(ref.dir, (current) => (current && (current.claims.some(mine) || current.leases.some(mine)) ? { ...current, claims: current.claims.filter((c) => !mine(c)), leases: current.leases.filter((l) => !mine(l)) } : current), signal);
}

/** True if this node holds a claim on the volume (or, with `orLease`, its writer lease). */
export async function holds(backends: Backends, volumeId: string, nodeId: string, orLease: boolean, signal?: AbortSignal): Promise<boolean> {
  const { ref, store } = backends.locateVolume(volumeId);
  const record = await store.readVolume(ref.dir, signal);
  const mine = (p: { nodeId: string }) => p.nodeId === nodeId;
  return Boolean(record?.claims.some(mine) || (orLease && record?.leases.some(mine)));
}

/**
 * Renews this node's lease `leaseId` on the volume: 'renewed', or 'lost' if the record no longer has
 * it (another node took it over, or the volume is gone). Throws if the backend does not answer.
 */
export async function renewLease(backends: Backends, volumeId: string, nodeId: string, leaseId: string, signal: AbortSignal): Promise<'renewed' | 'lost'> {
  const { ref, store } = backends.locateVolume(volumeId);
  let outcome: 'renewed' | 'lost' = 'lost';
  await store.updateVolume(ref.dir, (current) => {
    const held = current?.leases.find((l) => l.nodeId === nodeId && l.id === leaseId);
    outcome = held && isLive(current) ? 'renewed' : 'lost';
    if (!held || !current) return current;
    return { ...current, leases: current.leases.map((l) => (l === held ? { ...l, renewals: l.renewals + 1 } : l)) };
  }, signal);
  return outcome;
}
