import { posix } from 'node:path';
import type { Logger } from 'pino';
import { COPY_SCRATCH } from '../backends/backend.js';
import { GROUPS_DIR, SNAPSHOTS_DIR } from './ids.js';
import { TEMP_FILE } from './layout.js';
import type { VolumeStore } from './store.js';

/** What the collector of orphans takes, and how much per run. */
export interface CollectorLimits {
  /** A temporary file of an atomic write older than this was left by a process that died mid-write. */
  tempAgeMs: number;
  /** A half-made volume or snapshot older than this is no retry's any more (a CO gives up long before). */
  halfMadeAgeMs: number;
  /** At most this many removals per backend and run: a run is short, and a surprise stays small. */
  maxRemovals: number;
}

export const COLLECTOR_LIMITS: CollectorLimits = { tempAgeMs: 3_600_000, halfMadeAgeMs: 86_400_000, maxRemovals: 100 };

/**
 * Removes what processes that died mid-call leave on a backend, once it is old enough that no call
 * can still be working on it: temporary files of atomic writes, copies' scratch directories, volumes whose CreateVolume stopped
 * halfway (see VolumeStore.discardHalfMade: a compare-and-swap, safe beside another controller),
 * and snapshot directories without a record. Ages are by the server's clock against this one's:
 * the safe ages are hours, far above any sane clock skew. Returns what it removed; each is logged.
 */
export async function collectOrphans(store: VolumeStore, now: Date, limits: CollectorLimits, log: Logger, signal?: AbortSignal): Promise<string[]> {
  const fs = store.backend.fs;
  const removed: string[] = [];
  const olderThan = async (path: string, ageMs: number) => {
    const at = await fs.modifiedAt(path, signal);
    return at !== undefined && now.getTime() - at.getTime() > ageMs;
  };
  /** `remove` answers false when it found the thing was not an orphan after all (a foreign directory, a create that finished). */
  const take = async (what: string, path: string, remove: () => Promise<boolean | void>) => {
    if (removed.length >= limits.maxRemovals || (await remove()) === false) return;
    removed.push(path);
    log.info({ backend: store.backend.name, path: store.where(path), event: 'orphan-removed' }, `removed ${what} left by a call that stopped halfway`);
  };

  const volumes = await store.volumeDirs(signal);
  const snapshots = (await store.snapshotDirs(signal)).map((d) => posix.join(SNAPSHOTS_DIR, d));
  const groups = (await fs.list(GROUPS_DIR, signal)).filter((e) => e.isDirectory).map((e) => posix.join(GROUPS_DIR, e.name));
  for (const dir of ['.', '.nodes', SNAPSHOTS_DIR, GROUPS_DIR, ...volumes, ...snapshots, ...groups]) {
    for (const entry of await fs.list(dir, signal)) {
      const path = posix.join(dir, entry.name);
      const temporary = entry.isDirectory ? COPY_SCRATCH.test(entry.name) : TEMP_FILE.test(entry.name);
      if (temporary && (await olderThan(path, limits.tempAgeMs))) await take(entry.isDirectory ? "a copy's scratch directory" : 'a temporary file', path, () => fs.removeTree(path, signal));
    }
  }
  for (const dir of volumes) {
    const record = await store.readVolume(dir, signal).catch(() => null); // damaged: an operator's to look at, never removed
    if ((record === undefined || record?.creatingAt) && (await olderThan(dir, limits.halfMadeAgeMs))) {
      await take('a half-made volume', dir, () => store.discardHalfMade(dir, now, signal));
    }
  }
  for (const path of snapshots) {
    const dir = posix.basename(path);
    if ((await store.readSnapshot(dir, signal).catch(() => null)) === undefined && (await olderThan(path, limits.halfMadeAgeMs))) await take('a half-made snapshot', path, () => store.removeSnapshot(dir, signal));
  }
  return removed;
}
