import { readFile } from 'node:fs/promises';
import { run } from '../util/exec.js';

export interface MountEntry {
  target: string;
  source: string;
  fstype: string;
  options: string[];
  /** "major:minor" of the filesystem: every bind mount of one sshfs mount shares it. */
  device: string;
}

/**
 * The mount table from findmnt. findmnt reads /proc/self/mountinfo and touches no mount, so a hung
 * server cannot stall it.
 */
export async function readMountTable(signal?: AbortSignal): Promise<MountEntry[]> {
  const out = await run('findmnt', ['--list', '--json', '--output', 'TARGET,SOURCE,FSTYPE,OPTIONS,MAJ:MIN'], { timeoutMs: 10_000, signal });
  return parseFindmnt(out);
}

/** A line of /proc/self/mountinfo: the kernel's own view, with the mounted directory (`root`) of the filesystem. */
export interface MountInfo {
  target: string;
  /** The directory of the filesystem mounted there: "/" unless it is a bind mount of a subdirectory. */
  root: string;
  fstype: string;
  source: string;
  device: string;
}

/**
 * /proc/self/mountinfo, read in this process (no child process, and it touches no mount). Cheap
 * enough for every file operation of the controller's NFS export mount, where findmnt's process
 * would cost more than the operation.
 */
export async function readMountInfo(): Promise<MountInfo[]> {
  return parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
}

export function parseMountInfo(text: string): MountInfo[] {
  const unescape = (f: string) => f.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return text.split('\n').flatMap((line) => {
    const [left, right] = line.split(' - ');
    const l = left?.split(' ') ?? [];
    const r = right?.split(' ') ?? [];
    if (l.length < 5 || r.length < 2) return [];
    return [{ device: l[2]!, root: unescape(l[3]!), target: unescape(l[4]!), fstype: r[0]!, source: unescape(r[1]!) }];
  });
}

export function parseFindmnt(json: string): MountEntry[] {
  const parsed = JSON.parse(json) as { filesystems?: Record<string, string | null>[] };
  return (parsed.filesystems ?? []).map((f) => ({
    target: f.target ?? '',
    source: f.source ?? '',
    fstype: f.fstype ?? '',
    options: (f.options ?? '').split(','),
    device: f['maj:min'] ?? '',
  }));
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
  return table.filter((m) => m.device === staged.device && m.target !== staged.target && sourceMatches(m, staged.source));
}

export const isReadOnly = (m: MountEntry) => m.options.includes('ro');

/** findmnt shows a bind mount of a subdirectory as `source[/sub]` (FUSE) or `server:/path/sub` (NFS). */
export function sourceMatches(entry: MountEntry, source: string): boolean {
  return entry.source === source || entry.source.startsWith(`${source}[`) || (entry.fstype.startsWith('nfs') && entry.source.startsWith(`${source}/`));
}
