import { mkdir, rmdir } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { alreadyExists, precondition } from '../csi/errors.js';
import type { NodeRpcs, RequestOfRpc } from '../grpc/rpc.js';
import { requireFields } from '../grpc/validate.js';
import { bindsOf, isReadOnly, mountAt, readMountTable, sourceMatches, type MountEntry } from '../mounts/mount-table.js';
import type { Mounter } from '../mounts/mounter.js';
import { resolvePath } from '../mounts/paths.js';
import { probeMount } from '../mounts/probe.js';
import { decideNodePublish, isReadOnlyMode, requireCapability } from '../volumes/access.js';
import { DATA_DIR } from '../volumes/layout.js';
import { withTimeout } from '../util/time.js';
import type { NodeDeps } from './deps.js';
import { notAnswering, stageAt, stageWithClaim, stagingSpec } from './stage.js';
import { foreignMount, LOCAL_FS_TIMEOUT_MS, PROBE_TIMEOUT_MS, volumeMountAt, volumeSpec } from './volume-mounts.js';

type PublishRequest = RequestOfRpc<NodeRpcs['NodePublishVolume']>;

/**
 * NodePublishVolume: bind-mounts the staged volume's data/ at the pod's target path, read-only where
 * asked; a second target only where the access mode allows one (see decideNodePublish).
 */
export function publishVolume(deps: NodeDeps): NodeRpcs['NodePublishVolume'] {
  const { mounter, recovery } = deps;
  return {
    validate(req) {
      requireFields(req, 'volume_id', 'staging_target_path', 'target_path');
      requireCapability(req.volume_capability, 'volume_capability');
    },
    lockKey: (req) => req.volume_id,
    async handle(req, { signal, log }) {
      const mode = requireCapability(req.volume_capability, 'volume_capability');
      const readonly = Boolean(req.readonly) || isReadOnlyMode(mode);
      const target = await resolvePath(req.target_path);
      let { entry: staged, table } = await answeringStagedMount(deps, req, signal, log);
      const current = mountAt(table, target);
      if (current) {
        // Already published here as asked. (Device and source: all NFS mounts of one server share a device.)
        if (current.device === staged.device && sourceMatches(current, staged.source) && isReadOnly(current) === readonly) {
          await recovery.published(staged.target, target, readonly);
          return {};
        }
        await replaceBrokenTarget(mounter, current, staged, target, signal, log);
        table = await readMountTable(signal);
      }
      decideNodePublish(bindsOf(table, staged).map((m) => m.target), mode);
      await withTimeout(mkdir(target, { recursive: true }), LOCAL_FS_TIMEOUT_MS, `mkdir ${target}`);
      try {
        await mounter.bind(path.join(staged.target, DATA_DIR), target, readonly, signal);
      } catch (err) {
        await rmdir(target).catch(() => undefined);
        throw err;
      }
      await recovery.published(staged.target, target, readonly);
      return {};
    },
  };
}

/**
 * NodeUnpublishVolume: unmounts the volume's bind mount at the target path (never anything that is
 * not this volume's), then removes the empty directory. When a claimed volume's last target goes,
 * the node lets go of it after a grace (see ClaimKeeper).
 */
export function unpublishVolume({ backends, mounter, claims, recovery }: NodeDeps): NodeRpcs['NodeUnpublishVolume'] {
  return {
    validate: (req) => requireFields(req, 'volume_id', 'target_path'),
    lockKey: (req) => req.volume_id,
    async handle(req, { signal, log }) {
      const { source } = volumeSpec(backends, req.volume_id); // NOT_FOUND for an ID tether did not make: nothing is touched
      const target = await resolvePath(req.target_path);
      let table = await readMountTable(signal);
      const first = mountAt(table, target);
      if (first) {
        for (let entry: MountEntry | undefined = first; entry; entry = mountAt(table, target)) {
          if (!sourceMatches(entry, source)) throw foreignMount(target, entry, req.volume_id);
          await mounter.unmount(entry, signal);
          table = await readMountTable(signal);
        }
        for (const staged of table.filter((m) => m.source === source)) if (!bindsOf(table, staged).length) claims.releaseWhenIdle(req.volume_id, staged.target);
      }
      await recovery.unpublished(req.volume_id, target, table.filter((m) => m.source === source).map((m) => m.target));
      await withTimeout(rmdir(target), LOCAL_FS_TIMEOUT_MS, `rmdir ${target}`).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') log.warn({ target, err: err.message }, 'target path left in place: it is not an empty directory');
      });
      return {};
    },
  };
}

/**
 * The volume's staging mount, answering. A pod restart is how a user recovers a volume whose server
 * went away for good (stale handle): the staging mount is made again here, from the same capability
 * NodeStage had. One whose server merely does not answer is UNAVAILABLE at once. A volume the node
 * let go of by itself while the CO still thought it staged is staged again, claim and all. A fenced
 * volume is not: only a new NodeStage may take its lease again.
 */
async function answeringStagedMount(deps: NodeDeps, req: PublishRequest, signal: AbortSignal, log: Logger) {
  const { backends, mounter, claims, leases, recovery } = deps;
  const fence = await leases.fenceOf(req.volume_id);
  if (fence) throw precondition(`volume ${req.volume_id} was fenced on this node at ${fence.at}: ${fence.reason}; it must be unstaged and staged again (restart the ${deps.workload}) before it can be published here`);
  const staging = await resolvePath(req.staging_target_path);
  const stagedMount = () =>
    volumeMountAt(backends, req.volume_id, staging, signal).catch((err: unknown) => {
      throw err instanceof Error && /not mounted/.test(err.message) ? precondition(`volume ${req.volume_id} is not staged at ${req.staging_target_path}; call NodeStageVolume first`) : err;
    });
  if (!mountAt(await readMountTable(signal), staging) && (await claims.wasReleased(req.volume_id, staging))) {
    log.info({ staging }, 'the node had let go of this idle volume; staging it again');
    await stageWithClaim(deps, req, staging, signal, log);
    await claims.forget(staging);
  }
  const staged = await stagedMount();
  const health = await probeMount(staged.entry.target, PROBE_TIMEOUT_MS, signal);
  if (health.ok) return staged;
  if (health.kind !== 'gone') throw notAnswering(staged.entry.target, health.reason);
  // Its FUSE daemon is gone: mounted again as it was staged, with every target bound from it (see MountRecovery).
  if (await recovery.recoverStaged(req.volume_id, staged.entry.target, signal, log)) return stagedMount();
  await stageAt(mounter, stagingSpec(backends, req), staged.entry.target, signal, log);
  return stagedMount();
}

/**
 * Something other than this request is mounted at the target: ALREADY_EXISTS — unless it is the
 * volume's own old mount, broken (left over from a staging mount that was replaced), which goes.
 */
async function replaceBrokenTarget(mounter: Mounter, current: MountEntry, staged: MountEntry, target: string, signal: AbortSignal, log: Logger): Promise<void> {
  const stale = current.device !== staged.device && sourceMatches(current, staged.source) && (await probeMount(target, PROBE_TIMEOUT_MS, signal)).ok === false;
  if (!stale) throw alreadyExists(`${target} is already mounted (${current.source}${isReadOnly(current) ? ', read-only' : ''}) and differs from this request`);
  log.warn({ target }, "target still holds the volume's old, broken mount; replacing it");
  await mounter.unmount(current, signal);
}
