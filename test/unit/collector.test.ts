// src/volumes/collector.ts: what processes that died mid-call leave is removed once it is old
// enough, bounded per run, and nothing else ever is (a live volume, a damaged record, a foreign
// directory, a fresh temporary file another call may still be writing).
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { collectOrphans, COLLECTOR_LIMITS } from '../../src/volumes/collector.js';
import type { NewVolumeRecord } from '../../src/volumes/records.js';
import { VolumeStore } from '../../src/volumes/store.js';
import { localBackend } from '../support/handlers.js';

const NOW = new Date('2026-06-01T12:00:00Z');
const HOUR = 3_600_000;
const record = (name: string): NewVolumeRecord => ({ kind: 'tether.volume/v1', name, capacityBytes: 1, parameters: {}, onDelete: 'delete', contentSource: null, createdAt: 'x', publications: [], claims: [], leases: [], takeovers: [] });

let root: string;
let store: VolumeStore;
beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'tether-collector-'));
  store = new VolumeStore(localBackend('local', root));
});
afterEach(() => rm(root, { recursive: true, force: true }));

const at = (...parts: string[]) => path.join(root, ...parts);
/** Sets the modification time of a path to `ageMs` before NOW. */
const age = (p: string, ageMs: number) => utimes(at(p), new Date(NOW.getTime() - ageMs), new Date(NOW.getTime() - ageMs));
const collect = (limits = COLLECTOR_LIMITS) => collectOrphans(store, NOW, limits, pino({ level: 'silent' }));
const tree = async () => (await readdir(root, { recursive: true })).sort();

async function liveVolume(dir: string) {
  await store.beginVolume(dir, record(dir), NOW);
  await store.finishVolume(dir, undefined);
}

test('old temporary files and copy scratch directories go, fresh ones stay (a write may be under way), wherever tether writes', async () => {
  await liveVolume('v1');
  await mkdir(at('.nodes'));
  for (const [file, ageMs] of [['v1/volume.3.json.tmp-0123abcd', 2 * HOUR], ['.nodes/n.json.tmp-89abcdef', 2 * HOUR], ['v1/volume.4.json.tmp-fedcba98', 60_000]] as const) {
    await writeFile(at(file), '{');
    await age(file, ageMs);
  }
  await mkdir(at('v1', '.copy-0a1b2c3d', 'pinned'), { recursive: true });
  await age('v1/.copy-0a1b2c3d', 2 * HOUR);
  expect(await collect()).toEqual(['.nodes/n.json.tmp-89abcdef', 'v1/.copy-0a1b2c3d', 'v1/volume.3.json.tmp-0123abcd']);
  expect(await tree()).toContain('v1/volume.4.json.tmp-fedcba98');
});

test('half-made volumes older than a day go (recordless, or marked as being created); younger ones, live volumes, damaged records and foreign directories stay', async () => {
  await liveVolume('live');
  await mkdir(at('recordless', 'data'), { recursive: true });
  await store.beginVolume('creating', record('creating'), NOW);
  await mkdir(at('young', 'data'), { recursive: true });
  await mkdir(at('damaged', 'data'), { recursive: true });
  await writeFile(at('damaged', 'volume.1.json'), 'not json');
  await mkdir(at('foreign'));
  await writeFile(at('foreign', 'notes.txt'), 'mine');
  for (const dir of ['live', 'recordless', 'creating', 'damaged', 'foreign']) await age(dir, 25 * HOUR);
  await age('young', 23 * HOUR);
  expect((await collect()).sort()).toEqual(['creating', 'recordless']);
  expect(await readdir(root)).toEqual(expect.arrayContaining(['live', 'young', 'damaged', 'foreign']));
  expect(await readdir(root)).not.toEqual(expect.arrayContaining(['creating']));
  expect(await readdir(root)).not.toEqual(expect.arrayContaining(['recordless']));
});

test('a snapshot directory without a record older than a day goes; complete snapshots stay', async () => {
  await liveVolume('v1');
  await store.createSnapshot('snap-ok', 'v1', { kind: 'tether.snapshot/v1', name: 'snap-ok', sourceVolumeId: 'local/v1', sizeBytes: 1, createdAt: 'x' });
  await mkdir(at('.snapshots', 'snap-half', 'data'), { recursive: true });
  for (const dir of ['.snapshots/snap-ok', '.snapshots/snap-half']) await age(dir, 25 * HOUR);
  expect(await collect()).toEqual(['.snapshots/snap-half']);
  expect(await readdir(at('.snapshots'))).toEqual(['snap-ok']);
});

test('a run removes at most maxRemovals; the next run goes on', async () => {
  for (let i = 0; i < 5; i++) {
    await mkdir(at(`half-${i}`));
    await age(`half-${i}`, 25 * HOUR);
  }
  expect(await collect({ ...COLLECTOR_LIMITS, maxRemovals: 3 })).toHaveLength(3);
  expect(await collect({ ...COLLECTOR_LIMITS, maxRemovals: 3 })).toHaveLength(2);
  expect(await readdir(root)).toEqual([]);
});
