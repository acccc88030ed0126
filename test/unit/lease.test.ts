// The lease state machine and the newcomer's watch, on a clock the test moves by hand.
import { DEFAULT_LEASE_TERMS, LeaseHolder, LeaseWatch, leaseTermsProblem, type LeaseTerms } from '../../src/volumes/lease.js';

const TERMS: LeaseTerms = { termMs: 10_000, renewMs: 2_000, marginMs: 3_000 };

describe('lease terms', () => {
  test.each([
    ['the defaults', DEFAULT_LEASE_TERMS, undefined],
    ['short test terms', { termMs: 6_000, renewMs: 1_000, marginMs: 2_000 }, undefined],
    ['a term under 2 s', { termMs: 1_500, renewMs: 200, marginMs: 1_000 }, /term must be at least 2 s/],
    ['no margin', { termMs: 10_000, renewMs: 1_000, marginMs: 0 }, /margin must be at least 1 s/],
    ['a margin over half the term', { termMs: 10_000, renewMs: 1_000, marginMs: 6_000 }, /at most half the lease term/],
    ['one renewal before the fence', { termMs: 10_000, renewMs: 4_000, marginMs: 3_000 }, /must fit twice/],
    ['a renewal storm', { termMs: 10_000, renewMs: 50, marginMs: 3_000 }, /at least 200 ms/],
    ['NaN', { termMs: NaN, renewMs: 1_000, marginMs: 2_000 }, /term must be at least 2 s/],
    ['a term over an hour', { termMs: 3_600_001, renewMs: 1_000, marginMs: 2_000 }, /at most 3600 s/],
  ])('%s', (_, terms, problem) => {
    const found = leaseTermsProblem(terms);
    if (problem) expect(found).toMatch(problem);
    else expect(found).toBeUndefined();
  });
});

describe('LeaseHolder (the holder, on its monotonic clock)', () => {
  test('renews every renew interval while renewals go through, and never fences', () => {
    const holder = new LeaseHolder(TERMS, 0);
    const actions: string[] = [];
    for (let now = 0; now <= 60_000; now += 500) {
      const action = holder.next(now);
      if (action === 'renew') {
        holder.renewing(now);
        holder.renewed(now); // answered at once
      }
      actions.push(action);
    }
    expect(actions.filter((a) => a === 'renew')).toHaveLength(30);
    expect(actions).not.toContain('fence');
    expect(holder.state).toBe('held');
  });

  test('renewals that fail are tried again each tick; the fence comes at the last confirmed send + term - margin', () => {
    const holder = new LeaseHolder(TERMS, 1_000);
    expect(holder.fenceAt).toBe(8_000);
    const seen: [number, string][] = [];
    for (let now = 1_000; now <= 9_000; now += 1_000) {
      const action = holder.next(now);
      seen.push([now, action]);
      if (action === 'renew') (holder.renewing(now), holder.failed());
      if (action === 'fence') holder.fenced();
    }
    expect(seen).toEqual([
      [1_000, 'wait'],
      [2_000, 'wait'],
      [3_000, 'renew'],
      [4_000, 'renew'],
      [5_000, 'renew'],
      [6_000, 'renew'],
      [7_000, 'renew'],
      [8_000, 'fence'],
      [9_000, 'wait'],
    ]);
    expect(holder.state).toBe('fenced');
  });

  test('a renewal still in flight does not hold the fence back', () => {
    const holder = new LeaseHolder(TERMS, 0);
    holder.renewing(2_000); // never answers
    expect(holder.next(5_000)).toBe('wait');
    expect(holder.next(7_000)).toBe('fence');
  });

  test('the term counts from when a renewal was sent, not from when it was answered', () => {
    const holder = new LeaseHolder(TERMS, 0);
    holder.renewing(2_000);
    holder.renewed(2_000); // answered at 6 s, say: still counted from 2 s
    expect(holder.fenceAt).toBe(9_000);
  });

  test('an answer older than the last confirmed one does not move the deadline back', () => {
    const holder = new LeaseHolder(TERMS, 5_000);
    holder.renewed(1_000);
    expect(holder.fenceAt).toBe(12_000);
  });

  test('once fenced, a late renewal answer does not bring the lease back: the node must stage again', () => {
    const holder = new LeaseHolder(TERMS, 0);
    holder.fenced();
    holder.renewed(6_999);
    expect(holder.state).toBe('fenced');
    expect(holder.next(100_000)).toBe('wait');
    expect(holder.fenceAt).toBe(7_000);
  });

  test('a released lease neither renews nor fences', () => {
    const holder = new LeaseHolder(TERMS, 0);
    holder.released();
    expect([holder.next(2_000), holder.next(100_000)]).toEqual(['wait', 'wait']);
    holder.fenced();
    expect(holder.state).toBe('released');
  });
});

