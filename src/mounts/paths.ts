import { lstat, realpath } from 'node:fs/promises';
import path from 'node:path';
import { withTimeout } from '../util/time.js';
import { readMountInfo } from './mount-table.js';

const RESOLVE_TIMEOUT_MS = 5_000;

/**
 * A path as the kernel's mount table shows it, every symlink resolved — in its directories
 * (kubelet's directory often is one: /var/lib/kubelet → /data/kubelet) and in its last component.
 * The last component is looked at only when it is not a mount point (read from
 * /proc/self/mountinfo, which touches no mount): a lookup on the mount point of a server that does
 * not answer would hang, and a mount point is never a symlink. Missing directories are kept as given.
 */
export async function resolvePath(p: string): Promise<string> {
  const absolute = path.resolve(p);
  if (absolute === '/') return absolute;
  const resolve = async (): Promise<string> => {
    const missing: string[] = [];
    let dir = path.dirname(absolute);
    while (dir !== '/' && !(await lstat(dir).then(() => true, () => false))) {
      missing.unshift(path.basename(dir));
      dir = path.dirname(dir);
    }
    const resolved = path.join(await realpath(dir), ...missing, path.basename(absolute));
    if (missing.length || (await readMountInfo()).some((m) => m.target === resolved)) return resolved;
    const isLink = await lstat(resolved).then((s) => s.isSymbolicLink(), () => false);
    return isLink ? realpath(resolved).catch(() => resolved) : resolved;
  };
  return withTimeout(resolve(), RESOLVE_TIMEOUT_MS, `resolving the symlinks of ${absolute}`);
}
