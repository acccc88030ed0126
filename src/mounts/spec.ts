/**
 * How to cut a mount off its server when a plain umount does not finish (NodeUnstage, a remount of
 * a mount that is gone for good). Chosen by the backend that hands out the mount spec:
 * - `abort-fuse`: abort the FUSE connection (`/sys/fs/fuse/connections/<n>/abort`): every request
 *   stuck on it fails at once, and nothing queued reaches the server;
 * - `force-if-unresponsive`: `umount -f`, only when the mount does not answer a probe — on NFS it
 *   kills the in-flight RPCs of every mount that shares the server's superblock.
 * In every case a lazy unmount is the last resort.
 */
export type Cutoff = 'abort-fuse' | 'force-if-unresponsive';

/**
 * What a FUSE mount of a volume is made from, besides the backend's config: all a mount keeper is
 * told (it builds the spec itself from its own copy of the config, never from a spec it is sent).
 */
export interface MountOrder {
  volumeId: string;
  /** Mount flags from the volume capability (on the backend's allowlist). */
  flags: readonly string[];
  readonly: boolean;
  /** The pod's fsGroup (VOLUME_MOUNT_GROUP), if the CO sent one. */
  group?: number;
}

/** How to mount one volume directory on this machine: what a backend hands to the mounter. */
export interface MountSpec {
  /** The filesystem types findmnt may show for the mount (`fuse.sshfs`; `nfs4` or `nfs`). */
  fstypes: readonly string[];
  /** The source findmnt shows for the mount. */
  source: string;
  command: string;
  /** Arguments for `command` (never a secret: only paths to files); `secretDir` holds `secretFiles`. */
  args(target: string, secretDir: string): string[];
  /** Files the mount needs (keys, known_hosts), written 0600 into `secretDir` and removed at unmount. */
  secretFiles: Record<string, string | Buffer>;
  /** How to force the mount off its server when it must go and umount alone does not finish. */
  cutoff: Cutoff;
  /**
   * A group the volume's data directory must be writable by (the pod's fsGroup), for filesystems with
   * no mount option for it (NFS): the node gives the directory to that group, setgid, at stage.
   */
  groupAccess?: number;
  /** The server the mount talks to (a fence resets every connection to it that no process owns any more). */
  server?: { host: string; port: number };
  /** Read-ahead to set on the mount's backing device (FUSE defaults to 128 KiB), if any. */
  readAheadKb?: number;
  /**
   * A process (sshfs) serves the mount, and the mount dies with it — with the container that started
   * it, say. A node plugin with a mount keeper has the keeper make such mounts (kernel mounts — NFS,
   * binds — it makes itself: they outlive it anyway).
   */
  daemon?: boolean;
  /** What the node made the spec from (NodeStage's volume and capability): what it tells a mount keeper. */
  order?: MountOrder;
}
