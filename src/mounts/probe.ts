import { cancelled } from '../csi/errors.js';
import { CommandError, run } from '../util/exec.js';

export interface FsUsage {
  totalBytes: number;
  availableBytes: number;
  usedBytes: number;
  totalInodes: number;
  freeInodes: number;
  usedInodes: number;
}

/**
 * Why a mount does not answer:
 * - `gone`: it can never answer again — a stale file handle (the server's export was re-created,
 *   restored or moved) or a FUSE daemon that died. Only a new mount helps, and a new mount is safe:
 *   nothing can still be queued on the old one.
 * - `unreachable`: the server does not answer (down, hung, cut off). The mount heals by itself when
 *   the server is back, with any writes still queued on it; unmounting it now would lose them.
 * - `error`: anything else (permissions, ...).
 */
export type Broken = { ok: false; kind: 'gone' | 'unreachable' | 'error'; reason: string };
export type Health = { ok: true; usage: FsUsage } | Broken;

/** How broken a mount is, from what statfs said about it (see Broken). */
export function brokenKind(reason: string): Broken['kind'] {
  return GONE.test(reason) ? 'gone' : UNREACHABLE.test(reason) ? 'unreachable' : 'error';
}

const GONE = /stale file handle|transport endpoint is not connected/i;
const UNREACHABLE = /input\/output error|host is down|connection (refused|reset|timed out)|no route to host|network is unreachable/i;

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
    if (!(err instanceof CommandError)) throw err;
    // A probe stopped because its call ended says nothing about the mount: reporting it broken would
    // have a caller act on a healthy mount (the mounter would `umount --force` it). The call's end, passed on.
    if (err.outcome === 'cancelled') throw cancelled(`${err.message}; ${path} was not probed`);
    if (err.outcome === 'timed out') return { ok: false, kind: 'unreachable', reason: `the filesystem did not answer within ${timeoutMs} ms (server hung or unreachable)` };
    const reason = err.stderr.replace(/^stat: /, '') || err.message;
    return { ok: false, kind: brokenKind(reason), reason };
  }
}
