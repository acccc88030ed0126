import { link, lstat, mkdir, open, readFile, readdir, rename, rm, rmdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { DirEntry, RemoteFs } from './backend.js';
import { cancelled, deadline, errnoName, stopIfEnded } from '../csi/errors.js';
import { probeMount } from '../mounts/probe.js';
import { CommandError, run } from '../util/exec.js';
import { withTimeout } from '../util/time.js';

/** A use of the mounted export: its root, and how to give it back or report it stale. */
export interface ExportHandle {
  root: string;
  release(): void;
  /** The mount answered ESTALE: the next use mounts the export again. */
  stale(): void;
}

/**
 * RemoteFs on a directory of this machine that is a network mount (the controller's mount of an NFS
 * export). Every operation first takes the mount (`acquire` mounts it if needed and checks it is
 * really the export), and is bounded in time: a hung server makes an operation fail, never hang.
 */
export class LocalFs implements RemoteFs {
  constructor(
    readonly location: string,
    private readonly acquire: () => Promise<ExportHandle>,
    private readonly opTimeoutMs = 30_000,
  ) {}

  /** One operation; after a stale file handle (the export was re-created on the server) once more on a fresh mount. */
  private async run<T>(what: string, signal: AbortSignal | undefined, fn: (abs: (p: string) => string) => Promise<T>, timeoutMs = this.opTimeoutMs): Promise<T> {
    try {
      return await this.attempt(what, signal, fn, timeoutMs);
    } catch (err) {
      if (errnoName(err) !== 'ESTALE') throw err;
      return await this.attempt(what, signal, fn, timeoutMs);
    }
  }

  private async attempt<T>(what: string, signal: AbortSignal | undefined, fn: (abs: (p: string) => string) => Promise<T>, timeoutMs: number): Promise<T> {
    stopIfEnded(signal, what);
    const mount = await this.acquire();
    const abs = (p: string) => {
      const full = path.resolve(mount.root, p);
      if (full !== mount.root && !full.startsWith(`${mount.root}/`)) throw new Error(`refusing to touch ${full}: it is outside ${mount.root}`);
      return full;
    };
    try {
      stopIfEnded(signal, what);
      return await withTimeout(fn(abs), timeoutMs, `${what} on ${this.location}`);
    } catch (err) {
      if (errnoName(err) === 'ESTALE') mount.stale();
      throw err;
    } finally {
      mount.release();
    }
  }

  readFile(p: string, signal?: AbortSignal): Promise<Buffer | undefined> {
    return this.run(`read ${p}`, signal, (abs) => readFile(abs(p)).catch(ifMissing(undefined)));
  }

  writeFileAtomic(p: string, data: Buffer, signal?: AbortSignal): Promise<void> {
    return this.run(`write ${p}`, signal, async (abs) => {
      const tmp = await writeTemp(abs(p), data);
      await rename(tmp, abs(p)).catch(async (err: unknown) => {
        await rm(tmp, { force: true });
        throw err;
      });
    });
  }

  linkExclusive(p: string, data: Buffer, signal?: AbortSignal): Promise<boolean> {
    return this.run(`create ${p}`, signal, async (abs) => {
      const tmp = await writeTemp(abs(p), data);
      try {
        await link(tmp, abs(p));
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        // An NFS LINK retransmitted after its answer was lost also says EEXIST: the file may be ours.
        return (await readFile(abs(p)).catch(ifMissing(undefined)))?.equals(data) ?? false;
      } finally {
        await rm(tmp, { force: true });
      }
    });
  }

  mkdir(p: string, signal?: AbortSignal): Promise<boolean> {
    return this.run(`mkdir ${p}`, signal, (abs) =>
      mkdir(abs(p), { mode: 0o755 }).then(
        () => true,
        (err: NodeJS.ErrnoException) => {
          if (err.code === 'EEXIST') return false;
          throw err;
        },
      ),
    );
  }

  exists(p: string, signal?: AbortSignal): Promise<boolean> {
    return this.run(`stat ${p}`, signal, (abs) => lstat(abs(p)).then(() => true, ifMissing(false)));
  }

  list(p: string, signal?: AbortSignal): Promise<DirEntry[]> {
    return this.run(`list ${p}`, signal, async (abs) => {
      const entries = await readdir(abs(p), { withFileTypes: true }).catch(ifMissing([]));
      return entries.map((e) => ({ name: e.name, isDirectory: e.isDirectory() }));
    });
  }

  /**
   * A file (old records, mostly) is unlinked, which never follows a symlink. A directory of files (a
   * volume's records, an empty or flat data/) is emptied the same way, in-process; a tree goes to GNU
   * rm, not to Node's fs.rm: Node 20 opens each directory by its full path without O_NOFOLLOW and
   * unlinks the entries by full path, so a workload that swaps one of its directories for a symlink
   * mid-walk would have it delete the symlink's target's entries. GNU rm (fts) opens every directory
   * with openat(parent, name, O_NOFOLLOW|O_DIRECTORY) and unlinks with unlinkat(dirfd, name) — seen
   * with strace on coreutils 9.1 — so a swapped directory is never entered. `abs` has confined p to
   * the mount; --one-file-system keeps rm off any other filesystem mounted below it.
   */
  removeTree(p: string, signal?: AbortSignal): Promise<void> {
    return this.run(`remove ${p}`, signal, async (abs) => {
      const st = await lstat(abs(p)).catch(ifMissing(undefined));
      if (!st) return;
      if (!st.isDirectory()) return unlink(abs(p)).catch(ifMissing(undefined));
      if (await removeFlat(abs(p))) return;
      await run('rm', ['-rf', '--one-file-system', '--', abs(p)], { timeoutMs: this.opTimeoutMs, signal });
    });
  }

  removeFile(p: string, signal?: AbortSignal): Promise<void> {
    return this.run(`remove ${p}`, signal, (abs) => unlink(abs(p)).catch(ifMissing(undefined)));
  }

  rename(from: string, to: string, signal?: AbortSignal): Promise<boolean> {
    return this.run(`rename ${from}`, signal, (abs) => rename(abs(from), abs(to)).then(() => true, ifMissing(false)));
  }

  /**
   * cp -a with reflinks where the filesystem has them; on NFS 4.2, cp's copy_file_range lets the server
   * copy. The call's end stops cp (SIGTERM, SIGKILL a second later), and the copy settles only once cp
   * has exited: the volume's lock, held until then, keeps a retry from copying beside it.
   * cp -a is -dR --preserve=all: -d is --no-dereference, so symlinks in the tree are copied as symlinks
   * (readlink, symlinkat), never followed. What strace shows of coreutils 9.1: each entry is lstat'ed
   * (AT_SYMLINK_NOFOLLOW); a file is opened O_RDONLY|O_NOFOLLOW and cp checks with fstat that it is
   * the inode it lstat'ed (else "skipping file …, as it was replaced while being copied"); the copy is
   * created with openat(dst dirfd, O_CREAT|O_EXCL), so nothing is written through a symlink. cp opens
   * a source directory by path without O_NOFOLLOW, though: a directory swapped for a symlink between
   * cp's lstat and its opendir is listed through it. No cp option closes that window.
   */
  copyTree(from: string, to: string, signal?: AbortSignal): Promise<void> {
    return this.run(
      `copy ${from}`,
      signal,
      async (abs) => {
        await mkdir(abs(to), { recursive: true });
        await run('cp', ['-a', '--reflink=auto', '--', `${abs(from)}/.`, abs(to)], { timeoutMs: COPY_TIMEOUT_MS, signal }).catch((err: unknown) => {
          throw stoppedCopy(err, `copy of ${from} on ${this.location}`);
        });
      },
      COPY_TIMEOUT_MS + 5000,
    );
  }

  usage(signal?: AbortSignal): Promise<{ totalBytes: number; availableBytes: number }> {
    return this.run('statfs', signal, async (abs) => {
      const health = await probeMount(abs('.'), Math.min(this.opTimeoutMs, 10_000), signal);
      if (!health.ok) throw Object.assign(new Error(`cannot read the size of ${this.location}: ${health.reason}`), { code: health.kind === 'gone' ? 'ESTALE' : 'EIO' });
      return { totalBytes: health.usage.totalBytes, availableBytes: health.usage.availableBytes };
    });
  }

  modifiedAt(p: string, signal?: AbortSignal): Promise<Date | undefined> {
    return this.run(`stat ${p}`, signal, (abs) => lstat(abs(p)).then((st) => st.mtime, ifMissing(undefined)));
  }
}

/** Writes `data` to a new temporary file beside `target` and syncs it; returns its path. */
async function writeTemp(target: string, data: Buffer): Promise<string> {
  const tmp = `${target}.tmp-${randomBytes(4).toString('hex')}`;
  const handle = await open(tmp, 'wx', 0o644);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  return tmp;
}

/** A cp stopped by its call's end is CANCELLED, one stopped at its time limit DEADLINE_EXCEEDED; other failures pass as they are. */
function stoppedCopy(err: unknown, what: string): unknown {
  if (!(err instanceof CommandError) || err.outcome === 'failed') return err;
  return err.outcome === 'cancelled' ? cancelled(`the call ended during the ${what}; cp was stopped`) : deadline(`${what}: ${err.message}`);
}

/**
 * Removes `dir` if it holds no directory: each entry unlinked (never followed), then rmdir. `dir` is
 * a name of tether's (a volume's or snapshot's directory, or its data/, a pod's mount root that no pod
 * can rename), so listing it lists itself. False, leaving the rest to GNU rm, if it holds a directory
 * or changed meanwhile. Spares a process for the common removals: a volume's records, an unused data/.
 */
async function removeFlat(dir: string): Promise<boolean> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(ifMissing([]));
  if (entries.some((e) => e.isDirectory())) return false;
  try {
    await Promise.all(entries.map((e) => unlink(path.join(dir, e.name)).catch(ifMissing(undefined))));
    await rmdir(dir);
    return true;
  } catch {
    return false; // an entry became a directory, or one was added: rm finishes, and says what is wrong
  }
}

/** A copy is as slow as the data is large: bounded by the RPC's deadline first, by this at the latest. */
const COPY_TIMEOUT_MS = 3_600_000;

const ifMissing =
  <T>(value: T) =>
  (err: NodeJS.ErrnoException): T => {
    if (err.code === 'ENOENT') return value;
    throw err;
  };
