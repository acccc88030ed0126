import path from 'node:path';
import { notFound } from '../csi/errors.js';
import { mountAt, readMountTable, sourceMatches } from '../mounts/mount-table.js';
import type { Backends } from '../volumes/registry.js';

/** How long a probe of a mount (statfs in a child process) may take before it counts as not answering. */
export const PROBE_TIMEOUT_MS = 5_000;
/** Local directory operations (mkdir, rmdir of a target path), bounded in case the path is on a dead mount. */
export const LOCAL_FS_TIMEOUT_MS = 5_000;

/** The mount source of a volume ID (as findmnt shows it), or NOT_FOUND for an ID tether did not make. */
export function volumeSource(backends: Backends, id: string): string {
  const { ref, store } = backends.locateVolume(id);
  return store.backend.mountSpec(ref.dir, { flags: [], readonly: false }).source;
}

/** The mount of volume `id` at `target`, checked to be that volume's; NOT_FOUND if absent. */
export async function volumeMountAt(backends: Backends, id: string, target: string, signal: AbortSignal) {
  const source = volumeSource(backends, id);
  const table = await readMountTable(signal);
  const entry = mountAt(table, path.resolve(target));
  if (!entry) throw notFound(`volume ${id} is not mounted at ${target}`);
  if (!sourceMatches(entry, source)) throw notFound(`${target} holds ${entry.source}, not volume ${id}`);
  return { entry, table };
}
