// src/volumes/access.ts: which capabilities tether serves, and who may publish a volume where.
import {
  checkCapability,
  decideNodePublish,
  decideNodeStage,
  decidePublish,
  requireCapability,
  type AccessMode,
  type Publication,
  type VolumeCapability,
} from '../../src/volumes/access.js';
import { codeName, csiError } from './csi-error.js';

/** A capability shaped as proto-loader hands it over (defaults: true, oneofs: true). */
const mountCap = (mode: string, fs_type = ''): VolumeCapability => ({
  access_mode: { mode },
  mount: { fs_type, mount_flags: [], volume_mount_group: '' },
  block: null,
  access_type: 'mount',
});

const blockCap = (mode: string): VolumeCapability => ({
  access_mode: { mode },
  mount: null,
  block: {},
  access_type: 'block',
});

describe('checkCapability', () => {
  test.each<[string, VolumeCapability | null | undefined]>([
    ['no capability at all', undefined],
    ['a null capability', null],
    ['no access_mode', { mount: { fs_type: '' }, access_type: 'mount' }],
    ['access_mode without mode', { access_mode: {}, mount: { fs_type: '' }, access_type: 'mount' }],
    ['an empty mode', mountCap('')],
    ['mode UNKNOWN', mountCap('UNKNOWN')],
    ['a mode that is not a CSI mode', mountCap('EVERYONE_WRITES')],
    ['a missing mode on a block capability (mode is checked first)', { block: {}, access_type: 'block' }],
    ['neither mount nor block', { access_mode: { mode: 'SINGLE_NODE_WRITER' } }],
  ])('%s → INVALID_ARGUMENT naming the field', (_, cap) => {
    const err = csiError(() => checkCapability(cap, 'volume_capability'));
    expect(codeName(err)).toBe('INVALID_ARGUMENT');
    expect(err.message).toContain('volume_capability');
  });

  test.each<[string, VolumeCapability, RegExp]>([
    ['block access (block set)', blockCap('SINGLE_NODE_WRITER'), /block/],
    ['block access (access_type only)', { access_mode: { mode: 'SINGLE_NODE_WRITER' }, access_type: 'block' }, /block/],
    ['fs_type ext4', mountCap('SINGLE_NODE_WRITER', 'ext4'), /ext4/],
    ['fs_type xfs', mountCap('MULTI_NODE_MULTI_WRITER', 'xfs'), /xfs/],
    ['fs_type NFS (case matters)', mountCap('SINGLE_NODE_WRITER', 'NFS'), /NFS/],
  ])('%s → unsupported, with a reason', (_, cap, reason) => {
    const result = checkCapability(cap, 'volume_capabilities[0]');
    expect(result).toEqual({ unsupported: expect.stringMatching(reason) });
  });

  test.each<[string, string]>([
    ['SINGLE_NODE_WRITER', ''],
    ['SINGLE_NODE_READER_ONLY', 'nfs'],
    ['MULTI_NODE_READER_ONLY', 'nfs4'],
    ['MULTI_NODE_SINGLE_WRITER', 'sshfs'],
    ['MULTI_NODE_MULTI_WRITER', 'fuse.sshfs'],
    ['SINGLE_NODE_SINGLE_WRITER', ''],
    ['SINGLE_NODE_MULTI_WRITER', ''],
  ])('mode %s with fs_type "%s" is served', (mode, fsType) => {
    expect(checkCapability(mountCap(mode, fsType), 'volume_capability')).toEqual({ mode });
  });

  test('access_type mount without a mount message is served (fs_type defaults to empty)', () => {
    expect(checkCapability({ access_mode: { mode: 'SINGLE_NODE_WRITER' }, access_type: 'mount' }, 'c')).toEqual({ mode: 'SINGLE_NODE_WRITER' });
  });
});

