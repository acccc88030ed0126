import type { NodeRpcs } from '../grpc/rpc.js';
import { requireFields } from '../grpc/validate.js';
import { probeMount } from '../mounts/probe.js';
import { toBytes } from '../volumes/capacity.js';
import type { NodeDeps } from './deps.js';
import { PROBE_TIMEOUT_MS, volumeMountAt } from './volume-mounts.js';

/**
 * NodeGetVolumeStats: bytes and inodes of the volume's mount, from statfs in a child process with a
 * timeout; a mount that does not answer is reported abnormal, saying whether it can heal by itself,
 * and a fenced one says why it was fenced.
 */
export function volumeStats({ backends, leases, mounter, recovery, workload }: NodeDeps): NodeRpcs['NodeGetVolumeStats'] {
  return {
    validate: (req) => requireFields(req, 'volume_id', 'volume_path'),
    async handle(req, { signal }) {
      const { entry } = await volumeMountAt(backends, req.volume_id, req.volume_path, signal);
      const fence = await leases.fenceOf(req.volume_id);
      if (fence) {
        const message = `volume was fenced on this node at ${fence.at}: ${fence.reason}; writes fail with I/O errors and nothing buffered here reaches the server; restart the ${workload} to stage it again (another node may hold it now)`;
        return { usage: [], volume_condition: { abnormal: true, message } };
      }
      const health = await probeMount(entry.target, PROBE_TIMEOUT_MS, signal);
      if (!health.ok) {
        if (health.kind === 'gone') recovery.soon(); // its FUSE daemon may have died: mounted again if tether noted how
        const hint = health.kind === 'gone' ? await goneHint(mounter, entry.fstype, workload, signal) : '';
        return { usage: [], volume_condition: { abnormal: true, message: `volume is not usable: ${health.reason}${hint}` } };
      }
      const u = health.usage;
      return {
        usage: [
          { unit: 'BYTES', total: String(u.totalBytes), available: String(u.availableBytes), used: String(u.usedBytes) },
          { unit: 'INODES', total: String(u.totalInodes), available: String(u.freeInodes), used: String(u.usedInodes) },
        ],
        volume_condition: { abnormal: false, message: 'volume is mounted and answering' },
      };
    },
  };
}

/** What a mount that can never answer again waits for: the mount keeper, if it does not answer; else tether's recovery, or a restart of the workload. */
async function goneHint(mounter: NodeDeps['mounter'], fstype: string, workload: string, signal: AbortSignal): Promise<string> {
  if (!fstype.startsWith('fuse')) return ` (the mount cannot recover by itself: restarting the ${workload} mounts the volume again)`;
  const down = await mounter.unavailable(signal);
  if (down) return `; ${down} The volume is mounted again once the keeper answers`;
  return ` (its FUSE daemon is gone: tether mounts a volume it staged again by itself within seconds, binding its targets again; a container sees the new mount only with mountPropagation HostToContainer, else restarting the ${workload} does it)`;
}

/** NodeExpandVolume: a directory on a network filesystem has no size of its own to grow; the controller records the new size. */
export function expandVolume({ backends }: NodeDeps): NodeRpcs['NodeExpandVolume'] {
  return {
    validate: (req) => requireFields(req, 'volume_id', 'volume_path'),
    async handle(req, { signal }) {
      await volumeMountAt(backends, req.volume_id, req.volume_path, signal);
      return { capacity_bytes: String(toBytes(req.capacity_range?.required_bytes, 'capacity_range.required_bytes')) };
    },
  };
}
