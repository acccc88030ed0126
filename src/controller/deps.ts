import type { Backends } from '../volumes/registry.js';

/** What every controller RPC works with. */
export interface ControllerDeps {
  backends: Backends;
  /** The clock of records' timestamps (tests set it). */
  now: () => Date;
}
