import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { alreadyExists, invalid, precondition, unavailable } from '../csi/errors.js';
import type { NodeRpcs, RequestOfRpc } from '../grpc/rpc.js';
import { requireFields } from '../grpc/validate.js';
import { bindsOf, mountAt, readMountTable, sourceMatches } from '../mounts/mount-table.js';
import type { Mounter } from '../mounts/mounter.js';
import { probeMount } from '../mounts/probe.js';
import { resolvePath } from '../mounts/paths.js';
import type { MountSpec } from '../mounts/spec.js';
import { isReadOnlyMode, requireCapability, type VolumeCapability } from '../volumes/access.js';
import type { Backends } from '../volumes/registry.js';
import { DATA_DIR } from '../volumes/layout.js';
import { run } from '../util/exec.js';
import { withTimeout } from '../util/time.js';
import type { NodeDeps } from './deps.js';
import { claimForStage, releaseClaim, type StageClaim } from './claims.js';
import { foreignMount, mountedHere, LOCAL_FS_TIMEOUT_MS, orderedSpec, PROBE_TIMEOUT_MS, volumeSpec } from './volume-mounts.js';

type StageRequest = RequestOfRpc<NodeRpcs['NodeStageVolume']>;

/** How long NodeUnstage waits for the backend to take this node's claim off the record before leaving it to the background. */
const CLAIM_RELEASE_BUDGET_MS = 2_000;
/** How long taking back a mount made while its claim was refused may take (the call's own signal may have ended). */
const UNDO_BUDGET_MS = 15_000;

/**
 * NodeStageVolume: checks that this node may hold the volume as asked, records its claim where the
 * CO skips ControllerPublish (see claims.ts), then mounts the volume's directory at the staging
 * path (sshfs or NFS), once.
 */
export function stageVolume(deps: NodeDeps): NodeRpcs['NodeStageVolume'] {
  return {
    validate(req) {
      requireFields(req, 'volume_id', 'staging_target_path');
      requireCapability(req.volume_capability, 'volume_capability');
    },
    lockKey: (req) => req.volume_id,
    async handle(req, { signal, log }) {
      const staging = await resolvePath(req.staging_target_path);
      await stageWithClaim(deps, req, staging, signal, log);
      await deps.claims.forget(staging);
      return {};
    },
  };
}

/**
 * NodeUnstageVolume: unmounts the volume's staging mount — refused while it is still published, and
 * never anything but this volume's own mount — cutting it off its server the way the volume's
 * backend says if umount alone does not finish; removes the key copy and this node's claim.
 */
export function unstageVolume(deps: NodeDeps): NodeRpcs['NodeUnstageVolume'] {
  const { backends, mounter, claims, leases, recovery } = deps;
  return {
    validate: (req) => requireFields(req, 'volume_id', 'staging_target_path'),
    lockKey: (req) => req.volume_id,
    async handle(req, { signal, log }) {
      const spec = volumeSpec(backends, req.volume_id); // NOT_FOUND for an ID tether did not make: nothing is touched
      const staging = await resolvePath(req.staging_target_path);
      const table = await readMountTable(signal);
      const entry = mountAt(table, staging);
      if (entry) {
        if (!sourceMatches(entry, spec.source)) throw foreignMount(staging, entry, req.volume_id);
        const published = bindsOf(table, entry).map((m) => m.target);
        if (published.length) throw precondition(`volume is still published at ${published.join(', ')}; unpublish it first`);
        await mounter.unmount(entry, signal, spec.cutoff);
      }
      const mountedElsewhere = mountedHere(entry ? await readMountTable(signal) : table, spec.source);
      if (mountedElsewhere) log.info({ staging }, 'the volume is still mounted elsewhere on this node (another staging path): its claim stays');
      // Renewals stop before the lease leaves the record (a renewal that found it gone would fence).
      else await leases.release(req.volume_id);
      const done = await Promise.allSettled([
        mounter.removeSecrets(staging),
        claims.forget(staging),
        recovery.unstaged(staging),
        ...(mountedElsewhere ? [] : [leases.clearFence(req.volume_id), releaseOrLater(deps, req.volume_id, signal, log)]),
      ]);
      for (const d of done) if (d.status === 'rejected') throw d.reason;
      return {};
    },
  };
}

