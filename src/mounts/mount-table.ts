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
