// Staging, target and volume paths for the fuzzed Node calls, and the guard that keeps the driver
// from mounting (or removing) anything outside the test's own directory tree.
//
// The driver is a real node plugin running as root: NodeStageVolume with a valid volume ID mounts
// sshfs at whatever path it is given, NodePublishVolume bind-mounts there, NodeUnpublishVolume
// removes the (empty) directory. So a call that names a volume that may exist only ever gets paths
// inside `tree` — hostile ones (relative, `..`, NUL, 5000 chars, 300-char components, unicode,
// newlines) included, since the driver resolves a relative path against its working directory, which
// the test puts inside `tree` too. Absolute paths outside (/, /etc, ...) go only with IDs that cannot
// name a volume.
import path from 'node:path';
import type { Prng } from './prng.js';
import { hostileString, type Budget, type Drawn } from './values.js';

/** The request fields the Node service reads as paths on this host. */
export const PATH_FIELDS = ['staging_target_path', 'target_path', 'volume_path'] as const;

export interface PathPlan {
  /** Every path the driver may touch for a volume that may exist lies strictly below this directory. */
  tree: string;
  /** The driver's working directory (inside `tree`): relative paths resolve against it. */
  cwd: string;
  /** A few fixed staging and target paths, so that stage, publish and their undoing meet again. */
  staging: readonly string[];
  targets: readonly string[];
}

export function pathPlan(tree: string): PathPlan {
  const pool = (kind: string) => [0, 1, 2, 3].map((i) => path.join(tree, kind, String(i)));
  return { tree, cwd: path.join(tree, 'cwd', 'a', 'b', 'c'), staging: pool('staging'), targets: pool('target') };
}

/**
 * Whether `volumeId` could name a volume: tether's volume IDs are `<backend>/<dir>`, exactly one
 * slash (src/volumes/ids.ts), so anything else is certainly not one. Deliberately generous: a
 * hostile string with one slash counts as possibly valid too.
 */
export const mayNameVolume = (volumeId: unknown) => typeof volumeId === 'string' && volumeId.split('/').length === 2;

/** Whether the driver, resolving `p` as it does (path.resolve against its cwd), lands strictly below the tree. */
export function insideTree(plan: PathPlan, p: unknown): boolean {
  if (typeof p !== 'string' || p === '') return true; // empty: INVALID_ARGUMENT or "not given"; touches nothing
  return path.resolve(plan.cwd, p).startsWith(`${plan.tree}/`);
}

/** Whether a Node request (as the driver decodes it) may be sent: paths outside the tree only with IDs that name no volume. */
export function safeNodeRequest(plan: PathPlan, request: Record<string, unknown>): boolean {
  return !mayNameVolume(request.volume_id) || PATH_FIELDS.every((field) => insideTree(plan, request[field]));
}

/** Hostile path shapes that stay inside the tree (checked by insideTree anyway). */
function hostileInside(prng: Prng, plan: PathPlan): Drawn<string> {
  const base = path.join(plan.tree, 'h');
  return prng.pick<() => Drawn<string>>([
    // Over NAME_MAX (255) in one component; over PATH_MAX (4096) with every component legal.
    () => ({ value: `${base}/${'n'.repeat(300)}`, kind: 'path-component-300' }),
    () => ({ value: `${base}/${`${'l'.repeat(199)}/`.repeat(25)}end`, kind: 'path-5000' }),
    () => ({ value: `${base}/vol-😀-שלום-\u202Eexe.txt`, kind: 'path-unicode' }),
    () => ({ value: `${base}/new\nline`, kind: 'path-newline' }),
    () => ({ value: `${base}/nul\0byte`, kind: 'path-nul' }),
    () => ({ value: `${base}/x/../y/./z/`, kind: 'path-dotdot' }),
    () => ({ value: `${base}//double//slash`, kind: 'path-slashes' }),
    () => ({ value: `${base}/ space \t tab`, kind: 'path-whitespace' }),
    () => ({ value: prng.pick(['rel', 'rel/sub', './dot', 'a/../b', '../up']), kind: 'path-relative' }),
  ])();
}

/** A path for a Node call: a pool path, a hostile one inside the tree, or (only with an ID that names no volume) anything. */
export function drawPath(prng: Prng, plan: PathPlan, field: string, volumeId: unknown, budget: Budget): Drawn<string> {
  const pool = field === 'target_path' ? plan.targets : plan.staging;
  const drawn = prng.weighted<() => Drawn<string>>([
    [5, () => ({ value: prng.pick(pool), kind: 'path-pool' })],
    [3, () => hostileInside(prng, plan)],
    [2, () => hostileString(prng, budget)],
  ])();
  if (mayNameVolume(volumeId) && !insideTree(plan, drawn.value)) return { value: prng.pick(pool), kind: `path-pool(instead of ${drawn.kind})` };
  return drawn;
}