/** Takes this node's claim and lease off the record; a backend that does not answer must not hold NodeUnstage up (the unmount is done): the claim goes later, then. */
async function releaseOrLater({ backends, nodeId, claims }: NodeDeps, volumeId: string, signal: AbortSignal, log: Logger): Promise<void> {
  await withTimeout(releaseClaim(backends, volumeId, nodeId, signal), CLAIM_RELEASE_BUDGET_MS, 'releasing the claim').catch(async (err: unknown) => {
    log.warn({ err: (err as Error).message }, "unstaged, but this node's claim could not be released yet; retrying in the background");
    await claims.releaseLater(volumeId);
  });
}

/**
 * Claims the volume and takes its lease where needed (taking over leases that lapsed), starts
 * renewing the lease, and stages the volume — the record's change over SFTP and the mount at once:
 * a mount writes nothing and nothing is published from it before both have succeeded. What this
 * call added is taken back if either fails: the claim and lease if the mount failed, the mount it
 * made if the claim was refused.
 */
export async function stageWithClaim(deps: NodeDeps, req: Pick<StageRequest, 'volume_id' | 'volume_capability'>, staging: string, signal: AbortSignal, log: Logger): Promise<void> {
  const { backends, mounter, nodeId, leases } = deps;
  const spec = stagingSpec(backends, req);
  const mode = requireCapability(req.volume_capability, 'volume_capability');
  const request = { nodeId, accessMode: mode, readonly: isReadOnlyMode(mode) };
  const held = leases.isHolding(req.volume_id);
  // The lease is renewed from the moment it is taken, however long the mount takes.
  const claiming = claimForStage(backends, req.volume_id, request, deps.leaseContext, signal).then(async (claim) => {
    noteTakeover(deps, req.volume_id, claim, log);
    if (claim.lease) await leases.hold(req.volume_id, claim.lease.id, claim.lease.sentAt, claim.fences, staging);
    return claim;
  });
  const [claimed, mounted] = await Promise.allSettled([claiming, mountStaged(mounter, spec, staging, signal, log)]);
  if (claimed.status === 'rejected') {
    if (mounted.status === 'fulfilled' && mounted.value) await undoMount(mounter, spec, staging, log);
    throw claimed.reason;
  }
  const claim = claimed.value;
  try {
    if (mounted.status === 'rejected') throw mounted.reason;
    await grantGroup(spec, staging, signal);
  } catch (err) {
    if (claim.added || (claim.lease && !held)) {
      await leases.release(req.volume_id);
      await releaseClaim(backends, req.volume_id, nodeId).catch(() => undefined);
    }
    throw err;
  }
  await Promise.all([deps.recovery.staged(staging, spec), leases.clearFence(req.volume_id)]);
}

function noteTakeover({ backends, metrics, nodeId }: NodeDeps, volumeId: string, claim: StageClaim, log: Logger): void {
  if (!claim.takeover.from.length) return;
  const backend = backends.locateVolume(volumeId).store.backend.name;
  metrics.takeovers.inc({ backend }, claim.takeover.from.length);
  log.warn({ event: 'lease-takeover', volume: volumeId, from: claim.takeover.from, to: nodeId, watchedMs: Math.round(claim.takeover.watchedMs) }, 'took the volume over from a node that stopped renewing its lease');
}

/** Takes back the mount this call made at `staging` (the claim was refused), never another's. */
async function undoMount(mounter: Mounter, spec: MountSpec, staging: string, log: Logger): Promise<void> {
  const signal = AbortSignal.timeout(UNDO_BUDGET_MS);
  const entry = mountAt(await readMountTable(signal), staging);
  if (entry && sourceMatches(entry, spec.source)) await mounter.unmount(entry, signal, spec.cutoff).catch((err: Error) => log.warn({ staging, err: err.message }, 'could not take back the mount made while the claim was refused'));
  await mounter.removeSecrets(staging);
}

