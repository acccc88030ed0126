import { posix } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Attributes, FileEntryWithStats, Stats } from 'ssh2';
import { copyScratchName, type DirEntry, type RemoteFs } from './backend.js';
import { aborted } from '../csi/errors.js';
import { isMissing, type SftpCall, type SftpRunner } from './sftp-session.js';

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const TREE_CONCURRENCY = 8;
/** What a READ asks for when the size is not known: records are a few KiB. */
const READ_CHUNK = 64 * 1024;
/** How often copyTree pins a file that changed between its hard link and the check before it gives up (a busy file changes; a swap is caught). */
const PIN_ATTEMPTS = 3;

/** RemoteFs over SFTP (one session or a pool), rooted at `base` on the server. */
export class SftpFs implements RemoteFs {
  readonly location: string;
  private copyData = true;

  constructor(
    private readonly session: SftpRunner,
    private readonly base: string,
  ) {
    this.location = `${session.describe()}:${base}`;
  }

  private abs(path: string): string {
    const full = posix.join(this.base, path);
    if (full !== this.base && !full.startsWith(`${this.base.replace(/\/$/, '')}/`)) {
      throw new Error(`refusing to touch ${full}: it is outside the backend base ${this.base}`);
    }
    return full;
  }

  async readFile(path: string, signal?: AbortSignal, size?: number): Promise<Buffer | undefined> {
    const p = this.abs(path);
    const session = this.session.pick(); // the handle is this session's
    const handle = await session.run<Buffer>(`open ${p}`, (s, cb) => s.open(p, 'r', cb), signal).catch((err: unknown) => {
      if (isMissing(err)) return undefined;
      throw err;
    });
    if (!handle) return undefined;
    if (size !== undefined) {
      // The size is known (a record listed a moment ago): one byte more is asked for, and the file closed in the same round trip.
      const buf = Buffer.allocUnsafe(size + 1);
      const [read] = await session.runInOrder(`read ${p}`, [(s, cb) => s.read(handle, buf, 0, size + 1, 0, cb), (s, cb) => s.close(handle, cb)], signal);
      if (read!.status === 'rejected') throw read!.reason;
      if (read!.value === size) return buf.subarray(0, size);
      return this.readFile(path, signal); // it is not the size listed: read it to its end
    }
    try {
      const chunks: Buffer[] = [];
      for (let pos = 0; ; ) {
        const buf = Buffer.allocUnsafe(READ_CHUNK);
        const n = await session.run<number>(`read ${p}`, (s, cb) => s.read(handle, buf, 0, READ_CHUNK, pos, cb), signal);
        if (n === 0) return Buffer.concat(chunks, pos);
        chunks.push(buf.subarray(0, n));
        pos += n;
      }
    } finally {
      void session.run(`close ${p}`, (s, cb) => s.close(handle, cb)).catch(() => undefined); // nothing waits for it
    }
  }

  async writeFileAtomic(path: string, data: Buffer, signal?: AbortSignal): Promise<void> {
    const p = this.abs(path);
    const tmp = await this.writeTemp(p, data, signal);
    await this.session.run(`rename ${tmp}`, (s, cb) => s.ext_openssh_rename(tmp, p, cb), signal).catch(async (err: unknown) => {
      await this.unlink(tmp);
      throw err;
    });
  }

  async linkExclusive(path: string, data: Buffer, signal?: AbortSignal): Promise<boolean> {
    const p = this.abs(path);
    const tmp = await this.writeTemp(p, data, signal);
    // The link, then the temporary file's removal, in one round trip (the removal is sent even after the call ended).
    const [linked] = await this.session.pick().runInOrder(`link ${p}`, [(s, cb) => s.ext_openssh_hardlink(tmp, p, cb), (s, cb) => s.unlink(tmp, cb)]).catch(async (err: unknown) => {
      await this.unlink(tmp);
      throw err;
    });
    if (linked!.status === 'fulfilled') return true;
    // SFTP says only "failure" when the name is taken: look. A link whose answer was lost is ours.
    const there = await this.readFile(path);
    if (there === undefined) throw linked!.reason;
    return there.equals(data);
  }

