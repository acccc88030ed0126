// Leases in the access decisions: a live lease of another node refuses, a lapsed one is taken over.
import { decideNodeStage, decidePublish, fencesOnLoss, isExclusive, leasesToTakeOver, type AccessMode, type Holders, type Publication } from '../../src/volumes/access.js';
import { LeaseWatch } from '../../src/volumes/lease.js';
import type { NewVolumeRecord, VolumeRecord } from '../../src/volumes/records.js';
import { applyTakeover, planTakeover, takeLease } from '../../src/volumes/takeover.js';
import { CsiError } from '../../src/csi/errors.js';
import { status } from '@grpc/grpc-js';

const pub = (nodeId: string, accessMode: AccessMode, readonly = false): Publication => ({ nodeId, accessMode, readonly });
const watched = (p: Publication, takeoverInMs: number) => ({ ...p, takeoverInMs });

function failure(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (err) {
    if (err instanceof CsiError) return { code: status[err.code], message: err.message };
    throw err;
  }
  throw new Error('expected a failure');
}

describe('which holders take a lease, and which fence', () => {
  test.each<[AccessMode, boolean, boolean, boolean]>([
    // mode, readonly, exclusive (lease), fences on loss
    ['SINGLE_NODE_WRITER', false, true, true],
    ['SINGLE_NODE_WRITER', true, true, false],
    ['SINGLE_NODE_SINGLE_WRITER', false, true, true],
    ['SINGLE_NODE_MULTI_WRITER', false, true, true],
    ['SINGLE_NODE_READER_ONLY', false, true, false],
    ['MULTI_NODE_SINGLE_WRITER', false, true, true],
    ['MULTI_NODE_SINGLE_WRITER', true, false, false],
    ['MULTI_NODE_MULTI_WRITER', false, false, false],
    ['MULTI_NODE_READER_ONLY', false, false, false],
  ])('%s readonly=%s: lease %s, fence %s', (mode, readonly, exclusive, fences) => {
    expect(isExclusive(pub('n', mode, readonly))).toBe(exclusive);
    expect(fencesOnLoss(pub('n', mode, readonly))).toBe(fences);
  });
});

describe('a live lease of another node refuses', () => {
  const holders = (lease: Publication, inMs: number, rest: Partial<Holders> = {}): Holders => ({ publications: [], claims: [], leases: [watched(lease, inMs)], ...rest });

  test.each<[string, Publication, Publication]>([
    ['SNW writer vs SNW writer', pub('node-a', 'SINGLE_NODE_WRITER'), pub('node-b', 'SINGLE_NODE_WRITER')],
    ['SNW writer vs a reader', pub('node-a', 'SINGLE_NODE_WRITER'), pub('node-b', 'MULTI_NODE_READER_ONLY', true)],
    ['SN reader vs a writer', pub('node-a', 'SINGLE_NODE_READER_ONLY'), pub('node-b', 'SINGLE_NODE_WRITER')],
    ['MNSW writer vs MNSW writer', pub('node-a', 'MULTI_NODE_SINGLE_WRITER'), pub('node-b', 'MULTI_NODE_SINGLE_WRITER')],
  ])('%s: NodeStage and ControllerPublish FAILED_PRECONDITION, naming the holder and the earliest takeover', (_, lease, request) => {
    for (const decide of [() => decideNodeStage(holders(lease, 7_200), request), () => decidePublish(holders(lease, 7_200), request)]) {
      const { code, message } = failure(decide);
      expect(code).toBe('FAILED_PRECONDITION');
      expect(message).toContain('held by node node-a');
      expect(message).toContain('taken over in 8 s at the earliest');
    }
  });

  test('even when the volume is published to the asking node (the old holder was force-detached)', () => {
    const h = holders(pub('node-a', 'SINGLE_NODE_WRITER'), 3_000, { publications: [pub('node-b', 'SINGLE_NODE_WRITER')] });
    expect(failure(() => decideNodeStage(h, pub('node-b', 'SINGLE_NODE_WRITER'))).message).toContain('held by node node-a');
  });

  test.each<[string, Publication, Publication]>([
    ['a reader next to the MNSW writer', pub('node-a', 'MULTI_NODE_SINGLE_WRITER'), pub('node-b', 'MULTI_NODE_SINGLE_WRITER', true)],
    ['the node itself, staging again', pub('node-a', 'SINGLE_NODE_WRITER'), pub('node-a', 'SINGLE_NODE_WRITER')],
  ])('but not %s', (_, lease, request) => {
    expect(() => decideNodeStage(holders(lease, 5_000), request)).not.toThrow();
  });
});

