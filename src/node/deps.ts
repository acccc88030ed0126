import type { Mounter } from '../mounts/mounter.js';
import type { Backends } from '../volumes/registry.js';
import type { ClaimKeeper } from './claim-keeper.js';

/** What every node RPC works with. */
export interface NodeDeps {
  backends: Backends;
  mounter: Mounter;
  nodeId: string;
  maxVolumesPerNode: number;
  /** Lets go of this node's claims: of volumes a CO left staged with no workload, and those NodeUnstage could not reach the backend for. */
  claims: ClaimKeeper;
  /** Called by NodeGetInfo: (re-)registers this node with every backend. */
  register(): Promise<void>;
}
