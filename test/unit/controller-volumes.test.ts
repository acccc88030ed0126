// CreateVolume, DeleteVolume, ListVolumes and ListSnapshots (src/controller/create-volume.ts,
// volumes.ts, snapshots.ts) through the real pipeline on real directories: what a repeated or
// conflicting create answers, what delete does to the data, and how pages are walked.
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { mountCapability, startController, type TestController } from '../support/handlers.js';

const GiB = 1024 ** 3;
const caps = [mountCapability('SINGLE_NODE_MULTI_WRITER')];

let ctl: TestController;
beforeEach(async () => {
  ctl = await startController(['local', 'other']);
  await ctl.registerNode('node-a');
});
afterEach(() => ctl.cleanup());

const create = (name: string, extra: object = {}) => ctl.call('CreateVolume', { name, volume_capabilities: caps, parameters: { backend: 'local' }, ...extra });
const exists = (p: string) => stat(p).then(() => true, () => false);

describe('CreateVolume of a name that exists (one backend)', () => {
  let id: string;
  beforeEach(async () => {
    await ctl.cleanup();
    ctl = await startController(['local']);
    id = (await create('pvc-1', { capacity_range: { required_bytes: GiB } })).volume!.volume_id!;
    await ctl.call('CreateVolume', { name: 'pvc-src', volume_capabilities: caps, parameters: { backend: 'local' } });
  });

  test.each<[string, object, string | undefined]>([
    ['the same request: the same volume', { capacity_range: { required_bytes: GiB } }, undefined],
    ['a smaller required size the volume satisfies', { capacity_range: { required_bytes: 1024 } }, undefined],
    ['a range that holds the size', { capacity_range: { required_bytes: 1024, limit_bytes: 2 * GiB } }, undefined],
    ['another onDelete (mutable: no conflict)', { parameters: { backend: 'local', onDelete: 'retain' } }, undefined],
    ['a larger required size', { capacity_range: { required_bytes: 2 * GiB } }, 'outside the requested capacity range'],
    ['a limit below the size', { capacity_range: { limit_bytes: 1024 } }, 'outside the requested capacity range'],
    ['no backend parameter this time', { parameters: {} }, 'another backend parameter'],
    ['another Docker sharing mode', { parameters: { backend: 'local', dockerSharing: 'all' } }, 'another dockerSharing parameter'],
    ['a content source it was not made from', { volume_content_source: { volume: { volume_id: 'local/pvc-src' } } }, 'another content source'],
  ])('%s', async (_, change, conflict) => {
    if (conflict === undefined) {
      const { volume } = await create('pvc-1', change);
      expect(volume).toMatchObject({ volume_id: id, capacity_bytes: String(GiB) });
      return;
    }
    const err = await ctl.failure('CreateVolume', { name: 'pvc-1', volume_capabilities: caps, parameters: { backend: 'local' }, ...change });
    expect(err.code).toBe('ALREADY_EXISTS');
    expect(err.message).toContain(conflict);
  });

  test('a name kept by onDelete=retain stays taken: ALREADY_EXISTS saying where the data is', async () => {
    await ctl.call('ControllerModifyVolume', { volume_id: id, mutable_parameters: { onDelete: 'retain' } });
    await ctl.call('DeleteVolume', { volume_id: id });
    const err = await ctl.failure('CreateVolume', { name: 'pvc-1', volume_capabilities: caps, parameters: { backend: 'local' } });
    expect(err.code).toBe('ALREADY_EXISTS');
    expect(err.message).toContain(path.join(ctl.roots.local!, 'pvc-1'));
  });
});

