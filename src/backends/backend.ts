import type { MountSpec } from '../mounts/spec.js';

/** A scratch directory a copy makes beside its source (`.copy-<random>`) and removes when done; one a killed copy left is an orphan. */
export const COPY_SCRATCH = /^\.copy-[0-9a-f]{8}$/;
export const copyScratchName = (random: string) => `.copy-${random}`;

/** Backend names: lowercase letters, digits and dashes, at most 32 (every volume ID starts with one). */
export const BACKEND_NAME = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;

/**
 * A storage backend, seen from both sides:
 * - the controller works on volume directories through `fs` (SFTP for sshfs; for NFS, a mount of
 *   the export), with paths relative to the backend's base directory;
 * - the node asks `mountSpec` how to mount one volume directory here.
 * Everything above this interface (volume layout, records, snapshots, mounting) is shared.
 */
export interface Backend {
  readonly name: string;
  readonly type: 'sshfs' | 'nfs';
  readonly fs: RemoteFs;
  /** Throws INVALID_ARGUMENT for a mount option outside the backend's allowlist. */
  checkMountOptions(options: readonly string[]): void;
  /** How to mount the volume directory `dir` (relative to the base), with extra allowlisted options. */
  mountSpec(dir: string, options: MountRequest): MountSpec;
  /** Drops connections and controller mounts. */
  close(): Promise<void>;
}

export interface MountRequest {
  /** Mount flags from the volume capability (StorageClass mountOptions). */
  flags: readonly string[];
  readonly: boolean;
  /** The group the workload runs with (VOLUME_MOUNT_GROUP), if the CO sent one. */
  group?: number;
}

export interface DirEntry {
  name: string;
  isDirectory: boolean;
  /** The size in bytes, where the listing says it for free (SFTP). */
  size?: number;
}

/**
 * File operations on a backend, relative to its base directory. Missing paths are not errors where
 * noted. Every operation takes the calling RPC's signal: once it is aborted (the call ended), no
 * further request is sent to the server — one already sent is let finish, so that a call's work has
 * stopped when its promise settles.
 */
export interface RemoteFs {
  /** Where the base directory is, for messages (`user@host:/path`). */
  readonly location: string;
  /**
   * The file's bytes, or undefined if it does not exist. `size`, if the caller knows it (from a
   * listing; records never change once written), may save a request: a file of another size is read
   * to its end all the same.
   */
  readFile(path: string, signal?: AbortSignal, size?: number): Promise<Buffer | undefined>;
  /** Writes to a temporary file, syncs, and renames over `path`: readers see the old or the new file. */
  writeFileAtomic(path: string, data: Buffer, signal?: AbortSignal): Promise<void>;
  /**
   * Publishes a complete file at `path` unless something is there already: writes and syncs a
   * temporary file, then hard-links it to `path` (a link never replaces a file, on SFTP and NFS
   * alike). True if this call made `path`; false if it existed. `data` must be unique to the caller
   * (the store puts a random token in it), so an answer lost in transit is recognized.
   */
  linkExclusive(path: string, data: Buffer, signal?: AbortSignal): Promise<boolean>;
  /** Creates the directory; true if created, false if it was already there. */
  mkdir(path: string, signal?: AbortSignal): Promise<boolean>;
  /** True if something exists at `path`. */
  exists(path: string, signal?: AbortSignal): Promise<boolean>;
  /** The entries of a directory; [] if it does not exist. */
  list(path: string, signal?: AbortSignal): Promise<DirEntry[]>;
  /** Removes `path` and everything below it, never following symlinks; OK if missing. */
  removeTree(path: string, signal?: AbortSignal): Promise<void>;
  /** Removes the file (or symlink, never followed) `path`; OK if missing. */
  removeFile(path: string, signal?: AbortSignal): Promise<void>;
  /** Renames `from` over `to` (replacing a file there); false if `from` does not exist. */
  rename(from: string, to: string, signal?: AbortSignal): Promise<boolean>;
  /** Copies a tree on the server where the protocol allows it; files already copied are skipped. */
  copyTree(from: string, to: string, signal?: AbortSignal): Promise<void>;
  usage(signal?: AbortSignal): Promise<{ totalBytes: number; availableBytes: number }>;
  /** When `path` (not followed if a symlink) was last modified, by the server's clock; undefined if missing. */
  modifiedAt(path: string, signal?: AbortSignal): Promise<Date | undefined>;
}