  async mkdir(path: string, signal?: AbortSignal): Promise<boolean> {
    const p = this.abs(path);
    try {
      await this.session.run(`mkdir ${p}`, (s, cb) => s.mkdir(p, { mode: 0o755 }, cb), signal);
      return true;
    } catch (err) {
      const st = await this.session.stat(p, signal).catch(() => undefined);
      if (st && (st.mode & S_IFMT) === S_IFDIR) return false;
      throw err;
    }
  }

  async exists(path: string, signal?: AbortSignal): Promise<boolean> {
    return this.lstat(this.abs(path), signal).then((st) => st !== undefined);
  }

  async list(path: string, signal?: AbortSignal): Promise<DirEntry[]> {
    const p = this.abs(path);
    const entries = await this.readDir(p, signal).catch((err: unknown) => {
      if (isMissing(err)) return [];
      throw err;
    });
    return entries.map((e) => ({ name: e.filename, isDirectory: (e.attrs.mode & S_IFMT) === S_IFDIR, size: e.attrs.size }));
  }

  /**
   * The entries of the directory `p`, without "." and "..": OPENDIR, then READDIRs two at a time, so
   * that a small directory (a volume's) is read in one more round trip; the CLOSE is not waited for.
   */
  private async readDir(p: string, signal?: AbortSignal): Promise<FileEntryWithStats[]> {
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

  /** An empty directory goes with one RMDIR (which never follows a symlink); anything else by the careful walk of removeAbs. */
  async removeTree(path: string, signal?: AbortSignal): Promise<void> {
    const p = this.abs(path);
    if (await this.removeEmpty(p, signal)) return;
    const st = await this.lstat(p, signal);
    if (!st) return;
    if (!isDir(st)) return this.removeAbs(p, false, signal);
    await this.removeAbs(await this.canonical(p, signal), true, signal);
  }

  async removeFile(path: string, signal?: AbortSignal): Promise<void> {
    await this.removeAbs(this.abs(path), false, signal);
  }

  /** RMDIR `p`: true if it is gone; false if it was not an empty directory. */
  private removeEmpty(p: string, signal?: AbortSignal): Promise<boolean> {
    return this.session.run(`rmdir ${p}`, (s, cb) => s.rmdir(p, cb), signal).then(
      () => true,
      (err: unknown) => isMissing(err),
    );
  }

  /** Removes `p`; a directory with all below it, never following a symlink (see listChecked). */
  private async removeAbs(p: string, isDirectory: boolean, signal?: AbortSignal): Promise<void> {
    if (!isDirectory) {
      await this.session.run(`unlink ${p}`, (s, cb) => s.unlink(p, cb), signal).catch(ignoreMissing);
      return;
    }
    const entries = await this.listChecked(p, signal).catch((err: unknown) => (isMissing(err) ? [] : Promise.reject(err)));
    await eachLimited(entries, (e) => this.removeAbs(posix.join(p, e.filename), isDir(e.attrs), signal));
    await this.session.run(`rmdir ${p}`, (s, cb) => s.rmdir(p, cb), signal).catch(ignoreMissing);
  }

  async rename(from: string, to: string, signal?: AbortSignal): Promise<boolean> {
    const a = this.abs(from);
    const b = this.abs(to);
    return this.session.run(`rename ${a}`, (s, cb) => s.ext_openssh_rename(a, b, cb), signal).then(
      () => true,
      (err: unknown) => (isMissing(err) ? false : Promise.reject(err)),
    );
  }

  /**
   * Copies a tree that its workload may be changing meanwhile (a snapshot of a volume in use), and
   * never reads or writes through one of its symlinks — which takes care: SFTP has no O_NOFOLLOW, and
   * the server resolves every path it is given, a symlink at its end or among its directories, with
   * the SSH user's rights.
   * - A workload's path is never opened. Each file or symlink is first hard-linked into a scratch
   *   directory of tether's beside the source (a hard link is made to the symlink itself, never to its
   *   target), and what that pinned name is, which nobody else can change, decides how it is copied: a
   *   regular file by its content, a symlink as a symlink. The pin is checked against the source after
   *   the fact: the source's directory must still resolve to itself (realpath) and the source must
   *   still show the pin's type, mode, owner, size and mtime; otherwise it is pinned again, and after
   *   PIN_ATTEMPTS the copy fails with ABORTED. A directory is listed, then checked the same way.
   * - What is left: a workload that swaps one of its directories for a symlink to a file of the same
   *   filesystem exactly while it is linked, swaps it back before the check and has faked that file's
   *   mode, owner, size and mtime to the second beside it. SFTP has no inode numbers to close that.
   * - The destination (a new volume or snapshot) is tether's, but an earlier try may have copied a
   *   symlink to where a file or directory goes now: whatever is in the way is removed first, and files
   *   are created with O_EXCL, which fails on a symlink instead of writing through it.
   */
  async copyTree(from: string, to: string, signal?: AbortSignal): Promise<void> {
    const root = await this.canonical(this.abs(from), signal);
    const st = await this.lstat(root, signal);
    if (!st || !isDir(st)) throw new Error(`cannot copy ${root}: it is not a directory`);
    const dst = await this.canonical(this.abs(to), signal);
    const run: CopyRun = { scratch: posix.join(posix.dirname(root), copyScratchName(randomBytes(4).toString('hex'))), signal };
    await this.session.run(`mkdir ${run.scratch}`, (s, cb) => s.mkdir(run.scratch, { mode: 0o700 }, cb), signal);
    try {
      await this.copyDir(root, dst, run);
    } finally {
      await this.removeAbs(run.scratch, true).catch(() => undefined); // best effort, even after the call ended
    }
  }

  /** Copies the directory `src` — or, if it is not one any more, what it is now; nothing if it is gone. */
  private async copyDir(src: string, dst: string, run: CopyRun): Promise<void> {
    const st = await this.lstat(src, run.signal);
    if (!st) return;
    if (!isDir(st)) return this.copyPinned(src, dst, run);
    await this.makeDir(dst, run.signal);
    const entries = await this.listChecked(src, run.signal);
    await eachLimited(entries, (e) => {
      const s = posix.join(src, e.filename);
      const d = posix.join(dst, e.filename);
      return isDir(e.attrs) ? this.copyDir(s, d, run) : this.copyPinned(s, d, run);
    });
    await this.session.run(`setstat ${dst}`, (s, cb) => s.setstat(dst, { mode: st.mode & 0o7777, atime: st.atime, mtime: st.mtime }, cb), run.signal);
  }

  /**
   * The entries of the directory `dir` (canonical), without "." and "..". SFTP's opendir follows a
   * symlink, so a directory swapped for one would list another directory: after the listing, `dir`
   * must still be a directory that resolves to itself, or the call fails with ABORTED.
   */
  private async listChecked(dir: string, signal?: AbortSignal): Promise<FileEntryWithStats[]> {
    const entries = await this.readDir(dir, signal);
    const [after, real] = await Promise.all([this.lstat(dir, signal), this.realpath(dir, signal)]);
    if (!after || !isDir(after) || real !== dir) throw replaced(dir);
    return entries;
  }

  /** Copies the file or symlink `src` through a hard link of its own (see copyTree); sockets, fifos and devices carry no data and are skipped. */
  private async copyPinned(src: string, dst: string, run: CopyRun): Promise<void> {
    for (let attempt = 1; attempt <= PIN_ATTEMPTS; attempt++) {
      const pin = posix.join(run.scratch, randomBytes(8).toString('hex'));
      try {
        await this.session.run(`link ${src}`, (s, cb) => s.ext_openssh_hardlink(src, pin, cb), run.signal);
      } catch (err) {
        return this.notPinned(src, err, run.signal);
      }
      try {
        const [pinned, now, dir] = await Promise.all([this.session.stat(pin, run.signal), this.lstat(src, run.signal), this.realpath(posix.dirname(src), run.signal)]);
        if (!now) return; // removed since it was linked
        if (dir === posix.dirname(src) && sameNode(pinned, now)) return await this.copyAs(pin, pinned, dst, run.signal);
      } finally {
        await this.unlink(pin);
      }
    }
    throw replaced(src);
  }

  /** After a failed hard link of `src`: skipped if it is gone; ABORTED if it became a directory since it was listed; else the server refused. */
  private async notPinned(src: string, err: unknown, signal?: AbortSignal): Promise<void> {
    const now = await this.lstat(src, signal);
    if (!now) return;
    if (isDir(now)) throw replaced(src);
    throw new Error(`cannot copy ${src}: the server refused a hard link to it (${(err as Error).message}); tether reads a workload's file only through a hard link of its own, which never follows a symlink`);
  }

  private async copyAs(pin: string, pinned: Stats, dst: string, signal?: AbortSignal): Promise<void> {
    const type = pinned.mode & S_IFMT;
    if (type === S_IFREG) await this.copyFile(pin, dst, pinned, signal);
    else if (type === S_IFLNK) await this.copySymlink(pin, dst, signal);
  }

  /** Copies the regular file `pin` (a name only tether uses: opening it follows nothing) to `dst`, created with O_EXCL. */
  private async copyFile(pin: string, dst: string, attrs: Stats, signal?: AbortSignal): Promise<void> {
    const existing = await this.lstat(dst, signal);
    if (existing && (existing.mode & S_IFMT) === S_IFREG && existing.size === attrs.size && existing.mtime === attrs.mtime) return; // copied by an earlier try
    if (existing) await this.removeAbs(dst, isDir(existing), signal);
    const session = this.session.pick(); // the handles are this session's
    const from = await session.run<Buffer>(`open ${pin}`, (s, cb) => s.open(pin, 'r', cb), signal);
    try {
      const to = await session.run<Buffer>(`open ${dst}`, (s, cb) => s.open(dst, 'wx', 0o600, cb), signal);
      try {
        await this.copyContent(session, from, to, attrs.size, dst, signal);
        // Owner first: a chown clears setuid and setgid bits, which the mode then sets again.
        await session.run(`chown ${dst}`, (s, cb) => s.fchown(to, attrs.uid, attrs.gid, cb), signal).catch(() => undefined); // only root may
        await session.run(`setstat ${dst}`, (s, cb) => s.fsetstat(to, { mode: attrs.mode & 0o7777, atime: attrs.atime, mtime: attrs.mtime }, cb), signal);
      } finally {
        await session.run(`close ${dst}`, (s, cb) => s.close(to, cb));
      }
    } finally {
      await session.run(`close ${pin}`, (s, cb) => s.close(from, cb));
    }
  }

  /** The server copies the bytes itself (copy-data extension, OpenSSH ≥ 9.0); otherwise they travel through here. */
  private async copyContent(session: SftpRunner, from: Buffer, to: Buffer, size: number, what: string, signal?: AbortSignal): Promise<void> {
    if (this.copyData) {
      try {
        await session.run(`copy-data ${what}`, (s, cb) => s.ext_copy_data(from, 0, 0, to, 0, cb), signal);
        return;
      } catch (err) {
        if (!/does not support/i.test((err as Error).message)) throw err;
        this.copyData = false;
      }
    }
    const chunk = 256 * 1024;
    const buf = Buffer.alloc(chunk);
    for (let pos = 0; pos < size; pos += chunk) {
      const n = await session.run<number>(`read ${what}`, (s, cb) => s.read(from, buf, 0, Math.min(chunk, size - pos), pos, cb), signal);
      if (!n) break;
      await session.run(`write ${what}`, (s, cb) => s.write(to, buf, 0, n, pos, cb), signal);
    }
  }

  /** Makes a symlink at `dst` with the text of the symlink `pin` (readlink and symlink never follow one). */
  private async copySymlink(pin: string, dst: string, signal?: AbortSignal): Promise<void> {
    const target = await this.readlink(pin, signal);
    const existing = await this.lstat(dst, signal);
    if (existing && (existing.mode & S_IFMT) === S_IFLNK && (await this.readlink(dst, signal)) === target) return; // copied by an earlier try
    if (existing) await this.removeAbs(dst, isDir(existing), signal);
    await this.session.run(`symlink ${dst}`, (s, cb) => s.symlink(target, dst, cb), signal);
  }

  /** Makes the directory `dst` (0700 until copyDir sets its mode), replacing anything else an earlier try left there. */
  private async makeDir(dst: string, signal?: AbortSignal): Promise<void> {
    const existing = await this.lstat(dst, signal);
    if (existing && isDir(existing)) return;
    if (existing) await this.removeAbs(dst, false, signal);
    await this.session.run(`mkdir ${dst}`, (s, cb) => s.mkdir(dst, { mode: 0o700 }, cb), signal).catch(async (err: unknown) => {
      const made = await this.lstat(dst, signal); // by another controller copying the same tree
      if (!made || !isDir(made)) throw err;
    });
  }

  async usage(signal?: AbortSignal): Promise<{ totalBytes: number; availableBytes: number }> {
    const v = await this.session.run<{ frsize: number; blocks: number; bavail: number }>(`statvfs ${this.base}`, (s, cb) => s.ext_openssh_statvfs(this.base, cb), signal);
    return { totalBytes: Number(v.blocks) * Number(v.frsize), availableBytes: Number(v.bavail) * Number(v.frsize) };
  }

  async modifiedAt(path: string, signal?: AbortSignal): Promise<Date | undefined> {
    const st = await this.lstat(this.abs(path), signal);
    return st && new Date(st.mtime * 1000);
  }

  close(): Promise<void> {
    return this.session.close();
  }

  /** Writes `data` to a new temporary file beside `p` (absolute) and syncs it; returns its path. Closed and removed on failure. */
  private async writeTemp(p: string, data: Buffer, signal?: AbortSignal): Promise<string> {
    const tmp = `${p}.tmp-${randomBytes(4).toString('hex')}`;
    const session = this.session.pick(); // the handle is this session's
    const handle = await session.run<Buffer>(`open ${tmp}`, (s, cb) => s.open(tmp, 'wx', 0o644, cb), signal);
    // Write, fsync and close in one round trip: the server takes them in order, and the close is sent whatever came before.
    const done = await session
      .runInOrder(`write ${tmp}`, [(s, cb) => s.write(handle, data, 0, data.length, 0, cb), (s, cb) => s.ext_openssh_fsync(handle, cb), (s, cb) => s.close(handle, cb)], signal)
      .catch((err: unknown): PromiseSettledResult<unknown>[] => [{ status: 'rejected', reason: err }]);
    const failed = done.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await this.unlink(tmp);
      throw failed.reason;
    }
    return tmp;
  }

