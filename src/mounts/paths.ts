import { lstat, realpath } from 'node:fs/promises';
import path from 'node:path';
import { withTimeout } from '../util/time.js';

const RESOLVE_TIMEOUT_MS = 5_000;

/**
 * A path as the kernel's mount table will show it: its directory with every symlink resolved
 * (kubelet's directory often is one, e.g. /var/lib/kubelet → /data/kubelet), the last component as
 * given. The last component is never looked at: it may be the mount point of a server that does
 * not answer, and a lookup there would hang. Missing directories are appended as they are.
 */
export async function resolvePath(p: string): Promise<string> {
  const absolute = path.resolve(p);
  if (absolute === '/') return absolute;
  const missing: string[] = [];
  let dir = path.dirname(absolute);
  const resolve = async (): Promise<string> => {
    for (;;) {
      const found = await lstat(dir).then(() => true, () => false);
      if (found || dir === '/') return path.join(await realpath(dir), ...missing, path.basename(absolute));
      missing.unshift(path.basename(dir));
      dir = path.dirname(dir);
    }
  };
  return withTimeout(resolve(), RESOLVE_TIMEOUT_MS, `resolving the directories of ${absolute}`);
}