describe('requireCapability', () => {
  test.each<[string, VolumeCapability]>([
    ['block', blockCap('SINGLE_NODE_WRITER')],
    ['fs_type ext4', mountCap('SINGLE_NODE_WRITER', 'ext4')],
  ])('an unsupported capability (%s) is INVALID_ARGUMENT naming the field', (_, cap) => {
    const err = csiError(() => requireCapability(cap, 'volume_capability'));
    expect(codeName(err)).toBe('INVALID_ARGUMENT');
    expect(err.message).toMatch(/^volume_capability: /);
  });

  test.each<[string]>([['SINGLE_NODE_WRITER'], ['MULTI_NODE_READER_ONLY'], ['SINGLE_NODE_MULTI_WRITER']])('a served capability returns its mode (%s)', (mode) => {
    expect(requireCapability(mountCap(mode, 'sshfs'), 'volume_capability')).toBe(mode);
  });

  test('a missing access mode stays INVALID_ARGUMENT', () => {
    expect(codeName(csiError(() => requireCapability(mountCap(''), 'volume_capability')))).toBe('INVALID_ARGUMENT');
  });
});

const pub = (nodeId: string, accessMode: AccessMode, readonly = false): Publication => ({ nodeId, accessMode, readonly });

const SINGLE_NODE: AccessMode[] = ['SINGLE_NODE_WRITER', 'SINGLE_NODE_READER_ONLY', 'SINGLE_NODE_SINGLE_WRITER', 'SINGLE_NODE_MULTI_WRITER'];
const ALL_MODES: AccessMode[] = [...SINGLE_NODE, 'MULTI_NODE_READER_ONLY', 'MULTI_NODE_SINGLE_WRITER', 'MULTI_NODE_MULTI_WRITER'];

/** decidePublish with publications only, as before node claims. */
const decide = (publications: Publication[], request: Publication) => decidePublish({ publications, claims: [] }, request);

