import { mkdir } from 'node:fs/promises';
import { unavailable } from '../csi/errors.js';
import { mountAt, readMountInfo, readMountTable } from '../mounts/mount-table.js';
import type { Mounter } from '../mounts/mounter.js';
import type { MountSpec } from '../mounts/spec.js';
import type { ExportHandle } from './local-fs.js';

/** Unmount the controller's mount after this long without use. */
const IDLE_UNMOUNT_MS = 60_000;

/**
 * The controller's mount of an export root: mounted on first use, shared by concurrent requests
 * (reference-counted), unmounted when idle. Before every use it checks in the mount table that the
 * directory really is that NFS mount, so nothing is ever written into the local directory underneath.
 *
 * Mounting and unmounting never overlap a use: an unmount starts only with no user, and is decided
 * with no await between the last check of `users` and its start; a use that begins meanwhile waits
 * for the unmount to finish (`closing`) and mounts again.
 */
export class ExportMount {
  private users = 0;
  private isStale = false;
  private mounting?: Promise<void>;
  private closing?: Promise<void>;
  private idle?: NodeJS.Timeout;

  constructor(
    private readonly spec: MountSpec,
    private readonly dir: string,
    private readonly mounter: Mounter,
    /** The backend, for messages: `backend "nfs1" (server:/share)`. */
    private readonly backend: string,
    private readonly idleMs = IDLE_UNMOUNT_MS,
  ) {}

  async acquire(): Promise<ExportHandle> {
    this.users++;
    clearTimeout(this.idle);
    try {
      await this.closing; // an unmount under way ends first; then the mount is checked (and made again)
      await (this.mounting ??= this.ensureMounted().finally(() => (this.mounting = undefined)));
    } catch (err) {
      this.releaseOne();
      throw err;
    }
    let released = false;
    return {
      root: this.dir,
      release: () => {
        if (!released) this.releaseOne();
        released = true;
      },
      stale: () => (this.isStale = true),
    };
  }

  private releaseOne(): void {
    if (--this.users > 0) return;
    this.idle = setTimeout(() => void this.close(), this.idleMs);
    this.idle.unref();
  }

  private async ensureMounted(): Promise<void> {
    // The common case, on every file operation: the export is mounted there and answers (mountinfo, no child process).
    const mounted = (await readMountInfo()).filter((m) => m.target === this.dir).at(-1);
    if (!this.isStale && mounted?.root === '/' && mounted.source === this.spec.source && this.spec.fstypes.includes(mounted.fstype)) return;
    const signal = new AbortController().signal;
    let current = mountAt(await readMountTable(), this.dir);
    if (current && this.spec.fstypes.includes(current.fstype) && current.source === this.spec.source) {
      if (!this.isStale) return;
      // The server's export was re-created (restore, new disk): every handle of this mount is stale.
      await this.mounter.unmount(current, signal);
      current = mountAt(await readMountTable(), this.dir);
    }
    if (current) throw unavailable(`${this.backend}: ${this.dir} holds ${current.source} (${current.fstype}), not the export ${this.spec.source}; refusing to use it`);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await this.mounter.mount(this.spec, this.dir, signal).catch((err: unknown) => {
      // Without its mount the controller can do nothing on this backend, whatever mount said (a
      // missing export is no missing volume): UNAVAILABLE, and a retry may find the server back.
      throw unavailable(`${this.backend} is unavailable: the controller cannot mount its export: ${err instanceof Error ? err.message : String(err)}`);
    });
    this.isStale = false;
  }

  /** Unmounts the export if nobody uses it; a use that starts meanwhile waits for this and mounts it again. */
  close(): Promise<void> {
    clearTimeout(this.idle);
    if (this.users > 0) return Promise.resolve();
    return (this.closing ??= this.unmountUnused().finally(() => (this.closing = undefined)));
  }

  private async unmountUnused(): Promise<void> {
    const current = mountAt(await readMountTable().catch(() => []), this.dir);
    // A use may have begun while the table was read: it waits for `closing`, so it is this check,
    // with no await between it and the unmount's start, that decides.
    if (!current || this.users > 0) return;
    await this.mounter.unmount(current, new AbortController().signal).catch(() => undefined);
  }
}
