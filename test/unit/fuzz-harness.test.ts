// test/fuzz: the parts of the fuzz test that must hold for its results to mean anything — the same
// seed sends the same bytes, no Node call that may name a volume carries a path outside the test's
// tree (the driver runs as root and mounts there), and the rules tell the driver's answers from
// grpc-js's own.
import { status } from '@grpc/grpc-js';
import { buildCall, loadMethods } from '../fuzz/calls.js';
import { isAllowed } from '../fuzz/codes.js';
import { newEntries } from '../fuzz/host.js';
import { foreignLogLines } from '../fuzz/judge.js';
import { messageShape } from '../fuzz/ledger.js';
import { insideTree, mayNameVolume, pathPlan, safeNodeRequest } from '../fuzz/paths.js';
import { Prng } from '../fuzz/prng.js';
import type { Fixtures } from '../fuzz/requests.js';

const methods = loadMethods();
const plan = pathPlan('/tmp/tether-fuzz-test/node');
const fixtures: Fixtures = { volumeIds: ['box/v0', 'box/v1'], accessModes: ['SINGLE_NODE_WRITER', 'MULTI_NODE_MULTI_WRITER'], snapshotIds: ['box/.snapshots/s0'], groupSnapshotIds: ['box/.groups/g0'], nodeId: 'fuzz-node' };

describe('Prng', () => {
  test('a seed and a call index give the same numbers every time, another index others', () => {
    const draw = (index: number) => Array.from({ length: 5 }, () => Prng.forCall(7, index)).map((p) => p.next());
    expect(draw(3)).toEqual(draw(3));
    expect(draw(3)).not.toEqual(draw(4));
  });
});

describe('buildCall', () => {
  test('the same seed and index send the same method and bytes', () => {
    for (const index of [0, 1, 17, 4242]) {
      const a = buildCall(1, index, methods, fixtures, plan);
      const b = buildCall(1, index, methods, fixtures, plan);
      expect([a.method.name, a.kind, a.body.equals(b.body)]).toEqual([b.method.name, b.kind, true]);
    }
  });

  test('covers every method of the four services', () => {
    const seen = new Set(Array.from({ length: 1500 }, (_, i) => buildCall(2, i, methods, fixtures, plan).method.name));
    expect([...seen].sort()).toEqual(methods.map((m) => m.name).sort());
  });

  test('no Node call that may name a volume carries a path outside the tree, decoded as the driver decodes it', () => {
    let nodeCalls = 0;
    for (let index = 0; index < 2000; index++) {
      const call = buildCall(3, index, methods, fixtures, plan);
      if (call.method.service !== 'Node') continue;
      nodeCalls++;
      let decoded: Record<string, unknown>;
      try {
        decoded = call.method.decodeRequest(call.body);
      } catch {
        continue; // the driver cannot decode it either
      }
      expect(safeNodeRequest(plan, decoded)).toBe(true);
    }
    expect(nodeCalls).toBeGreaterThan(300);
  });
});

describe('paths', () => {
  test.each<[string, boolean]>([
    [`${plan.tree}/staging/0`, true],
    ['rel/sub', true], // resolved against the driver's cwd, which is in the tree
    ['../../../../x', true],
    ['../../../../../x', false], // climbs out of the tree
    [plan.tree, false],
    ['/etc', false],
    ['/', false],
    [`${plan.tree}/../etc`, false],
  ])('insideTree(%j) is %s', (p, inside) => {
    expect(insideTree(plan, p)).toBe(inside);
  });

  test('only an ID with exactly one slash may name a volume', () => {
    expect([mayNameVolume('box/v0'), mayNameVolume('box/.snapshots/s0'), mayNameVolume('v0'), mayNameVolume('')]).toEqual([true, false, false, false]);
  });
});

describe('isAllowed', () => {
  test('grpc-js answers INTERNAL to an undecodable body: allowed for foreign bodies only', () => {
    expect(isAllowed('CreateVolume', status.INTERNAL, 'Error deserializing request', 'foreign')).toBe(true);
    expect(isAllowed('CreateVolume', status.INTERNAL, 'Error deserializing request', 'structured')).toBe(false);
    expect(isAllowed('NodeStageVolume', status.INTERNAL, 'ENAMETOOLONG: name too long', 'structured')).toBe(false);
  });

  test("the codes of each method's table, and no others", () => {
    expect(isAllowed('ListVolumes', status.ABORTED, 'bad token', 'structured')).toBe(true);
    expect(isAllowed('GetPluginInfo', status.NOT_FOUND, 'x', 'structured')).toBe(false);
    expect(isAllowed('ControllerGetVolume', status.UNIMPLEMENTED, 'x', 'structured')).toBe(false);
  });

  test('UNAVAILABLE from the driver is allowed; a connection that broke is not', () => {
    expect(isAllowed('NodeStageVolume', status.UNAVAILABLE, 'cannot reach SSH server', 'structured')).toBe(true);
    expect(isAllowed('NodeStageVolume', status.UNAVAILABLE, 'Connection dropped', 'structured')).toBe(false);
  });
});

test('messageShape folds numbers and long runs, so alike messages group', () => {
  expect(messageShape(`volume ${'a'.repeat(5000)} does not exist`)).toBe(messageShape(`volume ${'a'.repeat(100)} does not exist`));
  expect(messageShape('node 12 of 345')).toBe('node N of N');
});

test('newEntries: anything new outside /tmp counts; in /tmp, only what is named after a sent value', () => {
  const before = new Set(['/tmp', '/etc']);
  const after = new Set([...before, '/etc/evil', '/tmp/someone-else.log', '/tmp/h/vol-x', '/tmp/tether-fuzz-abc123/x', '/tmp/jest_0/cache']);
  // "tmp" was sent too (as in "/tmp"): /tmp itself names nothing.
  const found = newEntries(before, after, ['/tmp/tether-fuzz-abc123'], new Set(['vol-x', 'tmp']));
  expect(found).toEqual({ suspect: ['/etc/evil', '/tmp/h/vol-x'], unattributed: ['/tmp/someone-else.log'], others: 1 });
});

test("foreignLogLines: pino's JSON lines and Node's warnings pass; anything else is reported", () => {
  const log = ['{"level":30,"msg":"ok"}', '(node:12) ExperimentalWarning: VM Modules', '{"level":60,"msg":"forged log line"}', 'line2', '"just a string"', ''].join('\n');
  expect(foreignLogLines(log)).toEqual(['line2', '"just a string"']);
});