describe('decidePublish', () => {
  test.each<[string, Publication[], Publication, 'exists' | 'add']>([
    ['first publication', [], pub('n1', 'SINGLE_NODE_WRITER'), 'add'],
    ['first publication, read-only', [], pub('n1', 'SINGLE_NODE_READER_ONLY', true), 'add'],
    ['same node, same mode and flag (SNW)', [pub('n1', 'SINGLE_NODE_WRITER')], pub('n1', 'SINGLE_NODE_WRITER'), 'exists'],
    ['same node, same mode and flag (read-only)', [pub('n1', 'MULTI_NODE_READER_ONLY', true)], pub('n1', 'MULTI_NODE_READER_ONLY', true), 'exists'],
    ['same node repeat among other nodes', [pub('n0', 'MULTI_NODE_MULTI_WRITER'), pub('n1', 'MULTI_NODE_MULTI_WRITER')], pub('n1', 'MULTI_NODE_MULTI_WRITER'), 'exists'],
    ['same node repeat of the MNSW writer', [pub('n1', 'MULTI_NODE_SINGLE_WRITER'), pub('n2', 'MULTI_NODE_SINGLE_WRITER', true)], pub('n1', 'MULTI_NODE_SINGLE_WRITER'), 'exists'],
  ])('%s → %s', (_, existing, request, expected) => {
    expect(decide(existing, request)).toBe(expected);
  });

  test.each<[string, Publication, Publication]>([
    ['different mode', pub('n1', 'SINGLE_NODE_WRITER'), pub('n1', 'SINGLE_NODE_READER_ONLY')],
    ['different readonly flag', pub('n1', 'SINGLE_NODE_WRITER'), pub('n1', 'SINGLE_NODE_WRITER', true)],
    ['read-only asked writable', pub('n1', 'MULTI_NODE_MULTI_WRITER', true), pub('n1', 'MULTI_NODE_MULTI_WRITER')],
    ['multi-node mode changed', pub('n1', 'MULTI_NODE_MULTI_WRITER'), pub('n1', 'MULTI_NODE_SINGLE_WRITER')],
  ])('same node, %s → ALREADY_EXISTS', (_, held, request) => {
    const err = csiError(() => decide([held], request));
    expect(codeName(err)).toBe('ALREADY_EXISTS');
    expect(err.message).toContain('n1');
  });

  // Every pair where either side is SINGLE_NODE_*: another node may never share it.
  const singleNodePairs = ALL_MODES.flatMap((held) =>
    ALL_MODES.filter((asked) => SINGLE_NODE.includes(held) || SINGLE_NODE.includes(asked)).map((asked): [AccessMode, AccessMode] => [held, asked]),
  );
  test.each(singleNodePairs)('held by node-a as %s, asked by node-b as %s → FAILED_PRECONDITION naming node-a', (held, asked) => {
    const err = csiError(() => decide([pub('node-a', held)], pub('node-b', asked)));
    expect(codeName(err)).toBe('FAILED_PRECONDITION');
    expect(err.message).toContain('node-a');
  });

  test.each<[string, Publication]>([
    ['read-only SNRO holder', pub('node-a', 'SINGLE_NODE_READER_ONLY', true)],
    ['read-only SNW holder', pub('node-a', 'SINGLE_NODE_WRITER', true)],
  ])('a single-node mode is exclusive even when both sides only read (%s)', (_, held) => {
    const err = csiError(() => decide([held], pub('node-b', 'SINGLE_NODE_READER_ONLY', true)));
    expect(codeName(err)).toBe('FAILED_PRECONDITION');
    expect(err.message).toContain('node-a');
  });

  test.each<[string, Publication[], Publication]>([
    ['MNSW: a reader joins the writer', [pub('w', 'MULTI_NODE_SINGLE_WRITER')], pub('r1', 'MULTI_NODE_SINGLE_WRITER', true)],
    ['MNSW: a second reader joins', [pub('w', 'MULTI_NODE_SINGLE_WRITER'), pub('r1', 'MULTI_NODE_SINGLE_WRITER', true)], pub('r2', 'MULTI_NODE_SINGLE_WRITER', true)],
    ['MNSW: the writer joins readers', [pub('r1', 'MULTI_NODE_SINGLE_WRITER', true), pub('r2', 'MULTI_NODE_SINGLE_WRITER', true)], pub('w', 'MULTI_NODE_SINGLE_WRITER')],
    ['MNSW: a writer joins MULTI_NODE_READER_ONLY readers', [pub('r1', 'MULTI_NODE_READER_ONLY')], pub('w', 'MULTI_NODE_SINGLE_WRITER')],
    ['MNSW: an MNRO reader joins the writer', [pub('w', 'MULTI_NODE_SINGLE_WRITER')], pub('r1', 'MULTI_NODE_READER_ONLY')],
    ['MNMW: a second writer', [pub('w1', 'MULTI_NODE_MULTI_WRITER')], pub('w2', 'MULTI_NODE_MULTI_WRITER')],
    ['MNMW: a third writer', [pub('w1', 'MULTI_NODE_MULTI_WRITER'), pub('w2', 'MULTI_NODE_MULTI_WRITER')], pub('w3', 'MULTI_NODE_MULTI_WRITER')],
    ['MNMW: a read-only publication among writers', [pub('w1', 'MULTI_NODE_MULTI_WRITER'), pub('w2', 'MULTI_NODE_MULTI_WRITER')], pub('r', 'MULTI_NODE_MULTI_WRITER', true)],
    ['MNRO: a second reader', [pub('r1', 'MULTI_NODE_READER_ONLY', true)], pub('r2', 'MULTI_NODE_READER_ONLY', true)],
    ['MNRO: many readers', [pub('r1', 'MULTI_NODE_READER_ONLY'), pub('r2', 'MULTI_NODE_READER_ONLY'), pub('r3', 'MULTI_NODE_READER_ONLY')], pub('r4', 'MULTI_NODE_READER_ONLY')],
  ])('%s → add', (_, existing, request) => {
    expect(decide(existing, request)).toBe('add');
  });

  test.each<[string, Publication[], Publication, string]>([
    ['MNSW: a second writer', [pub('w1', 'MULTI_NODE_SINGLE_WRITER')], pub('w2', 'MULTI_NODE_SINGLE_WRITER'), 'w1'],
    [
      'MNSW: a second writer, with readers listed before the writer',
      [pub('r1', 'MULTI_NODE_SINGLE_WRITER', true), pub('w1', 'MULTI_NODE_SINGLE_WRITER'), pub('r2', 'MULTI_NODE_SINGLE_WRITER', true)],
      pub('w2', 'MULTI_NODE_SINGLE_WRITER'),
      'w1',
    ],
    ['MNSW asked while an MNMW writer holds it', [pub('w1', 'MULTI_NODE_MULTI_WRITER')], pub('w2', 'MULTI_NODE_SINGLE_WRITER'), 'w1'],
    ['MNMW asked while an MNSW writer holds it', [pub('w1', 'MULTI_NODE_SINGLE_WRITER')], pub('w2', 'MULTI_NODE_MULTI_WRITER'), 'w1'],
  ])('%s → FAILED_PRECONDITION naming the writer', (_, existing, request, writer) => {
    const err = csiError(() => decide(existing, request));
    expect(codeName(err)).toBe('FAILED_PRECONDITION');
    expect(err.message).toContain(`node ${writer}`);
    for (const reader of existing.filter((p) => p.nodeId !== writer)) expect(err.message).not.toContain(reader.nodeId);
  });
});

