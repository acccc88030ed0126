import path from 'node:path';
import { invalid } from '../csi/errors.js';
import { isDirName } from '../volumes/ids.js';

/** PATH_MAX: a target longer than this cannot be a path. */
const MAX_PATH = 4096;

/**
 * The shape of a target path as sent, before anything looks at the filesystem: absolute, no `..`
 * component, no control character (NUL, newline), at most PATH_MAX.
 */
export function checkTargetShape(target: string): void {
  if (!target) throw invalid('target is required');
  if (Buffer.byteLength(target) > MAX_PATH) throw invalid(`target is ${Buffer.byteLength(target)} bytes long: at most ${MAX_PATH}`);
  if (/[\x00-\x1f\x7f]/.test(target)) throw invalid('target holds a control character');
  if (!path.isAbsolute(target)) throw invalid(`target must be an absolute path, got "${target}"`);
  if (target.split('/').includes('..')) throw invalid(`target must not hold a ".." component: "${target}"`);
}

/**
 * True if `resolved` (a target with every symlink resolved) lies strictly below one of `roots`
 * (resolved too): the root itself is never a target, and `/var/lib/kubelet-evil` is not below
 * `/var/lib/kubelet`.
 */
export function isUnderRoot(resolved: string, roots: readonly string[]): boolean {
  return roots.some((root) => {
    const base = root.endsWith('/') ? root : `${root}/`;
    return resolved !== root && resolved.startsWith(base) && resolved.length > base.length;
  });
}

/** VOLUME_MOUNT_GROUP as sent: empty for none, else a decimal group ID. */
export function parseGroup(group: string): number | undefined {
  if (group === '') return undefined;
  if (!/^\d{1,10}$/.test(group) || Number(group) > 2 ** 31) throw invalid(`group must be a numeric group ID, got "${group.slice(0, 40)}"`);
  return Number(group);
}

/** Mount flags as sent: at most 4 KiB in all (CSI's limit), each a plain string (the backend's allowlist checks each). */
export function checkFlags(flags: readonly string[]): void {
  const total = flags.reduce((n, f) => n + Buffer.byteLength(f), 0);
  if (total > 4096) throw invalid(`mount_flags hold ${total} bytes: at most 4096`);
}

/**
 * The volume whose mount has `source` (as the mount table shows it), given each sshfs backend's
 * base (`user@host:/path`, the source of its directory "."); undefined if it is none of tether's.
 */
export function volumeOfSource(source: string, bases: readonly { backend: string; base: string }[]): string | undefined {
  for (const { backend, base } of bases) {
    const dir = source.startsWith(`${base}/`) ? source.slice(base.length + 1) : undefined;
    if (dir && isDirName(dir)) return `${backend}/${dir}`;
  }
  return undefined;
}

/** What the keeper notes beside a mount's key copy: what it was made from, and where. */
export interface HeldOrder {
  volumeId: string;
  target: string;
  source: string;
  flags: string[];
  readonly: boolean;
  group?: number;
}

/** Whether a Mount asks for the mount that is there (same volume, options and group): then it is OK as it is. */
export function sameOrder(held: HeldOrder, asked: Omit<HeldOrder, 'target' | 'source'>): boolean {
  const norm = (flags: readonly string[]) => [...flags].sort().join(',');
  return held.volumeId === asked.volumeId && held.readonly === asked.readonly && held.group === asked.group && norm(held.flags) === norm(asked.flags);
}
