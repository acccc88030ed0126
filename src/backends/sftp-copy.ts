import { posix } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Attributes, Stats } from 'ssh2';
import { copyScratchName } from './backend.js';
import type { SftpRunner } from './sftp-session.js';
import { eachLimited, isDir, replaced, S_IFLNK, S_IFMT, S_IFREG, type SftpPaths } from './sftp-paths.js';

/** How often a copy pins a file that changed between its hard link and the check before it gives up (a busy file changes; a swap is caught). */
const PIN_ATTEMPTS = 3;

/** One copy: where its pins go, and the call's signal. */
interface CopyRun {
  scratch: string;
  signal?: AbortSignal | undefined;
}

/** SftpFs.copyTree: a server-side copy of a tree a workload may be changing meanwhile. */
export class SftpTreeCopy {
  /** The server copies bytes itself (copy-data extension) until it says it cannot. */
  private copyData = true;

  constructor(private readonly paths: SftpPaths) {}

  /**
   * Copies a tree (absolute paths on the server) that its workload may be changing meanwhile (a snapshot of a volume in use), and
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
  async copy(from: string, to: string, signal?: AbortSignal): Promise<void> {
    const root = await this.paths.canonical(from, signal);
    const st = await this.paths.lstat(root, signal);
    if (!st || !isDir(st)) throw new Error(`cannot copy ${root}: it is not a directory`);
    const dst = await this.paths.canonical(to, signal);
    const run: CopyRun = { scratch: posix.join(posix.dirname(root), copyScratchName(randomBytes(4).toString('hex'))), signal };
    await this.paths.session.run(`mkdir ${run.scratch}`, (s, cb) => s.mkdir(run.scratch, { mode: 0o700 }, cb), signal);
    try {
      await this.copyDir(root, dst, run);
    } finally {
      await this.paths.removeAbs(run.scratch, true).catch(() => undefined); // best effort, even after the call ended
    }
  }

  /** Copies the directory `src` — or, if it is not one any more, what it is now; nothing if it is gone. */
  private async copyDir(src: string, dst: string, run: CopyRun): Promise<void> {
    const st = await this.paths.lstat(src, run.signal);
    if (!st) return;
    if (!isDir(st)) return this.copyPinned(src, dst, run);
    await this.makeDir(dst, run.signal);
    const entries = await this.paths.listChecked(src, run.signal);
    await eachLimited(entries, (e) => {
      const s = posix.join(src, e.filename);
      const d = posix.join(dst, e.filename);
      return isDir(e.attrs) ? this.copyDir(s, d, run) : this.copyPinned(s, d, run);
    });
    await this.paths.session.run(`setstat ${dst}`, (s, cb) => s.setstat(dst, { mode: st.mode & 0o7777, atime: st.atime, mtime: st.mtime }, cb), run.signal);
  }

  /** Copies the file or symlink `src` through a hard link of its own (see copyTree); sockets, fifos and devices carry no data and are skipped. */
  private async copyPinned(src: string, dst: string, run: CopyRun): Promise<void> {
    for (let attempt = 1; attempt <= PIN_ATTEMPTS; attempt++) {
      const pin = posix.join(run.scratch, randomBytes(8).toString('hex'));
      try {
        await this.paths.session.run(`link ${src}`, (s, cb) => s.ext_openssh_hardlink(src, pin, cb), run.signal);
      } catch (err) {
        return this.notPinned(src, err, run.signal);
      }
      try {
        const [pinned, now, dir] = await Promise.all([this.paths.session.stat(pin, run.signal), this.paths.lstat(src, run.signal), this.paths.realpath(posix.dirname(src), run.signal)]);
        if (!now) return; // removed since it was linked
        if (dir === posix.dirname(src) && sameNode(pinned, now)) return await this.copyAs(pin, pinned, dst, run.signal);
      } finally {
        await this.paths.unlink(pin);
      }
    }
    throw replaced(src);
  }

  /** After a failed hard link of `src`: skipped if it is gone; ABORTED if it became a directory since it was listed; else the server refused. */
  private async notPinned(src: string, err: unknown, signal?: AbortSignal): Promise<void> {
    const now = await this.paths.lstat(src, signal);
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
    const existing = await this.paths.lstat(dst, signal);
    if (existing && (existing.mode & S_IFMT) === S_IFREG && existing.size === attrs.size && existing.mtime === attrs.mtime) return; // copied by an earlier try
    if (existing) await this.paths.removeAbs(dst, isDir(existing), signal);
    const session = this.paths.session.pick(); // the handles are this session's
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
    const target = await this.paths.readlink(pin, signal);
    const existing = await this.paths.lstat(dst, signal);
    if (existing && (existing.mode & S_IFMT) === S_IFLNK && (await this.paths.readlink(dst, signal)) === target) return; // copied by an earlier try
    if (existing) await this.paths.removeAbs(dst, isDir(existing), signal);
    await this.paths.session.run(`symlink ${dst}`, (s, cb) => s.symlink(target, dst, cb), signal);
  }

  /** Makes the directory `dst` (0700 until copyDir sets its mode), replacing anything else an earlier try left there. */
  private async makeDir(dst: string, signal?: AbortSignal): Promise<void> {
    const existing = await this.paths.lstat(dst, signal);
    if (existing && isDir(existing)) return;
    if (existing) await this.paths.removeAbs(dst, false, signal);
    await this.paths.session.run(`mkdir ${dst}`, (s, cb) => s.mkdir(dst, { mode: 0o700 }, cb), signal).catch(async (err: unknown) => {
      const made = await this.paths.lstat(dst, signal); // by another controller copying the same tree
      if (!made || !isDir(made)) throw err;
    });
  }
}

/** The same file by all SFTP can tell: type and permissions, owner, size and mtime (SFTP has no inode numbers). */
const sameNode = (a: Attributes, b: Attributes) => a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && a.size === b.size && a.mtime === b.mtime;