describe('decidePublish with node claims (a node staged the volume without a ControllerPublish)', () => {
  test.each<[string, Publication[], Publication]>([
    ['a single-node claim elsewhere', [pub('node-c', 'SINGLE_NODE_WRITER')], pub('node-b', 'SINGLE_NODE_WRITER')],
    ['a read-only single-node claim elsewhere', [pub('node-c', 'SINGLE_NODE_READER_ONLY', true)], pub('node-b', 'MULTI_NODE_READER_ONLY', true)],
    ['a multi-node claim, a single-node request', [pub('node-c', 'MULTI_NODE_MULTI_WRITER')], pub('node-b', 'SINGLE_NODE_MULTI_WRITER')],
    ['the MNSW writer claimed elsewhere, a second writer', [pub('node-c', 'MULTI_NODE_SINGLE_WRITER')], pub('node-b', 'MULTI_NODE_SINGLE_WRITER')],
  ])('%s → FAILED_PRECONDITION naming the claimant as staged', (_, claims, request) => {
    const err = csiError(() => decidePublish({ publications: [], claims }, request));
    expect(codeName(err)).toBe('FAILED_PRECONDITION');
    expect(err.message).toContain('staged on node node-c');
  });

  test.each<[string, Publication[], Publication]>([
    ['its own claim (staged first, published after)', [pub('node-b', 'SINGLE_NODE_WRITER')], pub('node-b', 'SINGLE_NODE_WRITER')],
    ['its own claim with another mode', [pub('node-b', 'SINGLE_NODE_MULTI_WRITER')], pub('node-b', 'SINGLE_NODE_WRITER')],
    ['an MNSW reader beside a claimed writer', [pub('node-c', 'MULTI_NODE_SINGLE_WRITER')], pub('node-b', 'MULTI_NODE_SINGLE_WRITER', true)],
    ['MNMW beside a claimed MNMW writer', [pub('node-c', 'MULTI_NODE_MULTI_WRITER')], pub('node-b', 'MULTI_NODE_MULTI_WRITER')],
  ])('%s → add', (_, claims, request) => {
    expect(decidePublish({ publications: [], claims }, request)).toBe('add');
  });
});

