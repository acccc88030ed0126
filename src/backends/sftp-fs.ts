import { posix } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Stats } from 'ssh2';
import type { DirEntry, RemoteFs } from './backend.js';
import { isMissing, type SftpSession } from './sftp-session.js';

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const TREE_CONCURRENCY = 8;

/** RemoteFs over one SFTP session, rooted at `base` on the server. */
export class SftpFs implements RemoteFs {
  readonly location: string;
  private copyData = true;

  constructor(
    private readonly session: SftpSession,
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

  async readFile(path: string, signal?: AbortSignal): Promise<Buffer | undefined> {
    const p = this.abs(path);
    return this.session.run<Buffer>(`read ${p}`, (s, cb) => s.readFile(p, cb), signal).catch((err: unknown) => {
      if (isMissing(err)) return undefined;
      throw err;
    });
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
    try {
      await this.session.run(`link ${p}`, (s, cb) => s.ext_openssh_hardlink(tmp, p, cb), signal);
      return true;
    } catch (err) {
      // SFTP says only "failure" when the name is taken: look. A link whose answer was lost is ours.
      const there = await this.readFile(path);
      if (there === undefined) throw err;
      return there.equals(data);
    } finally {
      await this.unlink(tmp);
    }
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
    const entries = await this.session.readdir(p, signal).catch((err: unknown) => {
      if (isMissing(err)) return [];
      throw err;
    });
    return entries
      .filter((e) => e.filename !== '.' && e.filename !== '..')
      .map((e) => ({ name: e.filename, isDirectory: (e.attrs.mode & S_IFMT) === S_IFDIR }));
  }

  async removeTree(path: string, signal?: AbortSignal): Promise<void> {
    const p = this.abs(path);
    const st = await this.lstat(p, signal);
    if (st) await this.removeAbs(p, (st.mode & S_IFMT) === S_IFDIR, signal);
  }

  private async removeAbs(p: string, isDir: boolean, signal?: AbortSignal): Promise<void> {
    if (!isDir) {
      await this.session.run(`unlink ${p}`, (s, cb) => s.unlink(p, cb), signal).catch(ignoreMissing);
      return;
    }
    const entries = await this.session.readdir(p, signal).catch((err: unknown) => (isMissing(err) ? [] : Promise.reject(err)));
    await eachLimited(
      entries.filter((e) => e.filename !== '.' && e.filename !== '..'),
      (e) => this.removeAbs(posix.join(p, e.filename), (e.attrs.mode & S_IFMT) === S_IFDIR, signal),
    );
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

  async copyTree(from: string, to: string, signal?: AbortSignal): Promise<void> {
    await this.copyDir(this.abs(from), this.abs(to), signal);
  }

  private async copyDir(src: string, dst: string, signal?: AbortSignal): Promise<void> {
    const st = await this.session.stat(src, signal);
    await this.session.run(`mkdir ${dst}`, (s, cb) => s.mkdir(dst, { mode: st.mode & 0o7777 }, cb), signal).catch(async (err: unknown) => {
      if (!(await this.lstat(dst, signal))) throw err;
    });
    const entries = (await this.session.readdir(src, signal)).filter((e) => e.filename !== '.' && e.filename !== '..');
    await eachLimited(entries, async (e) => {
      const s = posix.join(src, e.filename);
      const d = posix.join(dst, e.filename);
      const type = e.attrs.mode & S_IFMT;
      if (type === S_IFDIR) await this.copyDir(s, d, signal);
      else if (type === S_IFREG) await this.copyFile(s, d, e.attrs, signal);
      else if (type === S_IFLNK) await this.copySymlink(s, d, signal);
      // sockets, fifos and devices are not copied: they carry no data
    });
    await this.session.run(`setstat ${dst}`, (s, cb) => s.setstat(dst, { mode: st.mode & 0o7777, atime: st.atime, mtime: st.mtime }, cb), signal);
  }

  private async copyFile(src: string, dst: string, attrs: Stats, signal?: AbortSignal): Promise<void> {
    const existing = await this.lstat(dst, signal);
    if (existing && existing.size === attrs.size && existing.mtime === attrs.mtime) return; // copied by an earlier try
    const from = await this.session.run<Buffer>(`open ${src}`, (s, cb) => s.open(src, 'r', cb), signal);
    try {
      const to = await this.session.run<Buffer>(`open ${dst}`, (s, cb) => s.open(dst, 'w', attrs.mode & 0o7777, cb), signal);
      try {
        await this.copyContent(from, to, attrs.size, src, signal);
      } finally {
        await this.session.run(`close ${dst}`, (s, cb) => s.close(to, cb));
      }
    } finally {
      await this.session.run(`close ${src}`, (s, cb) => s.close(from, cb));
    }
    await this.session.run(`setstat ${dst}`, (s, cb) => s.setstat(dst, { mode: attrs.mode & 0o7777, atime: attrs.atime, mtime: attrs.mtime }, cb), signal);
    await this.session.run(`chown ${dst}`, (s, cb) => s.chown(dst, attrs.uid, attrs.gid, cb), signal).catch(() => undefined); // only root may
  }

  /** The server copies the bytes itself (copy-data extension, OpenSSH ≥ 9.0); otherwise they travel through here. */
  private async copyContent(from: Buffer, to: Buffer, size: number, what: string, signal?: AbortSignal): Promise<void> {
    if (this.copyData) {
      try {
        await this.session.run(`copy-data ${what}`, (s, cb) => s.ext_copy_data(from, 0, 0, to, 0, cb), signal);
        return;
      } catch (err) {
        if (!/does not support/i.test((err as Error).message)) throw err;
        this.copyData = false;
      }
    }
    const chunk = 256 * 1024;
    const buf = Buffer.alloc(chunk);
    for (let pos = 0; pos < size; pos += chunk) {
      const n = await this.session.run<number>(`read ${what}`, (s, cb) => s.read(from, buf, 0, Math.min(chunk, size - pos), pos, cb), signal);
      if (!n) break;
      await this.session.run(`write ${what}`, (s, cb) => s.write(to, buf, 0, n, pos, cb), signal);
    }
  }

  private async copySymlink(src: string, dst: string, signal?: AbortSignal): Promise<void> {
    const target = await this.session.run<string>(`readlink ${src}`, (s, cb) => s.readlink(src, cb), signal);
    if (await this.lstat(dst, signal)) return;
    await this.session.run(`symlink ${dst}`, (s, cb) => s.symlink(target, dst, cb), signal);
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
    const handle = await this.session.run<Buffer>(`open ${tmp}`, (s, cb) => s.open(tmp, 'wx', 0o644, cb), signal);
    try {
      await this.session.run(`write ${tmp}`, (s, cb) => s.write(handle, data, 0, data.length, 0, cb), signal);
      await this.session.run(`fsync ${tmp}`, (s, cb) => s.ext_openssh_fsync(handle, cb), signal);
    } catch (err) {
      await this.session.run(`close ${tmp}`, (s, cb) => s.close(handle, cb)).catch(() => undefined);
      await this.unlink(tmp);
      throw err;
    }
    await this.session.run(`close ${tmp}`, (s, cb) => s.close(handle, cb));
    return tmp;
  }

  /** Removes a file of tether's own (a temporary file), even after the call ended; errors are ignored. */
  private async unlink(p: string): Promise<void> {
    await this.session.run(`unlink ${p}`, (s, cb) => s.unlink(p, cb)).catch(() => undefined);
  }

  private lstat(p: string, signal?: AbortSignal): Promise<Stats | undefined> {
    return this.session.stat(p, signal).catch((err: unknown) => (isMissing(err) ? undefined : Promise.reject(err)));
  }
}

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
