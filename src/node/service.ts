import { mkdir, rmdir } from 'node:fs/promises';
import path from 'node:path';
import type { Rpc } from '../grpc/pipeline.js';
import { alreadyExists, invalid, notFound, precondition } from '../grpc/errors.js';
import { requireField } from '../grpc/validate.js';
import type { Backends } from '../backends/registry.js';
import { decideNodePublish, isReadOnlyMode, requireCapability, type VolumeCapability } from '../volumes/access.js';
import { toBytes } from '../volumes/capacity.js';
import { parseVolumeId } from '../volumes/ids.js';
import { DATA_DIR } from '../volumes/store.js';
import { withTimeout } from '../util/time.js';
import { isReadOnly, mountAt, readMountTable, sameDevice, sourceMatches } from './mount-table.js';
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
        const { ref, backend } = volumeOf(req.volume_id);
        const mode = requireCapability(req.volume_capability, 'volume_capability');
        const flags = req.volume_capability.mount?.mount_flags ?? [];
        backend.checkMountOptions(flags);
        const spec = backend.mountSpec(ref.dir, { flags, readonly: isReadOnlyMode(mode), group: mountGroup(req.volume_capability) });
        const staging = path.resolve(req.staging_target_path);
        const existing = mountAt(await readMountTable(signal), staging);
        if (existing) {
          if (!sourceMatches(existing, spec.source)) throw alreadyExists(`${staging} already holds another mount (${existing.source})`);
          const health = await probeMount(staging, STATS_TIMEOUT_MS, signal);
          if (health.ok) return {};
          log.warn({ staging, reason: health.reason }, 'staged mount is broken; mounting it again');
          await mounter.unmount(existing, signal, { force: true });
        }
        await withTimeout(mkdir(staging, { recursive: true }), LOCAL_FS_TIMEOUT_MS, `mkdir ${staging}`);
        await mounter.mount(spec, staging, signal);
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
          const published = sameDevice(table, entry.device, staging).map((m) => m.target);
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
      async handle(req: Publish, { signal }) {
        const mode = requireCapability(req.volume_capability, 'volume_capability');
        const readonly = Boolean(req.readonly) || isReadOnlyMode(mode);
        const target = path.resolve(req.target_path);
        const { entry: staged, table } = await volumeMountAt(req.volume_id, req.staging_target_path, signal).catch((err: unknown) => {
          throw err instanceof Error && /not mounted/.test(err.message) ? precondition(`volume ${req.volume_id} is not staged at ${req.staging_target_path}; call NodeStageVolume first`) : err;
        });
        const current = mountAt(table, target);
        if (current) {
          if (current.device === staged.device && isReadOnly(current) === readonly) return {};
          throw alreadyExists(`${target} is already mounted (${current.source}${isReadOnly(current) ? ', read-only' : ''}) and differs from this request`);
        }
        decideNodePublish(sameDevice(table, staged.device, staged.target).map((m) => m.target), mode);
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
        if (!health.ok) return { usage: [], volume_condition: { abnormal: true, message: `volume is not usable: ${health.reason}` } };
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

/** VOLUME_MOUNT_GROUP: the fsGroup Kubernetes sends, as a numeric group ID. */
function mountGroup(cap: VolumeCapability): number | undefined {
  const group = cap.mount?.volume_mount_group;
  if (!group) return undefined;
  if (!/^\d{1,10}$/.test(group)) throw invalid(`volume_mount_group must be a numeric group ID, got "${group}"`);
  return Number(group);
}

