import { mkdir, rmdir } from 'node:fs/promises';
import path from 'node:path';
import type { Rpc } from '../grpc/pipeline.js';
import type { Logger } from 'pino';
import type { MountSpec } from '../backends/backend.js';
import { alreadyExists, invalid, notFound, precondition, unavailable } from '../grpc/errors.js';
import { requireField } from '../grpc/validate.js';
import type { Backends } from '../backends/registry.js';
import { decideNodePublish, isReadOnlyMode, requireCapability, type VolumeCapability } from '../volumes/access.js';
import { toBytes } from '../volumes/capacity.js';
import { parseVolumeId } from '../volumes/ids.js';
import { DATA_DIR } from '../volumes/store.js';
import { run } from '../util/exec.js';
import { withTimeout } from '../util/time.js';
import { isReadOnly, mountAt, readMountTable, bindsOf, sourceMatches } from './mount-table.js';
import type { Mounter } from './mounter.js';
import { probeMount } from './probe.js';

const STATS_TIMEOUT_MS = 5_000;
const LOCAL_FS_TIMEOUT_MS = 5_000;

const CAPABILITIES = ['STAGE_UNSTAGE_VOLUME', 'GET_VOLUME_STATS', 'EXPAND_VOLUME', 'VOLUME_CONDITION', 'SINGLE_NODE_MULTI_WRITER', 'VOLUME_MOUNT_GROUP'];

export interface NodeOptions {
  nodeId: string;
  maxVolumesPerNode: number;
  /** Called by NodeGetInfo: (re-)registers this node with every backend. */
  register(): Promise<void>;
}

type Stage = { volume_id: string; staging_target_path: string; volume_capability: VolumeCapability };
type Publish = Stage & { target_path: string; readonly: boolean };

/**
 * The Node service. What is mounted where is read from the mount table on every call, never kept
 * in memory: a restarted plugin sees exactly what the kernel has.
 */
