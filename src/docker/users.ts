import { readdir, readFile, readlink } from 'node:fs/promises';
import { entryOf, parseMountInfo, sourceMatches, type MountEntry } from '../mounts/mount-table.js';
import { withTimeout } from '../util/time.js';

/** How long one look through /proc may take: it reads the kernel's tables, never a server, but a host may run thousands of processes. */
const SCAN_TIMEOUT_MS = 10_000;

/**
 * How many processes' mount namespaces — other than this process's own — hold a bind of the volume
 * staged at `staged`: the containers using it. Docker binds a volume's mount point into a container's
 * own mount namespace, where the host's mount table does not show it, so this looks into each
 * namespace's table (/proc/<pid>/mountinfo, one process per namespace). A bind of the volume is an
 * entry with the staging mount's device and source at another place: a namespace cloned from the
 * host's after the volume was staged holds a copy of the staging mount itself, at the same place,
 * which is no use of it. Needs the host's PID namespace (a plugin in a container: --pid host).
 */
export async function containersUsing(staged: MountEntry): Promise<number> {
  return withTimeout(countUsers(staged), SCAN_TIMEOUT_MS, 'looking for containers that use the volume');
}

async function countUsers(staged: MountEntry): Promise<number> {
  const own = await readlink('/proc/self/ns/mnt');
  const pids = (await readdir('/proc')).filter((n) => /^\d+$/.test(n));
  const byNamespace = new Map<string, string>();
  await Promise.all(
    pids.map(async (pid) => {
      const ns = await readlink(`/proc/${pid}/ns/mnt`).catch(() => undefined); // gone, or a kernel thread
      if (ns && ns !== own && !byNamespace.has(ns)) byNamespace.set(ns, pid);
    }),
  );
  let users = 0;
  for (const pid of byNamespace.values()) {
    const text = await readFile(`/proc/${pid}/mountinfo`, 'utf8').catch(() => '');
    if (parseMountInfo(text).some((m) => isBindOf(entryOf(m), staged))) users += 1;
  }
  return users;
}

/** A mount of the staged volume somewhere else than its staging path: the same filesystem and volume. */
export const isBindOf = (m: MountEntry, staged: MountEntry) => m.device === staged.device && m.target !== staged.target && sourceMatches(m, staged.source);