describe('LeaseWatch (the newcomer, on its own monotonic clock)', () => {
  const lease = (renewals: number, id = 'L1', termMs = 10_000) => ({ nodeId: 'node-a', id, renewals, termMs });
  let now = 0;
  const watch = () => new LeaseWatch(10_000, () => now);
  beforeEach(() => (now = 1_000_000));

  test('a lease seen for the first time may be taken over only a full term later', () => {
    const w = watch();
    expect(w.remainingMs('v', lease(7))).toBe(10_000);
    now += 9_999;
    expect(w.remainingMs('v', lease(7))).toBe(1);
    now += 1;
    expect(w.remainingMs('v', lease(7))).toBe(0);
    expect(w.watchedMs('v', lease(7))).toBe(10_000);
  });

  test('a renewal seen starts the watch over', () => {
    const w = watch();
    w.remainingMs('v', lease(7));
    now += 9_000;
    expect(w.remainingMs('v', lease(8))).toBe(10_000);
    now += 9_000;
    expect(w.remainingMs('v', lease(8))).toBe(1_000);
  });

  test('a lease released and taken again (a new ID, renewals from 0) is a new lease, even with the count seen before', () => {
    const w = watch();
    w.remainingMs('v', lease(0, 'first'));
    now += 60_000;
    expect(w.remainingMs('v', lease(0, 'second'))).toBe(10_000);
  });

  test("the longer of the holder's term and the watcher's own counts", () => {
    const w = watch();
    expect(w.remainingMs('v', lease(1, 'L', 30_000))).toBe(30_000);
    expect(w.remainingMs('v', lease(1, 'M', 1_000))).toBe(10_000);
  });

  test('a record that claims an absurd term is waited out for an hour at most', () => {
    expect(watch().remainingMs('v', lease(1, 'L', Number.MAX_SAFE_INTEGER))).toBe(3_600_000);
  });

  test('leases of other volumes and nodes are watched apart', () => {
    const w = watch();
    w.remainingMs('v1', lease(3));
    now += 10_000;
    expect(w.remainingMs('v2', lease(3))).toBe(10_000);
    expect(w.remainingMs('v1', { ...lease(3), nodeId: 'node-b' })).toBe(10_000);
    expect(w.remainingMs('v1', lease(3))).toBe(0);
  });

  test('the wall clock plays no part: a jump of the date changes nothing, only the monotonic clock counts', () => {
    const w = watch();
    const realNow = Date.now;
    try {
      w.remainingMs('v', lease(2));
      Date.now = () => realNow() + 86_400_000; // a day forward
      expect(w.remainingMs('v', lease(2))).toBe(10_000);
      Date.now = () => realNow() - 86_400_000;
      now += 5_000;
      expect(w.remainingMs('v', lease(2))).toBe(5_000);
    } finally {
      Date.now = realNow;
    }
  });

  test('a watcher that restarts watches afresh: it only ever waits longer', () => {
    const first = watch();
    first.remainingMs('v', lease(4));
    now += 9_000;
    expect(watch().remainingMs('v', lease(4))).toBe(10_000);
  });

  test('the holder fences before any newcomer can take over, whatever the newcomer saw', () => {
    // The holder sends renewal #5 at t=100 (its clock) and nothing more gets through. A newcomer can
    // only have seen #5 after it was sent; its takeover comes a full term after that.
    for (const seenAfterSendMs of [0, 1, 2_500, 9_999]) {
      const holder = new LeaseHolder(TERMS, 100);
      now = 100 + seenAfterSendMs;
      const w = watch();
      w.remainingMs('v', lease(5));
      const takeoverAt = now + 10_000;
      expect(holder.fenceAt).toBeLessThanOrEqual(takeoverAt - TERMS.marginMs);
    }
  });
});
