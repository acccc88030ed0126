// src/volumes/ids.ts: directory names for CO-given names, and the IDs that name them.
import { dirForName, parseSnapshotId, parseVolumeId, snapshotId, volumeId } from '../../src/volumes/ids.js';

/** What every directory tether makes must look like (the rule the IDs are parsed with). */
const DIR = /^[a-z0-9][a-z0-9._-]{0,79}$/;

const UUID_PVC = 'pvc-0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
const LONGEST_PLAIN = 'a'.repeat(80);

describe('dirForName', () => {
  test.each<[string]>([['pvc-1'], [UUID_PVC], ['a'], ['0'], ['a.b_c-d'], ['snap.2024-01-01'], [LONGEST_PLAIN]])('a plain name is its own directory: %s', (name) => {
    expect(dirForName(name)).toBe(name);
  });

  // Names that are not plain: uppercase, spaces, slashes, a leading dot/dash/underscore, too long, non-ASCII, empty.
  const ODD_NAMES: [string][] = [
    ['PVC-1'],
    ['Pvc-1'],
    ['my volume'],
    ['a/b'],
    ['../../etc/passwd'],
    ['.hidden'],
    ['.snapshots'],
    ['..'],
    ['-dash'],
    ['_under'],
    ['a'.repeat(81)],
    ['x'.repeat(1000)],
    ['Ünïcödé-名前'],
    ['...'],
    ['///'],
    [''],
    ['a\nb'],
  ];

  test.each(ODD_NAMES)('an odd name is hashed into a valid directory: %j', (name) => {
    const dir = dirForName(name);
    expect(dir).not.toBe(name);
    expect(dir).toMatch(DIR);
    expect(dir.length).toBeLessThanOrEqual(80);
    expect(dir.startsWith('.')).toBe(false);
    expect(dir).toMatch(/[0-9a-f]{16}$/);
  });

  test.each(ODD_NAMES)('the hashed directory is deterministic: %j', (name) => {
    expect(dirForName(name)).toBe(dirForName(name));
  });

  test.each(ODD_NAMES)('the hashed directory round-trips through a volume and a snapshot ID: %j', (name) => {
    const dir = dirForName(name);
    expect(parseVolumeId(volumeId({ backend: 'box', dir }))).toEqual({ backend: 'box', dir });
    expect(parseSnapshotId(snapshotId({ backend: 'box', dir }))).toEqual({ backend: 'box', dir });
  });

  test.each<[string]>([['a..b'], ['x..'], ['pvc..1']])('a name with ".." is never its own directory, though its characters are plain: %j', (name) => {
    expect(dirForName(name)).not.toBe(name);
  });

  test('the readable part keeps a lowercase prefix of the name', () => {
    expect(dirForName('My Volume')).toMatch(/^my-volume-[0-9a-f]{16}$/);
  });

  test('distinct names give distinct directories (case, long shared prefixes, plain vs odd)', () => {
    const names = [
      'pvc-1',
      'PVC-1',
      'Pvc-1',
      'pvc 1',
      'pvc/1',
      ...ODD_NAMES.map(([n]) => n),
      `${'p'.repeat(60)}A`,
      `${'p'.repeat(60)}B`,
      `${'p'.repeat(100)}1`,
      `${'p'.repeat(100)}2`,
    ];
    const dirs = new Set(names.map(dirForName));
    expect(dirs.size).toBe(new Set(names).size);
  });

  test.each<[string]>([['a..b'], ['Foo..Bar'], ['a/../b']])('a name containing ".." round-trips through its volume ID: %j', (name) => {
    const dir = dirForName(name);
    expect(parseVolumeId(volumeId({ backend: 'box', dir }))).toEqual({ backend: 'box', dir });
  });
});

describe('parseVolumeId', () => {
  test.each<[string, { backend: string; dir: string }]>([
    ['box/pvc-1', { backend: 'box', dir: 'pvc-1' }],
    [`nfs-1/${UUID_PVC}`, { backend: 'nfs-1', dir: UUID_PVC }],
    ['b/a.b_c-d', { backend: 'b', dir: 'a.b_c-d' }],
    [`${'b'.repeat(32)}/${LONGEST_PLAIN}`, { backend: 'b'.repeat(32), dir: LONGEST_PLAIN }],
  ])('accepts %s', (id, ref) => {
    expect(parseVolumeId(id)).toEqual(ref);
  });

  test.each<[string]>([
    ['../x'],
    ['box/..'],
    ['box/.'],
    ['box/.snapshots'],
    ['box/.hidden'],
    ['box/.snapshots/snap-1'],
    ['a/b/c'],
    ['Box/pvc-1'],
    ['box/PVC-1'],
    [''],
    ['box'],
    ['box/'],
    ['/pvc-1'],
    ['/box/pvc-1'],
    ['box/pvc 1'],
    ['box/a..b'],
    ['-box/pvc-1'],
    ['box-/pvc-1'],
    [`${'b'.repeat(33)}/pvc-1`],
    [`box/${'a'.repeat(81)}`],
    ['box/pvc-1\n'],
    ['box\\pvc-1'],
  ])('rejects %j', (id) => {
    expect(parseVolumeId(id)).toBeUndefined();
  });
});

describe('parseSnapshotId', () => {
  test.each<[string, { backend: string; dir: string }]>([
    ['box/.snapshots/snap-1', { backend: 'box', dir: 'snap-1' }],
    [`${'b'.repeat(32)}/.snapshots/${LONGEST_PLAIN}`, { backend: 'b'.repeat(32), dir: LONGEST_PLAIN }],
  ])('accepts %s', (id, ref) => {
    expect(parseSnapshotId(id)).toEqual(ref);
  });

  test.each<[string]>([
    ['box/snap-1'],
    ['box/.snapshots'],
    ['box/.snapshots/'],
    ['box/.snapshots/..'],
    ['box/.snapshots/.hidden'],
    ['box/.snapshots/a/b'],
    ['box/snapshots/snap-1'],
    ['../.snapshots/x'],
    ['Box/.snapshots/x'],
    ['box/.snapshots/X'],
    [''],
  ])('rejects %j', (id) => {
    expect(parseSnapshotId(id)).toBeUndefined();
  });
});

describe('ID length', () => {
  const longestBackend = 'b'.repeat(32);
  test.each<[string, string]>([
    ['longest plain name', LONGEST_PLAIN],
    ['long odd name', 'X'.repeat(5000)],
    ['long odd name with a plain-looking prefix', `${'a'.repeat(79)}_${'B'.repeat(300)}`],
  ])('volume and snapshot IDs stay within 128 bytes (%s)', (_, name) => {
    const dir = dirForName(name);
    const ids = [volumeId({ backend: longestBackend, dir }), snapshotId({ backend: longestBackend, dir })];
    for (const id of ids) expect(Buffer.byteLength(id)).toBeLessThanOrEqual(128);
  });
});
