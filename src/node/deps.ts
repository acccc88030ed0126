import type { Mounter } from '../mounts/mounter.js';
import type { Backends } from '../volumes/registry.js';

/** What every node RPC works with. */
export interface NodeDeps {
  backends: Backends;
  mounter: Mounter;
  nodeId: string;
  maxVolumesPerNode: number;
  /** Called by NodeGetInfo: (re-)registers this node with every backend. */
  register(): Promise<void>;
}
