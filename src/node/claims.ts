import { notFound } from '../csi/errors.js';
import { decideNodeStage, type Publication } from '../volumes/access.js';
import { isLive, type Backends } from '../volumes/registry.js';

/**
 * Node claims: a node that stages a volume nobody published to (a CO that skips ControllerPublish,
 * as Docker Swarm may) records that it holds it, in the volume's record, by compare-and-swap — so a
 * second node's NodeStage, a ControllerPublish for another node and DeleteVolume all see it.
 * A node that is published to needs no claim, but must be among the publications to write.
 */

/**
 * Checks that this node may stage the volume as asked (decideNodeStage) and records its claim if
 * one is needed. True if this call added a claim (to be taken back if the mount then fails).
 */
export async function claimForStage(backends: Backends, volumeId: string, request: Publication, signal: AbortSignal, now = new Date()): Promise<boolean> {
  const { ref, store } = backends.locateVolume(volumeId);
  let added = false;
  await store.updateVolume(ref.dir, (current) => {
    if (!isLive(current)) throw notFound(`volume ${volumeId} does not exist`);
    const claim = decideNodeStage(current, request);
    added = claim !== undefined && !current.claims.some((c) => c.nodeId === request.nodeId);
    if (!claim) return current;
    return { ...current, claims: [...current.claims.filter((c) => c.nodeId !== request.nodeId), { ...claim, claimedAt: now.toISOString() }] };
  }, signal);
  return added;
}

/** Takes this node's claim off the volume's record, if it has one (NodeUnstage, or an idle volume let go). */
export async function releaseClaim(backends: Backends, volumeId: string, nodeId: string, signal?: AbortSignal): Promise<void> {
  const { ref, store } = backends.locateVolume(volumeId);
  await store.updateVolume(ref.dir, (current) => (current?.claims.some((c) => c.nodeId === nodeId) ? { ...current, claims: current.claims.filter((c) => c.nodeId !== nodeId) } : current), signal);
}

/** True if this node holds a claim on the volume. */
export async function hasClaim(backends: Backends, volumeId: string, nodeId: string, signal?: AbortSignal): Promise<boolean> {
  const { ref, store } = backends.locateVolume(volumeId);
  return (await store.readVolume(ref.dir, signal))?.claims.some((c) => c.nodeId === nodeId) ?? false;
}
