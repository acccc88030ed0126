import { readFile } from 'node:fs/promises';
import { stopIfEnded } from '../csi/errors.js';
import { withTimeout } from '../util/time.js';

export interface MountEntry {
  target: string;
  source: string;
  fstype: string;
  options: string[];
  /** "major:minor" of the filesystem: every bind mount of one sshfs mount shares it. */
  device: string;
}

/** How long a read of /proc/self/mountinfo may take (it waits for the kernel's mount lock, never for a server). */
const MOUNTINFO_TIMEOUT_MS = 10_000;

/**
 * The mount table, as `findmnt --list --output TARGET,SOURCE,FSTYPE,OPTIONS,MAJ:MIN` shows it (see
 * entryOf), from /proc/self/mountinfo read in this process: no child process, and it touches no
 * mount, so a hung server cannot stall it; bounded in time all the same.
 */
export async function readMountTable(signal?: AbortSignal): Promise<MountEntry[]> {
  return (await readMountInfo(signal)).map(entryOf);
}

/** A line of /proc/self/mountinfo: the kernel's own view, with the mounted directory (`root`) of the filesystem. */
export interface MountInfo {
  target: string;
  /** The directory of the filesystem mounted there: "/" unless it is a bind mount of a subdirectory. */
  root: string;
  fstype: string;
  source: string;
  device: string;
  /** The mount's (VFS) and the filesystem's options, merged as libmount does: "ro" or "rw" first, then the rest. */
  options: string[];
}

/**
 * /proc/self/mountinfo, read in this process (no child process, and it touches no mount). Cheap
 * enough for every file operation of the controller's NFS export mount and every node call, where a
 * findmnt process would cost more than the operation.
 */
export async function readMountInfo(signal?: AbortSignal): Promise<MountInfo[]> {
  stopIfEnded(signal, 'reading the mount table');
  return parseMountInfo(await withTimeout(readFile('/proc/self/mountinfo', 'utf8'), MOUNTINFO_TIMEOUT_MS, 'reading /proc/self/mountinfo'));
}

/** The kernel's mark of a mount point whose directory was removed (libmount drops it, and so does this). */
const DELETED = ' (deleted)';

export function parseMountInfo(text: string): MountInfo[] {
  const unescape = (f: string) => f.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return text.split('\n').flatMap((line) => {
    const [left, right] = line.split(' - ');
    const l = left?.split(' ') ?? [];
    const r = right?.split(' ') ?? [];
    if (l.length < 6 || r.length < 3) return [];
    const target = unescape(l[4]!);
    return [{
      device: l[2]!,
      root: unescape(l[3]!),
      target: target.endsWith(DELETED) ? target.slice(0, -DELETED.length) : target,
      fstype: unescape(r[0]!),
      source: unescape(r[1]!),
      options: mergeOptions(unescape(l[5]!), unescape(r[2]!)),
    }];
  });
}

/** libmount's merge of a mount's VFS options and its filesystem's: one "ro" or "rw" (ro if either says ro) first, then the others in order. */
export function mergeOptions(vfs: string, fs: string): string[] {
  if (vfs === fs) return vfs.split(',');
  const all = [...vfs.split(','), ...fs.split(',')].filter((o) => o !== '');
  return [all.includes('ro') ? 'ro' : 'rw', ...all.filter((o) => o !== 'rw' && o !== 'ro')];
}

/**
 * A mountinfo line as findmnt shows it: the source of a bind mount of a subdirectory (root not "/")
 * is `source[/sub]` (an NFS mount's root is always "/": its source names the subdirectory itself).
 */
export function entryOf(m: MountInfo): MountEntry {
  return { target: m.target, source: m.root === '/' ? m.source : `${m.source}[${m.root}]`, fstype: m.fstype, options: m.options, device: m.device };
}

/** The topmost mount at exactly `path`, if any. */
export function mountAt(table: readonly MountEntry[], path: string): MountEntry | undefined {
  return table.filter((m) => m.target === path).at(-1);
}

/**
 * The bind mounts of the volume staged at `staged` (its published targets): the same filesystem
 * (device) and the same volume directory. Both matter: the kernel NFS client shares one superblock,
 * hence one device, among all mounts of one server, so other volumes' mounts have that device too.
 */
export function bindsOf(table: readonly MountEntry[], staged: MountEntry): MountEntry[] {
  return sharingFilesystem(table, staged).filter((m) => sourceMatches(m, staged.source));
}

/**
 * The other mounts of `entry`'s filesystem (same device, another target): its binds, and — on NFS,
 * whose client shares one superblock among the mounts of one server — other volumes' mounts too.
 */
export function sharingFilesystem(table: readonly MountEntry[], entry: MountEntry): MountEntry[] {
  return table.filter((m) => m.device === entry.device && m.target !== entry.target);
}

export const isReadOnly = (m: MountEntry) => m.options.includes('ro');

/** findmnt shows a bind mount of a subdirectory as `source[/sub]` (FUSE) or `server:/path/sub` (NFS). */
export function sourceMatches(entry: MountEntry, source: string): boolean {
  return entry.source === source || entry.source.startsWith(`${source}[`) || (entry.fstype.startsWith('nfs') && entry.source.startsWith(`${source}/`));
}
