import path from 'node:path';
import { posix } from 'node:path';
import type { Logger } from 'pino';
import { Mounter } from '../mounts/mounter.js';
import type { MountSpec } from '../mounts/spec.js';
import type { Backend, MountRequest } from './backend.js';
import type { NfsBackendConfig } from './config.js';
import { ExportMount } from './export-mount.js';
import { LocalFs } from './local-fs.js';
import { NFS_OPTIONS, requestedVersion } from './nfs-options.js';
import { checkOptions, splitOptions } from './options.js';

/**
 * The controller's own mount of the export is soft: a dead server makes a controller call fail
 * (and be retried) instead of hanging a thread of the pool every file operation shares. It caches
 * no directory attributes or negative lookups: records change by exclusive links from other
 * controllers and nodes, and a cached directory listing would hide a newer generation.
 */
const CONTROLLER_OPTIONS = ['soft', 'timeo=50', 'retrans=2', 'retry=0', 'acdirmin=0', 'acdirmax=0', 'lookupcache=positive'];

/**
 * The backend options the controller's mount leaves out, because they set what CONTROLLER_OPTIONS
 * set: its options must win whatever the backend says and wherever it says it — not only by coming
 * last. `hard` and `softerr` undo `soft`; `softreval` would answer from the cache when the server is
 * down; `intr` is ignored by the kernel but belongs to the same pair; `actimeo` sets the directory
 * cache times too. `noac` stays: it only caches less.
 */
const CONTROLLER_SETS = new Set(['soft', 'hard', 'softerr', 'softreval', 'nosoftreval', 'intr', 'nointr', 'timeo', 'retrans', 'retry', 'acdirmin', 'acdirmax', 'actimeo', 'lookupcache']);

/** The options of the controller's mount: the backend's (how to reach the server), minus what the controller sets, then the controller's. */
function controllerOptions(backendOptions: readonly string[]): string[] {
  return [...splitOptions(backendOptions).filter((o) => !CONTROLLER_SETS.has(keyOf(o))), ...CONTROLLER_OPTIONS];
}

/** A read-only mount: mount(8) and the kernel take the last of `ro` and `rw`, so no `rw` anywhere, and `ro` last. */
function readOnly(options: readonly string[]): string[] {
  return [...splitOptions(options).filter((o) => o !== 'rw' && o !== 'ro'), 'ro'];
}

const keyOf = (option: string) => option.split('=', 1)[0]!;

/** The port NFSv4 (and v3's NFS service) listens on; tether's mounts never set another. */
const NFS_PORT = 2049;

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
    const location = `${config.server}:${config.share}`;
    const spec = this.spec(config.share, controllerOptions(config.mountOptions));
    this.exportMount = new ExportMount(spec, path.join(runtimeDir, 'controller', config.name), new Mounter(runtimeDir, log), `backend "${config.name}" (${location})`);
    this.fs = new LocalFs(location, () => this.exportMount.acquire());
  }

  checkMountOptions(options: readonly string[]): void {
    checkOptions(NFS_OPTIONS, options);
  }

  mountSpec(dir: string, request: MountRequest): MountSpec {
    // A superblock of its own per volume (unless asked otherwise): a fence (umount --force, the
    // shutdown switch) then stops this volume's requests only, not those of every volume of the export.
    // The backend's options come after the StorageClass's: they win over them.
    const options = ['nosharecache', ...request.flags, ...this.config.mountOptions];
    return { ...this.spec(posix.join(this.config.share, dir), request.readonly ? readOnly(options) : options), groupAccess: request.group };
  }

  private spec(exportPath: string, mountOptions: readonly string[]): MountSpec {
    const host = this.config.server.includes(':') ? `[${this.config.server}]` : this.config.server;
    const source = `${host}:${exportPath}`;
    const options = splitOptions(mountOptions);
    const version = requestedVersion(options);
    return {
      // With no version asked for, the kernel negotiates (4.2 down to 3): either type can result.
      fstypes: version === undefined ? ['nfs4', 'nfs'] : version.startsWith('3') ? ['nfs'] : ['nfs4'],
      source,
      command: 'mount',
      args: (target) => ['-t', 'nfs', ...(options.length ? ['-o', options.join(',')] : []), source, target],
      secretFiles: {},
      cutoff: 'force-if-unresponsive',
      server: { host: this.config.server, port: NFS_PORT },
    };
  }

  async close(): Promise<void> {
    await this.exportMount.close();
  }
}