describe('CreateVolume refused', () => {
  test.each<[string, string, object, RegExp]>([
    ['no name', 'INVALID_ARGUMENT', { name: '', volume_capabilities: caps }, /name/],
    ['no capability', 'INVALID_ARGUMENT', { name: 'v', volume_capabilities: [] }, /volume_capabilities/],
    ['block access', 'INVALID_ARGUMENT', { name: 'v', volume_capabilities: [{ access_mode: { mode: 'SINGLE_NODE_WRITER' }, block: {} }] }, /block/],
    ['required above the limit', 'INVALID_ARGUMENT', { name: 'v', volume_capabilities: caps, capacity_range: { required_bytes: 2, limit_bytes: 1 } }, /exceeds/],
    ['an unknown parameter', 'INVALID_ARGUMENT', { name: 'v', volume_capabilities: caps, parameters: { backend: 'local', speed: 'fast' } }, /speed/],
    ['two backends and none chosen', 'INVALID_ARGUMENT', { name: 'v', volume_capabilities: caps }, /backend/],
    ['a backend not configured', 'INVALID_ARGUMENT', { name: 'v', volume_capabilities: caps, parameters: { backend: 'nope' } }, /nope/],
    ['a snapshot that does not exist', 'NOT_FOUND', { name: 'v', volume_capabilities: caps, parameters: { backend: 'local' }, volume_content_source: { snapshot: { snapshot_id: 'local/.snapshots/none' } } }, /none/],
    ['a source volume that does not exist', 'NOT_FOUND', { name: 'v', volume_capabilities: caps, parameters: { backend: 'local' }, volume_content_source: { volume: { volume_id: 'local/none' } } }, /local\/none/],
  ])('%s → %s', async (_, code, request, message) => {
    const err = await ctl.failure('CreateVolume', request as never);
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
    expect(await readdir(ctl.roots.local!)).toEqual(['.nodes']); // nothing was made
  });

  test('a clone of a volume on another backend → INVALID_ARGUMENT naming the backend', async () => {
    await ctl.call('CreateVolume', { name: 'src', volume_capabilities: caps, parameters: { backend: 'other' } });
    const err = await ctl.failure('CreateVolume', { name: 'v', volume_capabilities: caps, parameters: { backend: 'local' }, volume_content_source: { volume: { volume_id: 'other/src' } } });
    expect(err).toEqual({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('backend other') });
  });
});

describe('CreateVolume from a source', () => {
  test('a clone copies the data and is at least as large as its source', async () => {
    await create('src', { capacity_range: { required_bytes: 3 * GiB } });
    await writeFile(path.join(ctl.roots.local!, 'src', 'data', 'journal.txt'), 'entry 1\n');
    const { volume } = await create('clone', { volume_content_source: { volume: { volume_id: 'local/src' } } });
    expect(volume).toMatchObject({ capacity_bytes: String(3 * GiB), content_source: { volume: { volume_id: 'local/src' } } });
    expect(await readFile(path.join(ctl.roots.local!, 'clone', 'data', 'journal.txt'), 'utf8')).toBe('entry 1\n');
  });
});

describe('DeleteVolume', () => {
  test('of a published volume → FAILED_PRECONDITION naming the node; the data stays; after unpublish it goes', async () => {
    const id = (await create('pvc-1')).volume!.volume_id!;
    await writeFile(path.join(ctl.roots.local!, 'pvc-1', 'data', 'keep.txt'), 'precious');
    await ctl.call('ControllerPublishVolume', { volume_id: id, node_id: 'node-a', volume_capability: caps[0] });
    const err = await ctl.failure('DeleteVolume', { volume_id: id });
    expect(err).toEqual({ code: 'FAILED_PRECONDITION', message: expect.stringContaining('node-a') });
    expect(await readFile(path.join(ctl.roots.local!, 'pvc-1', 'data', 'keep.txt'), 'utf8')).toBe('precious');
    await ctl.call('ControllerUnpublishVolume', { volume_id: id, node_id: 'node-a' });
    await ctl.call('DeleteVolume', { volume_id: id });
    expect(await exists(path.join(ctl.roots.local!, 'pvc-1'))).toBe(false);
    await ctl.call('DeleteVolume', { volume_id: id }); // again: OK
  });

  test.each<[string, (root: string) => Promise<boolean>]>([
    ['delete', async (root) => !(await exists(path.join(root, 'pvc-1')))],
    ['retain', async (root) => (await readFile(path.join(root, 'pvc-1', 'data', 'keep.txt'), 'utf8')) === 'precious'],
    ['archive', async (root) => (await readdir(path.join(root, '.archive'))).some((d) => d.startsWith('pvc-1-')) && !(await exists(path.join(root, 'pvc-1')))],
  ])('onDelete=%s does what it says, and the volume is gone for the CO', async (onDelete, check) => {
    const id = (await create('pvc-1', { parameters: { backend: 'local', onDelete } })).volume!.volume_id!;
    await writeFile(path.join(ctl.roots.local!, 'pvc-1', 'data', 'keep.txt'), 'precious');
    await ctl.call('DeleteVolume', { volume_id: id });
    expect(await check(ctl.roots.local!)).toBe(true);
    expect((await ctl.failure('ControllerGetVolume', { volume_id: id })).code).toBe('NOT_FOUND');
    expect((await ctl.call('ListVolumes', {})).entries).toEqual([]);
  });

  test('without a volume_id → INVALID_ARGUMENT', async () => {
    expect((await ctl.failure('DeleteVolume', {})).code).toBe('INVALID_ARGUMENT');
  });

  test.each<[string]>([['local/never-made'], ['nosuch/x'], ['../../etc'], ['local/.snapshots/x']])('of %j, which names no volume: OK, nothing touched', async (id) => {
    await create('pvc-1');
    await ctl.call('DeleteVolume', { volume_id: id });
    expect(await readdir(ctl.roots.local!)).toEqual(['.nodes', 'pvc-1']);
  });
});