  /** Removes a file of tether's own (a temporary file), even after the call ended; errors are ignored. */
  private async unlink(p: string): Promise<void> {
    await this.session.run(`unlink ${p}`, (s, cb) => s.unlink(p, cb)).catch(() => undefined);
  }

  private lstat(p: string, signal?: AbortSignal): Promise<Stats | undefined> {
    return this.session.stat(p, signal).catch((err: unknown) => (isMissing(err) ? undefined : Promise.reject(err)));
  }

  /** The server's canonical path of `p`, every symlink resolved. */
  private realpath(p: string, signal?: AbortSignal): Promise<string> {
    return this.session.run<string>(`realpath ${p}`, (s, cb) => s.realpath(p, cb), signal);
  }

  private readlink(p: string, signal?: AbortSignal): Promise<string> {
    return this.session.run<string>(`readlink ${p}`, (s, cb) => s.readlink(p, cb), signal);
  }

  /**
   * `p` with its directories canonical and its last name kept as it is: what realpath gives back for
   * every directory below it, so that listChecked can compare (the base may lie behind a symlink of the admin's).
   */
  private async canonical(p: string, signal?: AbortSignal): Promise<string> {
    return posix.join(await this.realpath(posix.dirname(p), signal), posix.basename(p));
  }
}

/** One copyTree: where its pins go, and the call's signal. */
interface CopyRun {
  scratch: string;
  signal?: AbortSignal | undefined;
}

/** SFTP's EOF status: a READDIR past the last entry (draft-ietf-secsh-filexfer-02). */
const isEnd = (err: unknown) => (err as { code?: unknown } | undefined)?.code === 1;

const isDir = (attrs: Attributes) => (attrs.mode & S_IFMT) === S_IFDIR;

/** The same file by all SFTP can tell: type and permissions, owner, size and mtime (SFTP has no inode numbers). */
const sameNode = (a: Attributes, b: Attributes) => a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && a.size === b.size && a.mtime === b.mtime;

const replaced = (path: string) =>
  aborted(`${path} was replaced while tether copied or removed it (swapped for a symlink or another file, or changing too fast to tell): nothing was read or written through it; retry`);

function ignoreMissing(err: unknown): void {
  if (!isMissing(err)) throw err;
}

/** Runs `fn` over `items` with at most TREE_CONCURRENCY at once (the session pipelines them). */
async function eachLimited<T>(items: T[], fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(TREE_CONCURRENCY, items.length) }, worker));
}
