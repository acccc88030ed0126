import { notFound, precondition } from '../csi/errors.js';
import { mountAt, readMountTable, sourceMatches, type MountEntry } from '../mounts/mount-table.js';
import { resolvePath } from '../mounts/paths.js';
import type { MountOrder, MountSpec } from '../mounts/spec.js';
import type { Backends } from '../volumes/registry.js';

/** How long a probe of a mount (statfs in a child process) may take before it counts as not answering. */
export const PROBE_TIMEOUT_MS = 5_000;
/** Local directory operations (mkdir, rmdir of a target path), bounded in case the path is on a dead mount. */
export const LOCAL_FS_TIMEOUT_MS = 5_000;

/** How a volume is mounted, with no options (its source as findmnt shows it, its cutoff); NOT_FOUND for an ID tether did not make. */
export function volumeSpec(backends: Backends, id: string): MountSpec {
  const { ref, store } = backends.locateVolume(id);
  return store.backend.mountSpec(ref.dir, { flags: [], readonly: false });
}

/**
 * How to mount a volume with the options a CO chose (checked against the backend's allowlist), noting
 * what it was made from: a mount keeper is told that, never the spec.
 */
export function orderedSpec(backends: Backends, order: MountOrder): MountSpec {
  const { ref, store } = backends.locateVolume(order.volumeId);
  store.backend.checkMountOptions(order.flags);
  return { ...store.backend.mountSpec(ref.dir, { flags: order.flags, readonly: order.readonly, group: order.group }), order };
}

/** True if tether could have made this volume ID (it names a configured backend and a valid directory). */
function isTetherVolume(backends: Backends, id: string): boolean {
  try {
    backends.locateVolume(id);
    return true;
  } catch {
    return false;
  }
}

/** Something other than the volume is mounted where the CO says the volume is: it is left alone. */
export const foreignMount = (path: string, entry: MountEntry, id: string) =>
  precondition(`${path} holds ${entry.source} (${entry.fstype}), not volume ${id}; it is left as it is`);

/** True if anything of the volume with this mount source is still mounted on this node (a staging mount or a bind). */
export const mountedHere = (table: readonly MountEntry[], source: string): boolean => table.some((m) => sourceMatches(m, source));

/** The mount of volume `id` at `target`, checked to be that volume's; NOT_FOUND if absent. */
export async function volumeMountAt(backends: Backends, id: string, target: string, signal: AbortSignal) {
  const { source } = volumeSpec(backends, id);
  const table = await readMountTable(signal);
  const entry = mountAt(table, await resolvePath(target));
  if (!entry) throw notFound(`volume ${id} is not mounted at ${target}`);
  if (!sourceMatches(entry, source)) throw notFound(`${target} holds ${entry.source}, not volume ${id}`);
  return { entry, table };
}

/** The volume whose staging mount has this source (as findmnt shows it), if it is a tether volume's. */
export function volumeIdOf(backends: Backends, source: string): string | undefined {
  for (const store of backends.all()) {
    const base = store.backend.mountSpec('.', { flags: [], readonly: false }).source;
    const dir = source.startsWith(`${base}/`) ? source.slice(base.length + 1) : undefined;
    const id = dir && `${store.backend.name}/${dir}`;
    if (id && isTetherVolume(backends, id)) return id;
  }
  return undefined;
}