describe('half-made volumes and things in the base directory that are not volumes', () => {
  const at = (...parts: string[]) => path.join(ctl.roots.local!, ...parts);
  /** What a CreateVolume killed between its directory and its record leaves (tether ≤ 0.1 made data/ first). */
  const halfMade = async (dir: string) => {
    await mkdir(at(dir, 'data', 'sub'), { recursive: true });
    await writeFile(at(dir, 'data', 'sub', 'partial'), 'half a clone');
    await writeFile(at(dir, 'volume.1.json.tmp-0123abcd'), '{"kind":');
  };

  test('a CreateVolume stopped after its record (marked as being created): invisible; the retry finishes it; the record loses its mark', async () => {
    await ctl.backends.get('local')!.beginVolume('pvc-1', { kind: 'tether.volume/v1', name: 'pvc-1', capacityBytes: GiB, parameters: { backend: 'local' }, onDelete: 'delete', contentSource: null, createdAt: 'x', publications: [], claims: [], leases: [], takeovers: [] }, new Date());
    expect((await ctl.call('ListVolumes', {})).entries).toEqual([]);
    expect((await ctl.failure('ControllerGetVolume', { volume_id: 'local/pvc-1' })).code).toBe('NOT_FOUND');
    expect((await ctl.failure('ControllerPublishVolume', { volume_id: 'local/pvc-1', node_id: 'node-a', volume_capability: caps[0] })).code).toBe('NOT_FOUND');
    expect((await create('pvc-1')).volume!.volume_id).toBe('local/pvc-1');
    expect(await exists(at('pvc-1', 'data'))).toBe(true);
    expect(JSON.parse(await readFile(at('pvc-1', 'volume.2.json'), 'utf8'))).not.toHaveProperty('creatingAt');
    expect((await ctl.call('ListVolumes', {})).entries!.map((e) => e.volume!.volume_id)).toEqual(['local/pvc-1']);
  });

  test('DeleteVolume of a volume marked as being created removes it, whatever onDelete says (no one ever had it)', async () => {
    await ctl.backends.get('local')!.beginVolume('pvc-1', { kind: 'tether.volume/v1', name: 'pvc-1', capacityBytes: GiB, parameters: {}, onDelete: 'retain', contentSource: null, createdAt: 'x', publications: [], claims: [], leases: [], takeovers: [] }, new Date());
    await ctl.call('DeleteVolume', { volume_id: 'local/pvc-1' });
    expect(await readdir(ctl.roots.local!)).toEqual(['.nodes']);
  });

  test('DeleteVolume of a half-made directory without a record (data/ partly copied, a temp file) removes it; a retry is OK', async () => {
    await halfMade('pvc-1');
    await ctl.call('DeleteVolume', { volume_id: 'local/pvc-1' });
    expect(await readdir(ctl.roots.local!)).toEqual(['.nodes']);
    await ctl.call('DeleteVolume', { volume_id: 'local/pvc-1' });
  });

  test('the retried CreateVolume of a half-made directory without a record finishes it', async () => {
    await halfMade('pvc-1');
    await create('pvc-1');
    expect(await readFile(at('pvc-1', 'data', 'sub', 'partial'), 'utf8')).toBe('half a clone');
    expect((await ctl.call('ListVolumes', {})).entries).toHaveLength(1);
  });

  test('DeleteVolume of a directory that holds anything else and no record: OK, and every file stays', async () => {
    await mkdir(at('backups', 'data'), { recursive: true });
    await writeFile(at('backups', 'README'), 'mine');
    await ctl.call('DeleteVolume', { volume_id: 'local/backups' });
    expect(await readFile(at('backups', 'README'), 'utf8')).toBe('mine');
    expect(await exists(at('backups', 'data'))).toBe(true);
  });

  test('lost+found, foreign directories and damaged records: ListVolumes lists the volumes and ignores the rest; Get says NOT_FOUND', async () => {
    await create('v1');
    await mkdir(at('lost+found'), { mode: 0o700 });
    await mkdir(at('Photos 2024'));
    await mkdir(at('plain-dir'));
    await writeFile(at('plain-dir', 'volume.1.json'), 'not json');
    await writeFile(at('a-file'), '');
    expect((await ctl.call('ListVolumes', {})).entries!.map((e) => e.volume!.volume_id)).toEqual(['local/v1']);
    expect((await ctl.call('ListVolumes', { max_entries: 1 })).next_token).toBe('');
    for (const id of ['local/lost+found', 'local/Photos 2024']) expect((await ctl.failure('ControllerGetVolume', { volume_id: id })).code).toBe('NOT_FOUND');
  });
});

