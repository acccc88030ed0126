import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { posix } from 'node:path';
import type { Logger } from 'pino';
import { unavailable } from '../grpc/errors.js';
import { Mounter } from '../node/mounter.js';
import { mountAt, readMountTable } from '../node/mount-table.js';
import type { Backend, MountRequest, MountSpec } from './backend.js';
import { LocalFs, type ExportHandle } from './local-fs.js';
import { checkNfsOptions, requestedVersion } from './nfs-options.js';
import { splitOptions } from './sshfs-options.js';

export interface NfsBackendConfig {
  name: string;
  type: 'nfs';
  server: string;
  share: string;
  mountOptions: string[];
}

/**
 * The controller's own mount of the export is soft: a dead server makes a controller call fail
 * (and be retried) instead of hanging a thread of the pool every file operation shares.
 */
const CONTROLLER_OPTIONS = ['soft', 'timeo=50', 'retrans=2', 'retry=0'];
/** Unmount the controller's mount after this long without use. */
const IDLE_UNMOUNT_MS = 60_000;

/** Volumes on an NFS export: the controller works on a mount of the export root, nodes mount `share/<volume>`. */
export class NfsBackend implements Backend {
  readonly type = 'nfs';
  readonly name: string;
  readonly fs: LocalFs;
  private readonly exportMount: ExportMount;

  constructor(
    private readonly config: NfsBackendConfig,
    runtimeDir: string,
    log: Logger,
  ) {
    this.name = config.name;
    this.exportMount = new ExportMount(this.spec(config.share, CONTROLLER_OPTIONS), path.join(runtimeDir, 'controller', config.name), new Mounter(runtimeDir, log));
    this.fs = new LocalFs(`${config.server}:${config.share}`, () => this.exportMount.acquire());
  }

  checkMountOptions(options: readonly string[]): void {
    checkNfsOptions(options);
  }

  mountSpec(dir: string, request: MountRequest): MountSpec {
    const options = [...request.flags];
    if (request.readonly) options.push('ro');
    return { ...this.spec(posix.join(this.config.share, dir), options), groupAccess: request.group };
  }

  private spec(exportPath: string, extra: string[]): MountSpec {
    const host = this.config.server.includes(':') ? `[${this.config.server}]` : this.config.server;
    const source = `${host}:${exportPath}`;
    const options = splitOptions([...extra, ...this.config.mountOptions]);
    const version = requestedVersion(options);
    return {
      // With no version asked for, the kernel negotiates (4.2 down to 3): either type can result.
      fstypes: version === undefined ? ['nfs4', 'nfs'] : version.startsWith('3') ? ['nfs'] : ['nfs4'],
      source,
      command: 'mount',
      args: (target) => ['-t', 'nfs', ...(options.length ? ['-o', options.join(',')] : []), source, target],
      secretFiles: {},
    };
  }

  async close(): Promise<void> {
    await this.exportMount.close();
  }
}

/**
 * The controller's mount of an export root: mounted on first use, shared by concurrent requests
 * (reference-counted), unmounted when idle. Before every use it checks in the mount table that the
 * directory really is that NFS mount, so nothing is ever written into the local directory underneath.
 */
class ExportMount {
  private users = 0;
  private isStale = false;
  private mounting?: Promise<void>;
  private idle?: NodeJS.Timeout;

  constructor(
    private readonly spec: MountSpec,
    private readonly dir: string,
    private readonly mounter: Mounter,
  ) {}

  async acquire(): Promise<ExportHandle> {
    this.users++;
    clearTimeout(this.idle);
    try {
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
    this.idle = setTimeout(() => void this.close(), IDLE_UNMOUNT_MS);
    this.idle.unref();
  }

  private async ensureMounted(): Promise<void> {
    const signal = new AbortController().signal;
    let current = mountAt(await readMountTable(), this.dir);
    if (current && this.spec.fstypes.includes(current.fstype) && current.source === this.spec.source) {
      if (!this.isStale) return;
      // The server's export was re-created (restore, new disk): every handle of this mount is stale.
      await this.mounter.unmount(current, signal);
      current = mountAt(await readMountTable(), this.dir);
    }
    if (current) throw unavailable(`${this.dir} holds ${current.source} (${current.fstype}), not the export ${this.spec.source}; refusing to use it`);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await this.mounter.mount(this.spec, this.dir, signal);
    this.isStale = false;
  }

  async close(): Promise<void> {
    if (this.users > 0) return;
    const current = mountAt(await readMountTable().catch(() => []), this.dir);
    if (current) await this.mounter.unmount(current, new AbortController().signal).catch(() => undefined);
  }
}
