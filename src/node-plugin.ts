import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import type { KeyedLocks } from './grpc/locks.js';
import type { MetricsSink } from './grpc/metrics-sink.js';
import type { NodeRpcs } from './grpc/rpc.js';
import { workloadWord } from './config.js';
import { loadCsiRoot } from './grpc/proto.js';
import type { LeaseWatch } from './volumes/lease.js';
import type { Backends } from './volumes/registry.js';

/** How often a node tries again to release a claim whose backend did not answer at NodeUnstage. */
const CLAIM_RETRY_MS = 10_000;
/** How often a node looks for staged FUSE mounts whose daemon died; and while one waits (for the keeper, say). */
const RECOVERY_EVERY_MS = 10_000;
const RECOVERY_RETRY_MS = 1_000;

export interface NodePluginDeps {
  backends: Backends;
  locks: KeyedLocks;
  metrics: MetricsSink;
  watch: LeaseWatch;
  register(): Promise<void>;
  log: Logger;
}

export interface NodePlugin {
  service: NodeRpcs;
  /** Stops the timers (leases, claims, recovery) and the keeper client; mounts stay. */
  close(): void;
}

/**
 * The node side of a plugin (--mode node, all, or docker), started: its mounter (itself, or the mount
 * keeper), its writer leases (resumed first: a volume whose lease lapsed while the plugin was down is
 * fenced, never recovered), its claims and the recovery of dead FUSE mounts. A node that stages for a
 * CSI CO lets go of a claimed volume left idle (releaseIdleAfterSeconds) — under Swarm, of a leased one
 * too, as Swarm never unstages; Docker's plugin does not —
 * its containers' binds are not in the host's mount table, and Docker says when a volume is idle.
 */
export async function startNodePlugin(config: Config, deps: NodePluginDeps): Promise<NodePlugin> {
  const [{ readMountTable }, { Mounter }, { ClaimKeeper }, { LeaseKeeper }, { MountRecovery }, { nodeService }] = await Promise.all([
    import('./mounts/mount-table.js'),
    import('./mounts/mounter.js'),
    import('./node/claim-keeper.js'),
    import('./node/leases.js'),
    import('./node/recovery.js'),
    import('./node/service.js'),
  ]);
  const { backends, locks, metrics, log } = deps;
  const keeperModule = config.mountKeeper ? await import('./keeper/client.js') : undefined;
  const keeper = keeperModule && config.mountKeeper ? new keeperModule.KeeperClient(config.mountKeeper) : undefined;
  // With a mount keeper, sshfs mounts are made and held by it and outlive this process's container.
  const mounter = keeperModule && keeper ? new keeperModule.KeeperMounter(config.runtimeDir, log, keeper) : new Mounter(config.runtimeDir, log);
  const { nodeId, runtimeDir } = config;
  const graceMs = config.mode === 'docker' ? 0 : config.releaseIdleAfterSeconds * 1000;
  const leases = new LeaseKeeper({ backends, mounter, nodeId, terms: config.lease, runtimeDir, metrics, log });
  const releaseLeased = config.orchestrator === 'swarm';
  const claims = new ClaimKeeper({ backends, mounter, locks, nodeId, runtimeDir, graceMs, retryMs: CLAIM_RETRY_MS, leases, releaseLeased, log });
  const recovery = new MountRecovery({ backends, mounter, locks, leases, runtimeDir, metrics, log, intervalMs: RECOVERY_EVERY_MS, retryMs: RECOVERY_RETRY_MS });
  const leaseContext = { watch: deps.watch, termMs: config.lease.termMs };
  const workload = workloadWord(config.orchestrator);
  const service = nodeService({ backends, mounter, claims, leases, recovery, leaseContext, metrics, nodeId, maxVolumesPerNode: config.maxVolumesPerNode, register: deps.register, workload });
  await warnIfFenceIsWeak(log);
  await leases.resume();
  const table = readMountTable();
  loadCsiRoot(); // parsed while the mount table is read
  claims.reconcile(await table);
  await claims.resumeReleases();
  recovery.start();
  return {
    service,
    close() {
      claims.close();
      leases.close();
      recovery.close();
      keeper?.close();
    },
  };
}

/** A node plugin without the capabilities a fence needs would fence weakly (bytes queued for a cut-off server delivered when the link is back): said at start, loudly. */
async function warnIfFenceIsWeak(log: Logger): Promise<void> {
  const { missingFenceCapabilities } = await import('./mounts/fence.js');
  const missing = missingFenceCapabilities(await readFile('/proc/self/status', 'utf8').catch(() => ''));
  if (missing.length) log.warn({ event: 'weak-fence', missing }, `this node plugin lacks ${missing.join(' and ')}: a fence cannot stop everything a cut-off node queued from reaching the server later; give the plugin these capabilities (the Swarm plugin's config.json and the chart do)`);
}
