import type { Mounter } from '../mounts/mounter.js';
import type { Backends } from '../volumes/registry.js';
import type { MetricsSink } from '../grpc/metrics-sink.js';
import type { ClaimKeeper } from './claim-keeper.js';
import type { LeaseContext } from './claims.js';
import type { LeaseKeeper } from './leases.js';
import type { MountRecovery } from './recovery.js';

/** What every node RPC works with. */
export interface NodeDeps {
  backends: Backends;
  mounter: Mounter;
  nodeId: string;
  maxVolumesPerNode: number;
  /** Lets go of this node's claims: of volumes a CO left staged with no workload, and those NodeUnstage could not reach the backend for. */
  claims: ClaimKeeper;
  /** Renews this node's leases, and fences a volume whose lease it cannot renew. */
  leases: LeaseKeeper;
  /** Notes what the node staged and published over FUSE, and mounts it again when its daemon dies. */
  recovery: MountRecovery;
  /** This process's watch over other nodes' leases, and the term of the leases it takes. */
  leaseContext: LeaseContext;
  metrics: MetricsSink;
  /** The CO's word for what uses a volume (pod, task, container): messages tell the user what to restart. */
  workload: string;
  /** Called by NodeGetInfo: (re-)registers this node with every backend. */
  register(): Promise<void>;
}