describe('pagination', () => {
  /** Walks ListVolumes `max` at a time; returns the IDs of every page. */
  const walkVolumes = async (max: number) => {
    const pages: string[][] = [];
    let token = '';
    do {
      const res = await ctl.call('ListVolumes', { max_entries: max, starting_token: token });
      pages.push((res.entries ?? []).map((e) => e.volume!.volume_id!));
      token = res.next_token ?? '';
    } while (token && pages.length < 20);
    return pages;
  };

  test.each<[number, number[]]>([
    [0, [7]],
    [1, [1, 1, 1, 1, 1, 1, 1]],
    [2, [2, 2, 2, 1]],
    [3, [3, 3, 1]],
    [7, [7]],
    [10, [7]],
  ])('ListVolumes, max_entries %i: pages of %j, every volume once, in ID order, across backends', async (max, sizes) => {
    const names = ['v5', 'v1', 'v3', 'v2', 'v4'];
    for (const name of names) await create(name);
    for (const name of ['w1', 'w2']) await ctl.call('CreateVolume', { name, volume_capabilities: caps, parameters: { backend: 'other' } });
    const pages = await walkVolumes(max);
    expect(pages.map((p) => p.length)).toEqual(sizes);
    expect(pages.flat()).toEqual(['local/v1', 'local/v2', 'local/v3', 'local/v4', 'local/v5', 'other/w1', 'other/w2']);
  });

  test('a volume deleted between pages is not missed or repeated; a half-made one is not listed', async () => {
    for (const name of ['v1', 'v2', 'v3', 'v4']) await create(name);
    await writeFile(path.join(ctl.roots.local!, 'v25-half-made'), ''); // not a directory: ignored
    const first = await ctl.call('ListVolumes', { max_entries: 2 });
    expect(first.next_token).toBe('local/v3');
    await ctl.call('DeleteVolume', { volume_id: 'local/v3' });
    const second = await ctl.call('ListVolumes', { max_entries: 2, starting_token: first.next_token });
    expect(second.entries!.map((e) => e.volume!.volume_id)).toEqual(['local/v4']);
    expect(second.next_token).toBe('');
  });

  test.each<[string, string, object]>([
    ['a token tether did not issue', 'ABORTED', { starting_token: 'garbage' }],
    ['a negative max_entries', 'INVALID_ARGUMENT', { max_entries: -1 }],
  ])('ListVolumes with %s → %s', async (_, code, request) => {
    expect((await ctl.failure('ListVolumes', request)).code).toBe(code);
  });

  test('ListSnapshots pages the same way, and filters by source volume', async () => {
    await create('v1');
    await create('v2');
    for (const [name, source] of [['s1', 'local/v1'], ['s2', 'local/v2'], ['s3', 'local/v1']] as const) {
      await ctl.call('CreateSnapshot', { name, source_volume_id: source });
    }
    const first = await ctl.call('ListSnapshots', { max_entries: 2 });
    expect(first.entries!.map((e) => e.snapshot!.snapshot_id)).toEqual(['local/.snapshots/s1', 'local/.snapshots/s2']);
    const second = await ctl.call('ListSnapshots', { max_entries: 2, starting_token: first.next_token });
    expect(second.entries!.map((e) => e.snapshot!.snapshot_id)).toEqual(['local/.snapshots/s3']);
    expect(second.next_token).toBe('');
    const ofV1 = await ctl.call('ListSnapshots', { source_volume_id: 'local/v1' });
    expect(ofV1.entries!.map((e) => e.snapshot!.snapshot_id)).toEqual(['local/.snapshots/s1', 'local/.snapshots/s3']);
    expect((await ctl.failure('ListSnapshots', { starting_token: 'local/v1' })).code).toBe('ABORTED');
  });
});

