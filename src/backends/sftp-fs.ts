import { posix } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { DirEntry, RemoteFs } from './backend.js';
import { SftpTreeCopy } from './sftp-copy.js';
import { isDir, SftpPaths } from './sftp-paths.js';
import { isMissing, type SftpRunner } from './sftp-session.js';

/** What a READ asks for when the size is not known: records are a few KiB. */
const READ_CHUNK = 64 * 1024;

/** RemoteFs over SFTP (one session or a pool), rooted at `base` on the server. */
export class SftpFs implements RemoteFs {
  readonly location: string;
  private readonly paths: SftpPaths;
  private readonly copier: SftpTreeCopy;

  constructor(
    private readonly session: SftpRunner,
    private readonly base: string,
  ) {
    this.location = `${session.describe()}:${base}`;
    this.paths = new SftpPaths(session);
    this.copier = new SftpTreeCopy(this.paths);
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
      await this.paths.unlink(tmp);
      throw err;
    });
  }

  async linkExclusive(path: string, data: Buffer, signal?: AbortSignal): Promise<boolean> {
    const p = this.abs(path);
    const tmp = await this.writeTemp(p, data, signal);
    // The link, then the temporary file's removal, in one round trip (the removal is sent even after the call ended).
    const [linked] = await this.session.pick().runInOrder(`link ${p}`, [(s, cb) => s.ext_openssh_hardlink(tmp, p, cb), (s, cb) => s.unlink(tmp, cb)]).catch(async (err: unknown) => {
      await this.paths.unlink(tmp);
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
      if (st && isDir(st)) return false;
      throw err;
    }
  }

  async exists(path: string, signal?: AbortSignal): Promise<boolean> {
    return this.paths.lstat(this.abs(path), signal).then((st) => st !== undefined);
  }

  async list(path: string, signal?: AbortSignal): Promise<DirEntry[]> {
    const p = this.abs(path);
    const entries = await this.paths.readDir(p, signal).catch((err: unknown) => {
      if (isMissing(err)) return [];
      throw err;
    });
    return entries.map((e) => ({ name: e.filename, isDirectory: isDir(e.attrs), size: e.attrs.size }));
  }

  /** An empty directory goes with one RMDIR (which never follows a symlink); anything else by the careful walk of removeAbs. */
  async removeTree(path: string, signal?: AbortSignal): Promise<void> {
    const p = this.abs(path);
    if (await this.removeEmpty(p, signal)) return;
    const st = await this.paths.lstat(p, signal);
    if (!st) return;
    if (!isDir(st)) return this.paths.removeAbs(p, false, signal);
    await this.paths.removeAbs(await this.paths.canonical(p, signal), true, signal);
  }

  async removeFile(path: string, signal?: AbortSignal): Promise<void> {
    await this.paths.removeAbs(this.abs(path), false, signal);
  }

  /** RMDIR `p`: true if it is gone; false if it was not an empty directory. */
  private removeEmpty(p: string, signal?: AbortSignal): Promise<boolean> {
    return this.session.run(`rmdir ${p}`, (s, cb) => s.rmdir(p, cb), signal).then(
      () => true,
      (err: unknown) => isMissing(err),
    );
  }

  async rename(from: string, to: string, signal?: AbortSignal): Promise<boolean> {
    const a = this.abs(from);
    const b = this.abs(to);
    return this.session.run(`rename ${a}`, (s, cb) => s.ext_openssh_rename(a, b, cb), signal).then(
      () => true,
      (err: unknown) => (isMissing(err) ? false : Promise.reject(err)),
    );
  }

  /** See SftpTreeCopy: a copy that never reads or writes through a workload's symlink. */
  copyTree(from: string, to: string, signal?: AbortSignal): Promise<void> {
    return this.copier.copy(this.abs(from), this.abs(to), signal);
  }

  async usage(signal?: AbortSignal): Promise<{ totalBytes: number; availableBytes: number }> {
    const v = await this.session.run<{ frsize: number; blocks: number; bavail: number }>(`statvfs ${this.base}`, (s, cb) => s.ext_openssh_statvfs(this.base, cb), signal);
    return { totalBytes: Number(v.blocks) * Number(v.frsize), availableBytes: Number(v.bavail) * Number(v.frsize) };
  }

  async modifiedAt(path: string, signal?: AbortSignal): Promise<Date | undefined> {
    const st = await this.paths.lstat(this.abs(path), signal);
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
      await this.paths.unlink(tmp);
      throw failed.reason;
    }
    return tmp;
  }
}
