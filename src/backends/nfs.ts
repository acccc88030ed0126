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
 * no attributes or lookups: records change by exclusive links from other controllers and nodes,
 * and a cached directory listing would hide a newer generation. These come after the backend's own
 * options, so they win over them.
 */
const CONTROLLER_OPTIONS = ['soft', 'timeo=50', 'retrans=2', 'retry=0', 'acdirmin=0', 'acdirmax=0', 'lookupcache=positive'];

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
    this.exportMount = new ExportMount(this.spec(config.share, [], CONTROLLER_OPTIONS), path.join(runtimeDir, 'controller', config.name), new Mounter(runtimeDir, log));
    this.fs = new LocalFs(`${config.server}:${config.share}`, () => this.exportMount.acquire());
  }

  checkMountOptions(options: readonly string[]): void {
    checkOptions(NFS_OPTIONS, options);
  }

  mountSpec(dir: string, request: MountRequest): MountSpec {
    // A superblock of its own per volume (unless asked otherwise): a fence (umount --force, the
    // shutdown switch) then stops this volume's requests only, not those of every volume of the export.
    const options = ['nosharecache', ...request.flags];
    if (request.readonly) options.push('ro');
    return { ...this.spec(posix.join(this.config.share, dir), options), groupAccess: request.group };
  }

  /** `before` the backend's mount options (they win over it), `after` them (it wins). */
  private spec(exportPath: string, before: string[], after: string[] = []): MountSpec {
    const host = this.config.server.includes(':') ? `[${this.config.server}]` : this.config.server;
    const source = `${host}:${exportPath}`;
    const options = splitOptions([...before, ...this.config.mountOptions, ...after]);
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
