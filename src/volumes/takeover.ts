import { randomBytes } from 'node:crypto';
import { isExclusive, leasesToTakeOver, withoutNodes, type Holders, type Publication } from './access.js';
import type { LeaseWatch } from './lease.js';
import type { NewVolumeRecord, VolumeRecord } from './records.js';

/** How many takeovers a record keeps for the operator. */
const TAKEOVERS_KEPT = 10;

/** The record's holders, each lease as `watch` sees it now (how long until it may be taken over). */
export function watchedHolders(volumeId: string, record: VolumeRecord, watch: LeaseWatch): Holders {
  return { ...record, leases: record.leases.map((l) => ({ ...l, takeoverInMs: watch.remainingMs(volumeId, l) })) };
}

/** A takeover to apply to the record and report: the node(s) whose lapsed leases `request` takes, and how long they were watched. */
export interface TakeoverPlan {
  from: string[];
  watchedMs: number;
}

/** The other nodes' leases `request` may take over now (watched unrenewed for a full term), before deciding on it. */
export function planTakeover(volumeId: string, record: VolumeRecord, request: Publication, watch: LeaseWatch): { holders: Holders; plan: TakeoverPlan } {
  const watched = watchedHolders(volumeId, record, watch);
  const from = leasesToTakeOver(watched, request);
  const watchedMs = Math.max(0, ...record.leases.filter((l) => from.includes(l.nodeId)).map((l) => watch.watchedMs(volumeId, l)));
  return { holders: withoutNodes(watched, from), plan: { from, watchedMs } };
}

/** The record with the plan's nodes' claims and leases gone, and the takeover noted. */
export function applyTakeover<R extends NewVolumeRecord>(record: R, plan: TakeoverPlan, to: string, now: Date): R {
  if (!plan.from.length) return record;
  const gone = (p: Publication) => plan.from.includes(p.nodeId);
  const noted = plan.from.map((from) => ({ from, to, at: now.toISOString(), watchedMs: Math.round(plan.watchedMs) }));
  return { ...record, claims: record.claims.filter((c) => !gone(c)), leases: record.leases.filter((l) => !gone(l)), takeovers: [...record.takeovers, ...noted].slice(-TAKEOVERS_KEPT) };
}

/**
 * The record with `request`'s node holding the volume's lease, if it stages exclusively: its own
 * lease renewed if it has one, else a new one. The lease's ID, for the holder to renew it by.
 */
export function takeLease<R extends NewVolumeRecord>(record: R, request: Publication, termMs: number, now: Date): { record: R; leaseId?: string } {
  if (!isExclusive(request)) return { record };
  const own = record.leases.find((l) => l.nodeId === request.nodeId);
  if (own && own.accessMode === request.accessMode && own.readonly === request.readonly) {
    return { record: { ...record, leases: record.leases.map((l) => (l === own ? { ...l, renewals: l.renewals + 1 } : l)) }, leaseId: own.id };
  }
  const lease = { ...request, id: randomBytes(8).toString('hex'), renewals: 0, termMs, takenAt: now.toISOString() };
  return { record: { ...record, leases: [...record.leases.filter((l) => l.nodeId !== request.nodeId), lease] }, leaseId: lease.id };
}