export function nodeRpcs(backends: Backends, mounter: Mounter, options: NodeOptions): Record<string, Rpc> {
  /** The backend and the mount source of a volume ID, or NOT_FOUND. */
  const volumeOf = (id: string) => {
    const ref = parseVolumeId(id);
    const store = ref && backends.get(ref.backend);
    if (!ref || !store) throw notFound(`volume ${id} does not exist: tether did not make this ID`);
    return { ref, backend: store.backend, source: store.backend.mountSpec(ref.dir, { flags: [], readonly: false }).source };
  };

  /** The mount of volume `id` at `target`, checked to be that volume's; NOT_FOUND if absent. */
  const volumeMountAt = async (id: string, target: string, signal: AbortSignal) => {
    const { source } = volumeOf(id);
    const table = await readMountTable(signal);
    const entry = mountAt(table, path.resolve(target));
    if (!entry) throw notFound(`volume ${id} is not mounted at ${target}`);
    if (!sourceMatches(entry, source)) throw notFound(`${target} holds ${entry.source}, not volume ${id}`);
    return { entry, table };
  };

  /** How to mount a volume at its staging path, for the capability the CO asks with (checked against the allowlist). */
  const stagingSpec = (req: Stage) => {
    const { ref, backend } = volumeOf(req.volume_id);
    const mode = requireCapability(req.volume_capability, 'volume_capability');
    const flags = req.volume_capability.mount?.mount_flags ?? [];
    backend.checkMountOptions(flags);
    return backend.mountSpec(ref.dir, { flags, readonly: isReadOnlyMode(mode), group: mountGroup(req.volume_capability) });
  };

  /**
   * Mounts `spec` at `staging`, unless it is there and answering. A mount that is gone for good
   * (stale file handle, dead FUSE daemon) is replaced; one whose server merely does not answer is
   * kept — it heals when the server is back, with the writes still queued on it — and the call
   * fails with UNAVAILABLE so the CO retries.
   */
  const stageAt = async (spec: MountSpec, staging: string, signal: AbortSignal, log: Logger) => {
    const existing = mountAt(await readMountTable(signal), staging);
    if (existing) {
      if (!sourceMatches(existing, spec.source)) throw alreadyExists(`${staging} already holds another mount (${existing.source})`);
      const health = await probeMount(staging, STATS_TIMEOUT_MS, signal);
      if (health.ok) return grantGroup(spec, staging, signal);
      if (health.kind !== 'gone') throw notAnswering(staging, health.reason);
      log.warn({ staging, reason: health.reason }, 'staged mount is gone for good; mounting it again');
      await mounter.unmount(existing, signal, { force: true });
    }
    await withTimeout(mkdir(staging, { recursive: true }), LOCAL_FS_TIMEOUT_MS, `mkdir ${staging}`);
    await mounter.mount(spec, staging, signal);
    await grantGroup(spec, staging, signal);
  };

  return {
    NodeGetCapabilities: { quiet: true, handle: async () => ({ capabilities: CAPABILITIES.map((type) => ({ rpc: { type } })) }) },

    NodeGetInfo: {
      quiet: true,
      async handle() {
        await options.register();
        return { node_id: options.nodeId, max_volumes_per_node: String(options.maxVolumesPerNode), accessible_topology: null };
      },
    },

    NodeStageVolume: {
      validate(req: Stage) {
        requireField(req.volume_id, 'volume_id');
        requireField(req.staging_target_path, 'staging_target_path');
        requireCapability(req.volume_capability, 'volume_capability');
      },
      lockKey: (req) => req.volume_id,
      async handle(req: Stage, { signal, log }) {
        await stageAt(stagingSpec(req), path.resolve(req.staging_target_path), signal, log);
        return {};
      },
    },

    NodeUnstageVolume: {
      validate(req: { volume_id: string; staging_target_path: string }) {
        requireField(req.volume_id, 'volume_id');
        requireField(req.staging_target_path, 'staging_target_path');
      },
      lockKey: (req) => req.volume_id,
      async handle(req: { volume_id: string; staging_target_path: string }, { signal }) {
        const staging = path.resolve(req.staging_target_path);
        const table = await readMountTable(signal);
        const entry = mountAt(table, staging);
        if (entry) {
          const published = bindsOf(table, entry).map((m) => m.target);
          if (published.length) throw precondition(`volume is still published at ${published.join(', ')}; unpublish it first`);
          await mounter.unmount(entry, signal, { force: true });
        }
        await mounter.removeSecrets(staging);
        return {};
      },
    },

    NodePublishVolume: {
      validate(req: Publish) {
        requireField(req.volume_id, 'volume_id');
        requireField(req.staging_target_path, 'staging_target_path');
        requireField(req.target_path, 'target_path');
        requireCapability(req.volume_capability, 'volume_capability');
      },
      lockKey: (req) => req.volume_id,
      async handle(req: Publish, { signal, log }) {
        const mode = requireCapability(req.volume_capability, 'volume_capability');
        const readonly = Boolean(req.readonly) || isReadOnlyMode(mode);
        const target = path.resolve(req.target_path);
        const stagedMount = () =>
          volumeMountAt(req.volume_id, req.staging_target_path, signal).catch((err: unknown) => {
            throw err instanceof Error && /not mounted/.test(err.message) ? precondition(`volume ${req.volume_id} is not staged at ${req.staging_target_path}; call NodeStageVolume first`) : err;
          });
        let { entry: staged, table } = await stagedMount();
        // A pod restart is how a user recovers a volume whose server went away for good (stale handle):
        // the staging mount is made again here, from the same capability NodeStage had.
        const health = await probeMount(staged.target, STATS_TIMEOUT_MS, signal);
        if (!health.ok) {
          if (health.kind !== 'gone') throw notAnswering(staged.target, health.reason);
          await stageAt(stagingSpec(req), staged.target, signal, log);
          ({ entry: staged, table } = await stagedMount());
        }
        const current = mountAt(table, target);
        if (current) {
          if (current.device === staged.device && isReadOnly(current) === readonly) return {};
          const stale = current.device !== staged.device && sourceMatches(current, staged.source) && (await probeMount(target, STATS_TIMEOUT_MS, signal)).ok === false;
          if (!stale) throw alreadyExists(`${target} is already mounted (${current.source}${isReadOnly(current) ? ', read-only' : ''}) and differs from this request`);
          log.warn({ target }, 'target still holds the volume\'s old, broken mount; replacing it');
          await mounter.unmount(current, signal);
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
        return {};
      },
    },

    NodeUnpublishVolume: {
      validate(req: { volume_id: string; target_path: string }) {
        requireField(req.volume_id, 'volume_id');
        requireField(req.target_path, 'target_path');
      },
      lockKey: (req) => req.volume_id,
      async handle(req: { volume_id: string; target_path: string }, { signal, log }) {
        const target = path.resolve(req.target_path);
        for (let entry = mountAt(await readMountTable(signal), target); entry; entry = mountAt(await readMountTable(signal), target)) {
          await mounter.unmount(entry, signal);
        }
        await withTimeout(rmdir(target), LOCAL_FS_TIMEOUT_MS, `rmdir ${target}`).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') log.warn({ target, err: err.message }, 'target path left in place: it is not an empty directory');
        });
        return {};
      },
    },

    NodeGetVolumeStats: {
      validate(req: { volume_id: string; volume_path: string }) {
        requireField(req.volume_id, 'volume_id');
        requireField(req.volume_path, 'volume_path');
      },
      async handle(req: { volume_id: string; volume_path: string }, { signal }) {
        const { entry } = await volumeMountAt(req.volume_id, req.volume_path, signal);
        const health = await probeMount(entry.target, STATS_TIMEOUT_MS, signal);
        if (!health.ok) return { usage: [], volume_condition: { abnormal: true, message: `volume is not usable: ${health.reason}${health.kind === 'gone' ? ' (the mount cannot recover by itself: restarting the pod mounts the volume again)' : ''}` } };
        const u = health.usage;
        return {
          usage: [
            { unit: 'BYTES', total: String(u.totalBytes), available: String(u.availableBytes), used: String(u.usedBytes) },
            { unit: 'INODES', total: String(u.totalInodes), available: String(u.freeInodes), used: String(u.usedInodes) },
          ],
          volume_condition: { abnormal: false, message: 'volume is mounted and answering' },
        };
      },
    },

    NodeExpandVolume: {
      validate(req: { volume_id: string; volume_path: string }) {
        requireField(req.volume_id, 'volume_id');
        requireField(req.volume_path, 'volume_path');
      },
      async handle(req: { volume_id: string; volume_path: string; capacity_range?: { required_bytes?: string } }, { signal }) {
        await volumeMountAt(req.volume_id, req.volume_path, signal);
        // A directory on a network filesystem has no size of its own to grow: the new size is recorded by the controller.
        return { capacity_bytes: String(toBytes(req.capacity_range?.required_bytes, 'capacity_range.required_bytes')) };
      },
    },
  };
}

/** A staged volume whose server does not answer: kept mounted, so it heals with its queued writes; the CO retries. */
const notAnswering = (staging: string, reason: string) =>
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
    throw precondition(`cannot give ${dir} to the pod's fsGroup ${gid}: ${(err as Error).message}; the server must let this node's root change the directory (no root squash), or the share must already belong to that group`);
  }
}

/** VOLUME_MOUNT_GROUP: the fsGroup Kubernetes sends, as a numeric group ID. */
function mountGroup(cap: VolumeCapability): number | undefined {
  const group = cap.mount?.volume_mount_group;
  if (!group) return undefined;
  if (!/^\d{1,10}$/.test(group)) throw invalid(`volume_mount_group must be a numeric group ID, got "${group}"`);
  return Number(group);
}

