import type { NodeRpcs } from '../grpc/rpc.js';
import type { NodeDeps } from './deps.js';
import { withTimeout } from '../util/time.js';
import { publishVolume, unpublishVolume } from './publish.js';
import { stageVolume, unstageVolume } from './stage.js';
import { expandVolume, volumeStats } from './stats.js';

/** How long NodeGetInfo waits for the node's registration with the backends. */
const REGISTER_WAIT_MS = 3_000;

const NODE_CAPABILITIES = ['STAGE_UNSTAGE_VOLUME', 'GET_VOLUME_STATS', 'EXPAND_VOLUME', 'VOLUME_CONDITION', 'SINGLE_NODE_MULTI_WRITER', 'VOLUME_MOUNT_GROUP'] as const;

/**
 * The Node service, one RPC per method of the proto's Node service. What is mounted where is read
 * from the mount table on every call, never kept in memory: a restarted plugin sees exactly what
 * the kernel has.
 */
export function nodeService(deps: NodeDeps): NodeRpcs {
  return {
    NodeGetCapabilities: { quiet: true, handle: async () => ({ capabilities: NODE_CAPABILITIES.map((type) => ({ rpc: { type } })) }) },
    NodeGetInfo: {
      quiet: true,
      async handle() {
        // Registered by the time the CO publishes, as a rule; a backend that does not answer must not hold
        // NodeGetInfo up (Swarm asks every 20 s, the kubelet at registration): the registration goes on behind.
        await withTimeout(deps.register(), REGISTER_WAIT_MS, 'registering the node').catch(() => undefined);
        return { node_id: deps.nodeId, max_volumes_per_node: String(deps.maxVolumesPerNode), accessible_topology: null };
      },
    },
    NodeStageVolume: stageVolume(deps),
    NodeUnstageVolume: unstageVolume(deps),
    NodePublishVolume: publishVolume(deps),
    NodeUnpublishVolume: unpublishVolume(deps),
    NodeGetVolumeStats: volumeStats(deps),
    NodeExpandVolume: expandVolume(deps),
  };
}