describe('takeover of a lapsed lease', () => {
  const h = (leases: [Publication, number][]): Holders => ({ publications: [], claims: leases.map(([p]) => p), leases: leases.map(([p, ms]) => watched(p, ms)) });

  test.each<[string, [Publication, number][], Publication, string[]]>([
    ['a lapsed writer, by a writer', [[pub('node-a', 'SINGLE_NODE_WRITER'), 0]], pub('node-b', 'SINGLE_NODE_WRITER'), ['node-a']],
    ['a live writer: nobody', [[pub('node-a', 'SINGLE_NODE_WRITER'), 1]], pub('node-b', 'SINGLE_NODE_WRITER'), []],
    ['own lapsed lease: not a takeover', [[pub('node-b', 'SINGLE_NODE_WRITER'), 0]], pub('node-b', 'SINGLE_NODE_WRITER'), []],
    ['a lapsed MNSW writer, by a reader (no conflict): nobody', [[pub('node-a', 'MULTI_NODE_SINGLE_WRITER'), 0]], pub('node-b', 'MULTI_NODE_SINGLE_WRITER', true), []],
    ['two lapsed, one live: only the lapsed', [[pub('node-a', 'MULTI_NODE_SINGLE_WRITER'), 0], [pub('node-c', 'SINGLE_NODE_READER_ONLY'), 0], [pub('node-d', 'MULTI_NODE_SINGLE_WRITER'), 900]], pub('node-b', 'MULTI_NODE_SINGLE_WRITER'), ['node-a', 'node-c']],
  ])('%s → %j', (_, leases, request, expected) => {
    expect(leasesToTakeOver(h(leases), request)).toEqual(expected);
  });

  const record = (over: Partial<VolumeRecord> = {}): VolumeRecord => ({
    kind: 'tether.volume/v1', generation: 3, writeId: 'w', name: 'v', capacityBytes: 1, parameters: {}, onDelete: 'delete', contentSource: null, createdAt: 't',
    publications: [], claims: [], leases: [], takeovers: [], ...over,
  });
  const leaseOf = (nodeId: string, renewals = 4) => ({ ...pub(nodeId, 'SINGLE_NODE_WRITER'), id: `${nodeId}-lease`, renewals, termMs: 10_000, takenAt: 't' });

  test("planned on the watcher's clock: refused until a full term passed unrenewed, then the holder's claim and lease go and the takeover is noted", () => {
    let now = 0;
    const watch = new LeaseWatch(10_000, () => now);
    const r = record({ claims: [{ ...pub('node-a', 'SINGLE_NODE_WRITER'), claimedAt: 't' }], leases: [leaseOf('node-a')] });
    const request = pub('node-b', 'SINGLE_NODE_WRITER');
    expect(failure(() => decideNodeStage(planTakeover('v', r, request, watch).holders, request)).message).toContain('staged on node node-a');
    now = 9_999;
    expect(planTakeover('v', r, request, watch).plan.from).toEqual([]);
    now = 10_000;
    const { holders, plan } = planTakeover('v', r, request, watch);
    expect(plan).toEqual({ from: ['node-a'], watchedMs: 10_000 });
    expect(decideNodeStage(holders, request)).toEqual(request);
    const after = applyTakeover(r, plan, 'node-b', new Date('2026-12-02T00:00:00Z'));
    expect(after.claims).toEqual([]);
    expect(after.leases).toEqual([]);
    expect(after.takeovers).toEqual([{ from: 'node-a', to: 'node-b', at: '2026-12-02T00:00:00.000Z', watchedMs: 10_000 }]);
  });

  test('a renewal seen during the watch puts the takeover off by a full term', () => {
    let now = 0;
    const watch = new LeaseWatch(10_000, () => now);
    const request = pub('node-b', 'SINGLE_NODE_WRITER');
    planTakeover('v', record({ leases: [leaseOf('node-a', 4)] }), request, watch);
    now = 9_000;
    planTakeover('v', record({ leases: [leaseOf('node-a', 5)] }), request, watch);
    now = 15_000;
    expect(planTakeover('v', record({ leases: [leaseOf('node-a', 5)] }), request, watch).plan.from).toEqual([]);
    now = 19_000;
    expect(planTakeover('v', record({ leases: [leaseOf('node-a', 5)] }), request, watch).plan.from).toEqual(['node-a']);
  });

  test('the record keeps the last 10 takeovers', () => {
    const many = Array.from({ length: 10 }, (_, i) => ({ from: `n${i}`, to: 'x', at: 't', watchedMs: 1 }));
    const after = applyTakeover(record({ takeovers: many }), { from: ['node-a'], watchedMs: 5 }, 'node-b', new Date(0));
    expect(after.takeovers).toHaveLength(10);
    expect(after.takeovers.at(-1)).toMatchObject({ from: 'node-a', to: 'node-b' });
  });
});

describe('takeLease', () => {
  const base: Omit<NewVolumeRecord, 'leases'> = { kind: 'tether.volume/v1', name: 'v', capacityBytes: 1, parameters: {}, onDelete: 'delete', contentSource: null, createdAt: 't', publications: [], claims: [], takeovers: [] };

  test('an exclusive stager gets a new lease with a fresh ID; staging again renews the same lease', () => {
    const first = takeLease(({ ...base, leases: [] } as NewVolumeRecord), pub('n1', 'SINGLE_NODE_WRITER'), 20_000, new Date(0));
    expect(first.record.leases).toEqual([{ ...pub('n1', 'SINGLE_NODE_WRITER'), id: first.leaseId, renewals: 0, termMs: 20_000, takenAt: '1970-01-01T00:00:00.000Z' }]);
    const again = takeLease(first.record, pub('n1', 'SINGLE_NODE_WRITER'), 20_000, new Date(5));
    expect(again.leaseId).toBe(first.leaseId);
    expect(again.record.leases[0]?.renewals).toBe(1);
    const other = takeLease(({ ...base, leases: [] } as NewVolumeRecord), pub('n1', 'SINGLE_NODE_WRITER'), 20_000, new Date(0));
    expect(other.leaseId).not.toBe(first.leaseId);
  });

  test('a non-exclusive stager takes none', () => {
    const r = ({ ...base, leases: [] } as NewVolumeRecord);
    expect(takeLease(r, pub('n1', 'MULTI_NODE_MULTI_WRITER'), 20_000, new Date(0))).toEqual({ record: r });
  });

  test('a stager that changed its mode gets a new lease in place of its old one', () => {
    const first = takeLease(({ ...base, leases: [] } as NewVolumeRecord), pub('n1', 'SINGLE_NODE_READER_ONLY'), 20_000, new Date(0));
    const writer = takeLease(first.record, pub('n1', 'SINGLE_NODE_WRITER'), 20_000, new Date(0));
    expect(writer.record.leases).toHaveLength(1);
    expect(writer.leaseId).not.toBe(first.leaseId);
  });
});
