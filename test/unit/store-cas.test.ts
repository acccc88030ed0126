// VolumeStore.updateVolume (src/volumes/store.ts): record changes are a compare-and-swap on the
// backend's files, so that no change is lost however writers interleave. Several stores stand for
// several controller processes: they share nothing but the directory (the two-process tests with a
// real sshd and a real NFS server are in test/integration/replicas.test.ts and test/nfs/).
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Backend, RemoteFs } from '../../src/backends/backend.js';
import type { Publication } from '../../src/volumes/access.js';
import type { NewVolumeRecord } from '../../src/volumes/records.js';
import { VolumeStore } from '../../src/volumes/store.js';
import { localBackend } from '../support/handlers.js';
import { codeName, csiErrorAsync } from './csi-error.js';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'tether-cas-'));
});
afterEach(() => rm(root, { recursive: true, force: true }));

const store = (backend: Backend = localBackend('local', root)) => new VolumeStore(backend);
const fresh: NewVolumeRecord = { kind: 'tether.volume/v1', name: 'v', capacityBytes: 1, parameters: {}, onDelete: 'delete', contentSource: null, createdAt: '2026-01-01T00:00:00.000Z', publications: [], claims: [], leases: [], takeovers: [] };
const NOW = new Date('2026-01-01T00:00:00.000Z');
/** The volume's first record, generation 1, as these tests start from (CreateVolume's own steps are tested in controller-volumes). */
const firstRecord = async (s: VolumeStore) => {
  await s.backend.fs.mkdir('v');
  return s.updateVolume('v', (current) => current ?? fresh);
};
const pub = (nodeId: string): Publication => ({ nodeId, accessMode: 'MULTI_NODE_MULTI_WRITER', readonly: false });
const addNode = (nodeId: string) => (current: NewVolumeRecord | undefined) =>
  current && !current.publications.some((p) => p.nodeId === nodeId) ? { ...current, publications: [...current.publications, pub(nodeId)] } : current;

describe('updateVolume', () => {
  test('the first record is generation 1; each change the next; a change to the same record writes nothing', async () => {
    const s = store();
    await firstRecord(s);
    expect((await s.readVolume('v'))?.generation).toBe(1);
    await s.updateVolume('v', addNode('a'));
    await s.updateVolume('v', addNode('a'));
    expect((await s.readVolume('v'))?.generation).toBe(2);
    await s.updateVolume('v', addNode('b'));
    await s.updateVolume('v', addNode('c'));
    expect(await s.readVolume('v')).toMatchObject({ generation: 4, publications: [pub('a'), pub('b'), pub('c')] });
    // older generations are cleaned up as writers move on: at most the current one and the one before
    expect((await readdir(path.join(root, 'v'))).sort()).toEqual(['volume.3.json', 'volume.4.json']);
  });

  test.each([2, 3, 5])('%i stores, 20 concurrent changes each: every change lands exactly once', async (stores) => {
    const writers = Array.from({ length: stores }, () => store());
    await firstRecord(writers[0]!);
    const nodes = writers.flatMap((_, w) => Array.from({ length: 20 }, (_, i) => `w${w}-n${i}`));
    await Promise.all(nodes.map((node, i) => writers[i % stores]!.updateVolume('v', addNode(node))));
    const record = await writers[0]!.readVolume('v');
    expect(record!.publications.map((p) => p.nodeId).sort()).toEqual([...nodes].sort());
    expect(record!.generation).toBe(nodes.length + 1);
  }, 30_000);

  test('a single-node decision under contention: of 30 writers asking for the volume, one gets it', async () => {
    const writers = Array.from({ length: 3 }, () => store());
    await firstRecord(writers[0]!);
    const results = await Promise.allSettled(
      Array.from({ length: 30 }, (_, i) =>
        writers[i % 3]!.updateVolume('v', (current) => {
          if (current!.publications.length) throw new Error(`held by ${current!.publications[0]!.nodeId}`);
          return { ...current!, publications: [pub(`n${i}`)] };
        }),
      ),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect((await writers[0]!.readVolume('v'))!.publications).toHaveLength(1);
  });

  test('two creates of one volume at once: one record stands, and both see it', async () => {
    const [a, b] = [store(), store()];
    const [ra, rb] = await Promise.all([a.beginVolume('v', { ...fresh, capacityBytes: 1 }, NOW), b.beginVolume('v', { ...fresh, capacityBytes: 2 }, NOW)]);
    expect(ra).toEqual(rb);
    expect((await a.readVolume('v'))!.generation).toBe(1);
  });

  test('a writer stalled between its read and its write (delay injected: a slow process) finds the record moved on and decides again', async () => {
    const fast = store();
    await firstRecord(fast);
    let stalled: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (stalled = resolve));
    const slowFs = slowFirstLink(localBackend('local', root).fs, gate);
    const slow = store({ ...localBackend('local', root), fs: slowFs });
    const late = slow.updateVolume('v', addNode('slow'));
    await slowFs.reachedLink;
    for (const node of ['x', 'y', 'z']) await fast.updateVolume('v', addNode(node)); // generation 1 → 4; 2 is cleaned up
    stalled();
    await late;
    expect((await fast.readVolume('v'))!.publications.map((p) => p.nodeId)).toEqual(['x', 'y', 'z', 'slow']);
  });

  test('a change that keeps losing (fault injected: another writer always links first) gives up with ABORTED, leaving no file behind', async () => {
    await firstRecord(store());
    const real = localBackend('local', root).fs;
    const alwaysLoses = Object.assign(Object.create(real) as RemoteFs, { linkExclusive: async () => false });
    const loser = new VolumeStore({ ...localBackend('local', root), fs: alwaysLoses }, { attempts: 5, maxBackoffMs: 1 });
    const err = await csiErrorAsync(loser.updateVolume('v', addNode('a')));
    expect(codeName(err)).toBe('ABORTED');
    expect(err.message).toContain('changed 5 times');
    expect((await readdir(path.join(root, 'v'))).sort()).toEqual(['volume.1.json']);
  });

  test('a v0.1 record (volume.json, no generation) is generation 0, and the first change moves it on', async () => {
    const s = store();
    await firstRecord(s);
    const { rename } = await import('node:fs/promises');
    await rename(path.join(root, 'v', 'volume.1.json'), path.join(root, 'v', 'volume.json'));
    expect((await s.readVolume('v'))?.generation).toBe(0);
    await s.updateVolume('v', addNode('a'));
    await s.updateVolume('v', addNode('b'));
    await s.updateVolume('v', addNode('c'));
    expect((await readdir(path.join(root, 'v'))).sort()).toEqual(['volume.2.json', 'volume.3.json']);
  });
});

/** A RemoteFs whose first linkExclusive waits for `gate` (and says when it got there). */
function slowFirstLink(fs: RemoteFs, gate: Promise<void>): RemoteFs & { reachedLink: Promise<void> } {
  let reached: () => void = () => undefined;
  const reachedLink = new Promise<void>((resolve) => (reached = resolve));
  let first = true;
  return Object.assign(Object.create(fs) as RemoteFs, {
    reachedLink,
    linkExclusive: async (p: string, data: Buffer, signal?: AbortSignal) => {
      if (first) {
        first = false;
        reached();
        await gate;
      }
      return fs.linkExclusive(p, data, signal);
    },
  });
}
