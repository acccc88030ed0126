import { CommandError, run } from '../util/exec.js';

export interface FsUsage {
  totalBytes: number;
  availableBytes: number;
  usedBytes: number;
  totalInodes: number;
  freeInodes: number;
  usedInodes: number;
}

export type Health = { ok: true; usage: FsUsage } | { ok: false; reason: string };

/**
 * statfs of a mount path, in a child process with a timeout: a hung NFS or sshfs server blocks the
 * caller in the kernel, and it must be a throwaway child that blocks, never this event loop or the
 * libuv thread pool that every other volume shares.
 */
export async function probeMount(path: string, timeoutMs: number, signal?: AbortSignal): Promise<Health> {
  try {
    const out = await run('stat', ['--file-system', '--format', '%b %f %a %S %c %d', '--', path], { timeoutMs, signal });
    const [blocks = 0, bfree = 0, bavail = 0, frsize = 0, files = 0, ffree = 0] = out.trim().split(/\s+/).map(Number);
    return {
      ok: true,
      usage: {
        totalBytes: blocks * frsize,
        availableBytes: bavail * frsize,
        usedBytes: Math.max(0, (blocks - bfree) * frsize),
        totalInodes: files,
        freeInodes: ffree,
        usedInodes: Math.max(0, files - ffree),
      },
    };
  } catch (err) {
    if (err instanceof CommandError) {
      return { ok: false, reason: err.timedOut ? `the filesystem did not answer within ${timeoutMs} ms (server hung or unreachable)` : err.stderr.replace(/^stat: /, '') || err.message };
    }
    throw err;
  }
}
