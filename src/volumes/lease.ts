/**
 * Writer leases, as pure rules. A node that stages a volume exclusively (one node, or the one writer
 * of a MULTI_NODE_SINGLE_WRITER volume) holds a lease in the volume's record and renews it on a
 * timer. Nobody trusts another machine's clock:
 * - the holder counts its term from the moment it *sent* its last confirmed renewal, on its own
 *   monotonic clock, and fences itself (nothing it buffered may reach the server) a margin before
 *   the term runs out;
 * - a newcomer takes the lease over only after it has watched the lease's renewal count stay the
 *   same for a full term, on its own monotonic clock.
 * A renewal the newcomer saw was sent before it looked, so the holder's deadline comes first.
 */

export interface LeaseTerms {
  /** How long a lease lives unrenewed, as a newcomer watches it. */
  termMs: number;
  /** How often the holder renews. */
  renewMs: number;
  /** How long before the term runs out an unrenewed holder fences itself. */
  marginMs: number;
}

export const DEFAULT_LEASE_TERMS: LeaseTerms = { termMs: 20_000, renewMs: 4_000, marginMs: 5_000 };

/** The longest term a holder may have (and a watcher waits for): a record claiming more is not believed. */
export const MAX_TERM_MS = 3_600_000;

/** Why these terms are unsafe or unworkable, or undefined if they are fine. */
export function leaseTermsProblem({ termMs, renewMs, marginMs }: LeaseTerms): string | undefined {
  if (!(termMs >= 2_000)) return `the lease term must be at least 2 s (got ${termMs} ms)`;
  if (termMs > MAX_TERM_MS) return `the lease term must be at most ${MAX_TERM_MS / 1000} s (got ${termMs} ms)`;
  if (!(marginMs >= 1_000)) return `the fence margin must be at least 1 s: the fence itself takes time (got ${marginMs} ms)`;
  if (marginMs * 2 > termMs) return `the fence margin (${marginMs} ms) must be at most half the lease term (${termMs} ms)`;
  if (!(renewMs >= 200)) return `the renew interval must be at least 200 ms (got ${renewMs} ms)`;
  if (renewMs * 2 > termMs - marginMs) return `the renew interval (${renewMs} ms) must fit twice into the term less the margin (${termMs - marginMs} ms): a holder gets two tries before it fences`;
  return undefined;
}

/** What a holder must do now. */
export type HolderAction = 'renew' | 'fence' | 'wait';

/**
 * One held lease, seen from the holder: `held` until released, or until it is `fenced` — the holder
 * could not renew in time, or found the lease taken. A fenced lease stays fenced: the node must stage
 * the volume again to hold it again. Times are monotonic milliseconds.
 */
export class LeaseHolder {
  state: 'held' | 'fenced' | 'released' = 'held';
  private confirmedSentAt: number;
  private renewingSince: number | undefined;

  /** `sentAt`: when the change that took (or last renewed) the lease was sent. */
  constructor(
    private readonly terms: LeaseTerms,
    sentAt: number,
  ) {
    this.confirmedSentAt = sentAt;
  }

  /** The holder must be fenced by then, unless a renewal is confirmed before. */
  get fenceAt(): number {
    return this.confirmedSentAt + this.terms.termMs - this.terms.marginMs;
  }

  /** When the last confirmed renewal was sent. */
  get lastRenewal(): number {
    return this.confirmedSentAt;
  }

  next(now: number): HolderAction {
    if (this.state !== 'held') return 'wait';
    if (now >= this.fenceAt) return 'fence';
    if (this.renewingSince !== undefined) return 'wait';
    return now >= this.confirmedSentAt + this.terms.renewMs ? 'renew' : 'wait';
  }

  /** A renewal is sent now. */
  renewing(now: number): void {
    this.renewingSince = now;
  }

  /** The renewal sent at `sentAt` was written. Too late to matter once fenced: the node has let go. */
  renewed(sentAt: number): void {
    this.renewingSince = undefined;
    if (this.state === 'held') this.confirmedSentAt = Math.max(this.confirmedSentAt, sentAt);
  }

  /** The renewal did not go through (the server did not answer): try again at the next tick. */
  failed(): void {
    this.renewingSince = undefined;
  }

  fenced(): void {
    if (this.state === 'held') this.state = 'fenced';
  }

  released(): void {
    this.state = 'released';
  }
}

/** A lease as a newcomer sees it in a record. */
export interface ObservedLease {
  nodeId: string;
  /** Unique to one taking of the lease: a lease released and taken again is a new one. */
  id: string;
  renewals: number;
  termMs: number;
}

/**
 * A newcomer's watch over other nodes' leases, on its own monotonic clock: a lease may be taken over
 * once its renewal count has stayed the same for a full term — the longer of the holder's term and
 * this process's own, at most MAX_TERM_MS (a record's term is data anyone with write access could
 * inflate to keep a volume forever) — since this process first saw that count. Kept in memory only: a restarted
 * process watches afresh, which only ever waits longer.
 */
export class LeaseWatch {
  private readonly seen = new Map<string, { renewals: number; since: number }>();

  constructor(
    private readonly ownTermMs: number,
    private readonly now: () => number,
  ) {}

  /** Milliseconds until `lease` of `volumeId` may be taken over; 0: now. */
  remainingMs(volumeId: string, lease: ObservedLease): number {
    const now = this.now();
    this.prune(now);
    const key = `${volumeId}\0${lease.nodeId}\0${lease.id}`;
    const term = Math.min(Math.max(lease.termMs, this.ownTermMs), MAX_TERM_MS);
    const seen = this.seen.get(key);
    if (!seen || seen.renewals !== lease.renewals) {
      this.seen.set(key, { renewals: lease.renewals, since: now });
      return term;
    }
    return Math.max(0, seen.since + term - now);
  }

  /** How long this process has watched the lease unrenewed. */
  watchedMs(volumeId: string, lease: ObservedLease): number {
    const seen = this.seen.get(`${volumeId}\0${lease.nodeId}\0${lease.id}`);
    return seen && seen.renewals === lease.renewals ? this.now() - seen.since : 0;
  }

  /** Observations older than a hundred terms concern leases nobody asked about since: dropped. */
  private prune(now: number): void {
    if (this.seen.size < 1_000) return;
    for (const [key, { since }] of this.seen) if (now - since > this.ownTermMs * 100) this.seen.delete(key);
  }
}