/** How to mount a volume at its staging path, for the capability the CO asks with (checked against the allowlist). */
export function stagingSpec(backends: Backends, req: Pick<StageRequest, 'volume_id' | 'volume_capability'>): MountSpec {
  const mode = requireCapability(req.volume_capability, 'volume_capability');
  const flags = req.volume_capability?.mount?.mount_flags ?? [];
  return orderedSpec(backends, { volumeId: req.volume_id, flags, readonly: isReadOnlyMode(mode), group: mountGroup(req.volume_capability) });
}

/** Mounts `spec` at `staging` unless it is there and answering (see mountStaged), and gives data/ to the pod's group where asked. */
export async function stageAt(mounter: Mounter, spec: MountSpec, staging: string, signal: AbortSignal, log: Logger): Promise<void> {
  await mountStaged(mounter, spec, staging, signal, log);
  await grantGroup(spec, staging, signal);
}

/**
 * Mounts `spec` at `staging`, unless it is there and answering; true if this call mounted it. A
 * mount that is gone for good (stale file handle, dead FUSE daemon) is replaced; one whose server
 * merely does not answer is kept — it heals when the server is back, with the writes still queued
 * on it — and the call fails with UNAVAILABLE so the CO retries. Writes nothing to the volume.
 */
async function mountStaged(mounter: Mounter, spec: MountSpec, staging: string, signal: AbortSignal, log: Logger): Promise<boolean> {
  const existing = mountAt(await readMountTable(signal), staging);
  if (existing) {
    if (!sourceMatches(existing, spec.source)) throw alreadyExists(`${staging} already holds another mount (${existing.source})`);
    const health = await probeMount(staging, PROBE_TIMEOUT_MS, signal);
    if (health.ok) return false;
    if (health.kind !== 'gone') throw notAnswering(staging, health.reason);
    log.warn({ staging, reason: health.reason }, 'staged mount is gone for good; mounting it again');
    await mounter.unmount(existing, signal, spec.cutoff);
  }
  await withTimeout(mkdir(staging, { recursive: true }), LOCAL_FS_TIMEOUT_MS, `mkdir ${staging}`);
  await mounter.mount(spec, staging, signal);
  return true;
}

/** A staged volume whose server does not answer: kept mounted, so it heals with its queued writes; the CO retries. */
export const notAnswering = (staging: string, reason: string) =>
  unavailable(`volume is staged at ${staging} but does not answer (${reason}); the mount is kept so that it heals, with its queued writes, when the server is back`);

/**
 * VOLUME_MOUNT_GROUP on a filesystem without a gid mount option (NFS): data/ goes to the pod's group,
 * group-writable and setgid, so what the pod creates is that group's too — what kubelet's fsGroup
 * would do to the top directory. Through child processes with timeouts: it is a network mount.
 */
async function grantGroup(spec: MountSpec, staging: string, signal: AbortSignal): Promise<void> {
  const gid = spec.groupAccess;
  if (gid === undefined) return;
  const dir = path.join(staging, DATA_DIR);
  try {
    const [group, mode] = (await run('stat', ['-c', '%g %a', '--', dir], { timeoutMs: LOCAL_FS_TIMEOUT_MS, signal })).trim().split(' ');
    if (Number(group) === gid && (parseInt(mode ?? '0', 8) & 0o2070) === 0o2070) return;
    await run('chgrp', [String(gid), '--', dir], { timeoutMs: LOCAL_FS_TIMEOUT_MS, signal });
    await run('chmod', ['g+rwxs', '--', dir], { timeoutMs: LOCAL_FS_TIMEOUT_MS, signal });
  } catch (err) {
    throw precondition(`cannot give ${dir} to the workload's group ${gid} (VOLUME_MOUNT_GROUP: a pod's fsGroup): ${(err as Error).message}; the server must let this node's root change the directory (no root squash), or the share must already belong to that group`);
  }
}

/** VOLUME_MOUNT_GROUP: the fsGroup Kubernetes sends, as a numeric group ID. */
function mountGroup(cap: VolumeCapability | null): number | undefined {
  const group = cap?.mount?.volume_mount_group;
  if (!group) return undefined;
  if (!/^\d{1,10}$/.test(group)) throw invalid(`volume_mount_group must be a numeric group ID, got "${group}"`);
  return Number(group);
}