describe('decideNodeStage', () => {
  const held = (publications: Publication[], claims: Publication[] = []) => ({ publications, claims });

  test.each<[string, Publication[], Publication[], Publication, Publication | undefined]>([
    ['published here (Kubernetes): nothing to record', [pub('node-a', 'SINGLE_NODE_WRITER')], [], pub('node-a', 'SINGLE_NODE_WRITER'), undefined],
    ['published elsewhere, multi-node reader: nothing to record', [pub('node-a', 'MULTI_NODE_READER_ONLY', true)], [], pub('node-b', 'MULTI_NODE_READER_ONLY', true), undefined],
    ['published elsewhere as MNSW writer, staged here read-only', [pub('node-a', 'MULTI_NODE_SINGLE_WRITER')], [], pub('node-b', 'MULTI_NODE_SINGLE_WRITER', true), undefined],
    ['no publication, no claim: claim it', [], [], pub('node-a', 'SINGLE_NODE_WRITER'), pub('node-a', 'SINGLE_NODE_WRITER')],
    ['no publication, a multi-writer volume: claim it too (it keeps DeleteVolume off)', [], [], pub('node-a', 'MULTI_NODE_MULTI_WRITER'), pub('node-a', 'MULTI_NODE_MULTI_WRITER')],
    ['its own claim again: nothing to record', [], [pub('node-a', 'SINGLE_NODE_WRITER')], pub('node-a', 'SINGLE_NODE_WRITER'), undefined],
    ['its own claim, another mode: the new claim', [], [pub('node-a', 'SINGLE_NODE_WRITER')], pub('node-a', 'SINGLE_NODE_MULTI_WRITER'), pub('node-a', 'SINGLE_NODE_MULTI_WRITER')],
    ['readers beside readers', [], [pub('node-a', 'MULTI_NODE_READER_ONLY', true)], pub('node-b', 'MULTI_NODE_READER_ONLY', true), pub('node-b', 'MULTI_NODE_READER_ONLY', true)],
    ['a reader beside the MNSW writer', [], [pub('node-a', 'MULTI_NODE_SINGLE_WRITER')], pub('node-b', 'MULTI_NODE_SINGLE_WRITER', true), pub('node-b', 'MULTI_NODE_SINGLE_WRITER', true)],
  ])('%s', (_, publications, claims, request, expected) => {
    expect(decideNodeStage(held(publications, claims), request)).toEqual(expected);
  });

  test.each<[string, Publication[], Publication[], Publication, string]>([
    ['published to node-b, staged for writing on node-c', [pub('node-b', 'SINGLE_NODE_WRITER')], [], pub('node-c', 'SINGLE_NODE_WRITER'), 'published to node node-b'],
    ['published to node-b, staged read-only on node-c with a single-node mode', [pub('node-b', 'SINGLE_NODE_WRITER')], [], pub('node-c', 'SINGLE_NODE_READER_ONLY', true), 'published to node node-b'],
    ['published to the MNSW writer node-b, a second writer on node-c', [pub('node-b', 'MULTI_NODE_SINGLE_WRITER')], [], pub('node-c', 'MULTI_NODE_SINGLE_WRITER'), 'published to node node-b'],
    ['claimed by node-a, a second single-node stage', [], [pub('node-a', 'SINGLE_NODE_WRITER')], pub('node-b', 'SINGLE_NODE_WRITER'), 'staged on node node-a'],
    ['claimed by node-a (RWOP), a second stage of any mode', [], [pub('node-a', 'SINGLE_NODE_SINGLE_WRITER')], pub('node-b', 'MULTI_NODE_READER_ONLY', true), 'staged on node node-a'],
    ['claimed by the MNSW writer node-a, a second writer', [], [pub('node-a', 'MULTI_NODE_SINGLE_WRITER'), pub('node-r', 'MULTI_NODE_SINGLE_WRITER', true)], pub('node-b', 'MULTI_NODE_SINGLE_WRITER'), 'staged on node node-a'],
  ])('%s → FAILED_PRECONDITION naming the holder', (_, publications, claims, request, holder) => {
    const err = csiError(() => decideNodeStage(held(publications, claims), request));
    expect(codeName(err)).toBe('FAILED_PRECONDITION');
    expect(err.message).toContain(holder);
  });
});

describe('decideNodePublish', () => {
  test.each(ALL_MODES.map((mode) => [mode]))('the first target path is always allowed (%s)', (mode) => {
    expect(() => decideNodePublish([], mode)).not.toThrow();
  });

  test.each<[AccessMode]>([['SINGLE_NODE_WRITER'], ['SINGLE_NODE_SINGLE_WRITER'], ['SINGLE_NODE_READER_ONLY']])(
    'a second target path with %s → FAILED_PRECONDITION naming the first target',
    (mode) => {
      const err = csiError(() => decideNodePublish(['/var/lib/kubelet/pods/a/mount'], mode));
      expect(codeName(err)).toBe('FAILED_PRECONDITION');
      expect(err.message).toContain('/var/lib/kubelet/pods/a/mount');
    },
  );

  test.each<[AccessMode]>([['SINGLE_NODE_MULTI_WRITER'], ['MULTI_NODE_READER_ONLY'], ['MULTI_NODE_SINGLE_WRITER'], ['MULTI_NODE_MULTI_WRITER']])(
    'more target paths with %s are allowed',
    (mode) => {
      expect(() => decideNodePublish(['/t/a', '/t/b'], mode)).not.toThrow();
    },
  );
});
