import type { MetricsSink } from '../grpc/metrics-sink.js';
import type { LeaseWatch } from '../volumes/lease.js';
import type { Backends } from '../volumes/registry.js';

/** What every controller RPC works with. */
export interface ControllerDeps {
  backends: Backends;
  /** The clock of records' timestamps (tests set it). */
  now: () => Date;
  /** This process's watch over nodes' leases: a ControllerPublish takes over only a lease it saw lapse. */
  watch: LeaseWatch;
  metrics: MetricsSink;
}
