import { mountAt, sourceMatches, type MountEntry } from '../mounts/mount-table.js';

/**
 * What the node noted when it staged a FUSE (sshfs) volume — enough to mount it again exactly so —
 * and the targets it bound from it (NodePublish). Kept under the runtime directory: only tether's
 * own mounts are ever recovered, and only as they were made.
 */
export interface StageRecord {
  volumeId: string;
  /** The staging path, resolved (as the mount table shows it). */
  staging: string;
  flags: string[];
  readonly: boolean;
  group?: number;
  targets: { path: string; readonly: boolean }[];
}

/** A target to bind from the staging mount again, on top of what is mounted there now (the volume's dead bind). */
export interface Rebind {
  target: string;
  readonly: boolean;
  current: MountEntry;
}

export type RecoveryPlan =
  /** Nothing to do: staged and alive (or its daemon's fate is not known). */
  | { kind: 'ok' }
  /** Neither staged nor bound any more (unstaged, or let go of): the record goes. */
  | { kind: 'forget' }
  /**
   * Mount the staging path again — after taking down `dead`, the mount whose FUSE daemon is gone,
   * if it is still there — then bind `rebind` again. `confirm`: probe `dead` first and go on only if
   * it is gone for good (a daemon that is merely not found must not cost a live mount).
   */
  | { kind: 'remount'; dead?: MountEntry; rebind: Rebind[] }
  /** The staging mount is alive, but these targets still hold the volume's old mount (a recovery cut short). */
  | { kind: 'rebind'; rebind: Rebind[] };

/**
 * What recovering one staged volume takes, from the mount table and whether the staging mount's
 * daemon is alive (`alive`: undefined when not known). Only the record's own paths are looked at,
 * and only mounts of the volume's source there: nothing tether did not make is ever touched.
 */
export function recoveryPlan(record: StageRecord, table: readonly MountEntry[], source: string, alive: boolean | undefined): RecoveryPlan {
  const ours = (m: MountEntry | undefined) => (m && sourceMatches(m, source) ? m : undefined);
  const staged = ours(mountAt(table, record.staging));
  const foreign = (path: string) => mountAt(table, path) !== undefined && !ours(mountAt(table, path));
  // Only targets that hold a mount of the volume: one with nothing mounted was taken down by someone (recovery never does).
  const targets = record.targets.flatMap((t) => {
    const current = foreign(t.path) ? undefined : ours(mountAt(table, t.path));
    return current ? [{ target: t.path, readonly: t.readonly, current }] : [];
  });
  if (staged && alive === undefined) return { kind: 'ok' };
  if (!staged) {
    if (foreign(record.staging)) return { kind: 'ok' }; // something else is mounted there now: not ours to touch
    return targets.length ? { kind: 'remount', rebind: targets } : { kind: 'forget' };
  }
  if (!alive) return { kind: 'remount', dead: staged, rebind: targets.filter((t) => t.current?.device === staged.device) };
  const stale = targets.filter((t) => t.current.device !== staged.device);
  return stale.length ? { kind: 'rebind', rebind: stale } : { kind: 'ok' };
}

/** A record's target list with `target` added (or its read-only flag updated). */
export function withTarget(record: StageRecord, target: string, readonly: boolean): StageRecord {
  return { ...record, targets: [...record.targets.filter((t) => t.path !== target), { path: target, readonly }] };
}

