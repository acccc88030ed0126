import { posix } from 'node:path';
import type { Attributes, FileEntryWithStats, Stats } from 'ssh2';
import { aborted } from '../csi/errors.js';
import { isMissing, type SftpCall, type SftpRunner } from './sftp-session.js';

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
const TREE_CONCURRENCY = 8;

/**
 * What SFTP offers on absolute paths of the server, as tether's file operations need it: listings,
 * lstat/realpath/readlink, and a removal that never follows a symlink. SFTP has no O_NOFOLLOW: the
 * server resolves every path it is given, so a directory is listed and then checked to be itself
 * (listChecked) before anything below it is touched.
 */
export class SftpPaths {
  constructor(readonly session: SftpRunner) {}

  /**
   * The entries of the directory `p`, without "." and "..": OPENDIR, then READDIRs two at a time, so
   * that a small directory (a volume's) is read in one more round trip; the CLOSE is not waited for.
   */
  async readDir(p: string, signal?: AbortSignal): Promise<FileEntryWithStats[]> {
    const session = this.session.pick(); // the handle is this session's
    const handle = await session.run<Buffer>(`opendir ${p}`, (s, cb) => s.opendir(p, cb), signal);
    const entries: FileEntryWithStats[] = [];
    try {
      for (let end = false; !end; ) {
        const readdir: SftpCall<FileEntryWithStats[] | undefined> = (s, cb) => s.readdir(handle, (err: Error | undefined, list: FileEntryWithStats[]) => (isEnd(err) ? cb(undefined, undefined) : cb(err, list)));
        for (const batch of await session.runInOrder(`readdir ${p}`, [readdir, readdir], signal)) {
          if (batch.status === 'rejected') throw batch.reason;
          if (batch.value === undefined) end = true;
          else entries.push(...(batch.value as FileEntryWithStats[]));
        }
      }
    } finally {
      void session.run(`close ${p}`, (s, cb) => s.close(handle, cb)).catch(() => undefined); // nothing waits for it
    }
    return entries.filter((e) => e.filename !== '.' && e.filename !== '..');
  }

  /**
   * The entries of the directory `dir` (canonical), without "." and "..". SFTP's opendir follows a
   * symlink, so a directory swapped for one would list another directory: after the listing, `dir`
   * must still be a directory that resolves to itself, or the call fails with ABORTED.
   */
  async listChecked(dir: string, signal?: AbortSignal): Promise<FileEntryWithStats[]> {
    const entries = await this.readDir(dir, signal);
    const [after, real] = await Promise.all([this.lstat(dir, signal), this.realpath(dir, signal)]);
    if (!after || !isDir(after) || real !== dir) throw replaced(dir);
    return entries;
  }

  /** Removes `p`; a directory with all below it, never following a symlink (see listChecked). */
  async removeAbs(p: string, isDirectory: boolean, signal?: AbortSignal): Promise<void> {
    if (!isDirectory) {
      await this.session.run(`unlink ${p}`, (s, cb) => s.unlink(p, cb), signal).catch(ignoreMissing);
      return;
    }
    const entries = await this.listChecked(p, signal).catch((err: unknown) => (isMissing(err) ? [] : Promise.reject(err)));
    await eachLimited(entries, (e) => this.removeAbs(posix.join(p, e.filename), isDir(e.attrs), signal));
    await this.session.run(`rmdir ${p}`, (s, cb) => s.rmdir(p, cb), signal).catch(ignoreMissing);
  }

  /** Removes a file of tether's own (a temporary file), even after the call ended; errors are ignored. */
  async unlink(p: string): Promise<void> {
    await this.session.run(`unlink ${p}`, (s, cb) => s.unlink(p, cb)).catch(() => undefined);
  }

  lstat(p: string, signal?: AbortSignal): Promise<Stats | undefined> {
    return this.session.stat(p, signal).catch((err: unknown) => (isMissing(err) ? undefined : Promise.reject(err)));
  }

  /** The server's canonical path of `p`, every symlink resolved. */
  realpath(p: string, signal?: AbortSignal): Promise<string> {
    return this.session.run<string>(`realpath ${p}`, (s, cb) => s.realpath(p, cb), signal);
  }

  readlink(p: string, signal?: AbortSignal): Promise<string> {
    return this.session.run<string>(`readlink ${p}`, (s, cb) => s.readlink(p, cb), signal);
  }

  /**
   * `p` with its directories canonical and its last name kept as it is: what realpath gives back for
   * every directory below it, so that listChecked can compare (the base may lie behind a symlink of the admin's).
   */
  async canonical(p: string, signal?: AbortSignal): Promise<string> {
    return posix.join(await this.realpath(posix.dirname(p), signal), posix.basename(p));
  }
}

/** SFTP's EOF status: a READDIR past the last entry (draft-ietf-secsh-filexfer-02). */
const isEnd = (err: unknown) => (err as { code?: unknown } | undefined)?.code === 1;

export const isDir = (attrs: Attributes) => (attrs.mode & S_IFMT) === S_IFDIR;

export const replaced = (path: string) =>
  aborted(`${path} was replaced while tether copied or removed it (swapped for a symlink or another file, or changing too fast to tell): nothing was read or written through it; retry`);

function ignoreMissing(err: unknown): void {
  if (!isMissing(err)) throw err;
}

/** Runs `fn` over `items` with at most TREE_CONCURRENCY at once (the session pipelines them). */
export async function eachLimited<T>(items: T[], fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(TREE_CONCURRENCY, items.length) }, worker));
}