describe('a node that holds the writer lease of a volume (staged exclusively), as the controller sees it', () => {
  const lease = { nodeId: 'node-a', accessMode: 'SINGLE_NODE_WRITER' as const, readonly: false, id: 'lease-1', renewals: 7, termMs: 20_000, takenAt: 't' };
  const leaseOn = async (id: string, renewals = 7) => {
    await ctl.backends.get('local')!.updateVolume(id.split('/')[1]!, (r) => (r ? { ...r, leases: [{ ...lease, renewals }] } : r));
  };
  const rwo = mountCapability('SINGLE_NODE_WRITER');
  beforeEach(() => ctl.registerNode('node-b'));

  test('DeleteVolume is refused while the lease is live; once watched unrenewed for a full term, it goes', async () => {
    const id = (await create('pvc-1')).volume!.volume_id!;
    await leaseOn(id);
    expect(await ctl.failure('DeleteVolume', { volume_id: id })).toEqual({ code: 'FAILED_PRECONDITION', message: expect.stringMatching(/staged on node node-a \(its writer lease is live/) });
    ctl.advanceClock(19_999);
    expect((await ctl.failure('DeleteVolume', { volume_id: id })).code).toBe('FAILED_PRECONDITION');
    ctl.advanceClock(1);
    await ctl.call('DeleteVolume', { volume_id: id });
    expect(await exists(path.join(ctl.roots.local!, 'pvc-1'))).toBe(false);
  });

  test('a renewal puts the delete off by a full term', async () => {
    const id = (await create('pvc-1')).volume!.volume_id!;
    await leaseOn(id, 7);
    await ctl.failure('DeleteVolume', { volume_id: id });
    ctl.advanceClock(15_000);
    await leaseOn(id, 8);
    ctl.advanceClock(15_000);
    expect((await ctl.failure('DeleteVolume', { volume_id: id })).code).toBe('FAILED_PRECONDITION');
  });

  test('ControllerPublish to node-b is refused naming node-a and the earliest takeover; after a full term unrenewed it takes over, noted in the record', async () => {
    const id = (await create('pvc-1')).volume!.volume_id!;
    await leaseOn(id);
    const refused = await ctl.failure('ControllerPublishVolume', { volume_id: id, node_id: 'node-b', volume_capability: rwo });
    expect(refused).toEqual({ code: 'FAILED_PRECONDITION', message: expect.stringContaining('held by node node-a (SINGLE_NODE_WRITER), whose writer lease is live') });
    expect(refused.message).toContain('taken over in 20 s at the earliest');
    ctl.advanceClock(12_000);
    expect((await ctl.failure('ControllerPublishVolume', { volume_id: id, node_id: 'node-b', volume_capability: rwo })).message).toContain('taken over in 8 s');
    ctl.advanceClock(8_000);
    await ctl.call('ControllerPublishVolume', { volume_id: id, node_id: 'node-b', volume_capability: rwo });
    const record = await ctl.backends.get('local')!.readVolume('pvc-1');
    expect(record?.leases).toEqual([]);
    expect(record?.publications.map((p) => p.nodeId)).toEqual(['node-b']);
    expect(record?.takeovers).toEqual([{ from: 'node-a', to: 'node-b', at: '2026-01-02T03:04:05.678Z', watchedMs: 20_000 }]);
  });

  test('a reader of a MULTI_NODE_SINGLE_WRITER volume is not held up by the writer\'s lease', async () => {
    const id = (await create('pvc-1')).volume!.volume_id!;
    await ctl.backends.get('local')!.updateVolume('pvc-1', (r) => (r ? { ...r, leases: [{ ...lease, accessMode: 'MULTI_NODE_SINGLE_WRITER' }] } : r));
    await ctl.call('ControllerPublishVolume', { volume_id: id, node_id: 'node-b', volume_capability: mountCapability('MULTI_NODE_SINGLE_WRITER'), readonly: true });
    expect((await ctl.failure('ControllerPublishVolume', { volume_id: id, node_id: 'node-b', volume_capability: mountCapability('MULTI_NODE_SINGLE_WRITER') })).code).toBe('ALREADY_EXISTS');
  });
});
