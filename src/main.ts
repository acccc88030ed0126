#!/usr/bin/env node
import { pino, type Logger } from 'pino';
import path from 'node:path';
import { ConfigError, loadConfig, readBackendConfig, type Config, type DockerPluginConfig } from './config.js';
import { SshfsBackend } from './backends/sshfs.js';
import { NfsBackend } from './backends/nfs.js';
import { KeyedLocks } from './grpc/locks.js';
import { QUIET_METRICS, type MetricsSink } from './grpc/metrics-sink.js';
import { loadCsiRoot } from './grpc/proto.js';
import { buildRedactor } from './grpc/redact.js';
import { buildRequestLimits } from './grpc/limits.js';
import type { ServiceSet } from './grpc/rpc.js';
import { serve } from './grpc/server.js';
import { identityService, VERSION } from './identity.js';
import type { NodePlugin } from './node-plugin.js';
import type { PipelineDeps } from './grpc/pipeline.js';
import { monotonicMs } from './util/time.js';
import { LeaseWatch } from './volumes/lease.js';
import { Backends } from './volumes/registry.js';

// What only some modes or flags need is imported when they do (dynamic imports: chunks of the
// bundle that a process of another mode never reads or compiles; see test/tools/bundle.mjs).

const REGISTER_RETRY_MS = 30_000;
/** The collector of orphans runs this long after start, then at this interval. */
const COLLECT_FIRST_MS = 5 * 60_000;
const COLLECT_EVERY_MS = 3_600_000;
/** How often the mount keeper removes the key copies of mounts that are gone. */
const KEEPER_SWEEP_MS = 60_000;

async function main(): Promise<void> {
  const config = await loadConfig(process.argv.slice(2));
  const log = pino({ level: config.logLevel, base: { driver: config.driverName, node: config.nodeId || undefined } });
  if (config.mode === 'keeper') return runKeeper(config, log.child({ component: 'mount-keeper' }));
  const backends = new Backends(
    await Promise.all(
      config.backends.map(async (b) => (b.type === 'nfs' ? new NfsBackend(b, config.runtimeDir, log) : new SshfsBackend(b, config.privateKeys.get(b.name)!, log))),
    ),
    log,
  );
  // prom-client only when its metrics are served.
  const prometheus = config.metricsAddress ? new (await import('./grpc/metrics.js')).Metrics() : undefined;
  const metrics: MetricsSink = prometheus ?? QUIET_METRICS;
  const register = registration(config, backends, log);

  const services: ServiceSet = { Identity: identityService(config.driverName, config.mode !== 'node') };
  const watch = new LeaseWatch(config.lease.termMs, monotonicMs);
  if (config.mode !== 'node') {
    const [{ controllerService }, { groupControllerService }] = await Promise.all([import('./controller/service.js'), import('./controller/group-snapshots.js')]);
    collectPeriodically(backends, log);
    const deps = { backends, now: () => new Date(), watch, metrics };
    services.Controller = controllerService(deps);
    services.GroupController = groupControllerService(deps);
  }
  const locks = new KeyedLocks();
  const node = config.mode === 'controller' ? undefined : await (await import('./node-plugin.js')).startNodePlugin(config, { backends, locks, metrics, watch, register, log });
  if (node) services.Node = node.service;
  const root = loadCsiRoot();
  const pipeline = { log, metrics, locks, redact: buildRedactor(root).redact, checkLimits: buildRequestLimits(root), maxCallMs: 300_000 };
  const metricsServer = prometheus && config.metricsAddress ? await prometheus.serve(config.metricsAddress) : undefined;
  if (config.docker) {
    await runDocker(config, config.docker, { backends, services, pipeline, metrics, log, node: node!, metricsServer });
    return void register().catch(() => undefined);
  }
  const server = await serve(config.socketPath, services, pipeline);
  const healthServer = config.healthAddress ? await (await import('./grpc/health.js')).serveHealth(config.healthAddress, config.socketPath, log) : undefined;
  // Last, once the CSI socket answers: the kubelet calls NodeGetInfo as soon as it has registered the driver.
  const kubelet = config.kubeletRegistration ? await (await import('./grpc/kubelet-registration.js')).serveRegistration({ ...config.kubeletRegistration, driverName: config.driverName, log }) : undefined;
  log.info(
    { version: VERSION, mode: config.mode, endpoint: config.endpoint, backends: backends.names(), metrics: metricsServer?.url, health: healthServer?.url, registration: kubelet?.socketPath, mountKeeper: config.mountKeeper },
    'tether is serving',
  );
  if (config.mode !== 'controller') void register().catch(() => undefined);

  const shutdown = (signal: string) => {
    log.info({ signal }, 'shutting down; mounts stay in place');
    kubelet?.close(); // first: the kubelet unregisters the driver before its socket goes
    server.tryShutdown(() => undefined);
    healthServer?.server.close();
    node?.close();
    metricsServer?.server.close();
    void backends.close().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 5000).unref();
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

/**
 * `--mode docker`: Docker's volume plugin protocol on its socket, over this process's own Controller
 * and Node services (called in-process, through the same pipeline); no CSI socket.
 */
async function runDocker(config: Config, docker: DockerPluginConfig, parts: { backends: Backends; services: ServiceSet; pipeline: PipelineDeps; metrics: MetricsSink; log: Logger; node: NodePlugin; metricsServer?: { server: { close(): void }; url: string } }): Promise<void> {
  const [{ runDockerPlugin }, { inProcessCsi }] = await Promise.all([import('./docker-plugin.js'), import('./grpc/in-process.js')]);
  const { log, node, metricsServer } = parts;
  const plugin = await runDockerPlugin({ config: docker, socketPath: config.socketPath, runtimeDir: config.runtimeDir, host: config.nodeId, backends: parts.backends, csi: inProcessCsi(parts.services, parts.pipeline), metrics: parts.metrics, log });
  log.info({ version: VERSION, mode: config.mode, socket: config.socketPath, host: config.nodeId, backends: parts.backends.names(), mountRoot: docker.mountRoot, metrics: metricsServer?.url }, 'tether is serving Docker');
  const shutdown = (signal: string) => {
    log.info({ signal }, 'shutting down; mounts stay in place');
    plugin.close();
    node.close();
    metricsServer?.server.close();
    void parts.backends.close().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 5000).unref();
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

/**
 * `--mode keeper`: the mount keeper. It holds the node's sshfs mounts (their daemons are its children)
 * so that they outlive the node plugin; it reads the config file again at every Mount. Nothing else:
 * no CSI, no backend sessions, no metrics — it is meant to be updated rarely.
 */
async function runKeeper(config: Config, log: Logger): Promise<void> {
  const [{ Mounter }, { KeeperService }, { serveKeeper }] = await Promise.all([import('./mounts/mounter.js'), import('./keeper/service.js'), import('./keeper/server.js')]);
  const mounter = new Mounter(path.join(config.runtimeDir, 'keeper'), log);
  const service = new KeeperService({ mounter, allowedRoots: config.keeperAllowedRoots, readConfig: () => readBackendConfig(config.configPath), version: VERSION, log });
  await service.sweep(log);
  const server = await serveKeeper(config.socketPath, service, log);
  const sweeper = setInterval(() => void service.sweep(log).catch((err: Error) => log.warn({ err: err.message }, 'could not sweep key copies')), KEEPER_SWEEP_MS);
  sweeper.unref();
  log.info({ version: VERSION, endpoint: config.endpoint, allowedRoots: config.keeperAllowedRoots, runtimeDir: mounter.runtimeDir }, 'the mount keeper is serving');
  const shutdown = (signal: string) => {
    log.info({ signal }, 'mount keeper shutting down; its mounts stay, but their daemons end with its container');
    clearInterval(sweeper);
    server.tryShutdown(() => process.exit(0));
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

/** Removes orphans (see collectOrphans) a few minutes after start, then every hour; one run at a time, never failing the process. */
function collectPeriodically(backends: Backends, log: Logger): void {
  let running = false;
  const runOnce = async () => {
    if (running) return;
    running = true;
    const { COLLECTOR_LIMITS, collectOrphans } = await import('./volumes/collector.js');
    for (const store of backends.all()) {
      await collectOrphans(store, new Date(), COLLECTOR_LIMITS, log).catch((err: unknown) => log.warn({ backend: store.backend.name, err: (err as Error).message }, 'the collector of orphans could not finish; it tries again in an hour'));
    }
    running = false;
  };
  setTimeout(() => {
    void runOnce();
    setInterval(() => void runOnce(), COLLECT_EVERY_MS).unref();
  }, COLLECT_FIRST_MS).unref();
}

/**
 * Registers this node with every backend (a small record under .nodes/), so that the controller —
 * wherever it runs — can tell a real node ID from a wrong one. Retried in the background until done:
 * one attempt at a time and one pending retry, however often NodeGetInfo asks.
 */
function registration(config: Config, backends: Backends, log: Logger): () => Promise<void> {
  if (config.mode === 'controller') return async () => undefined;
  let running: Promise<void> | undefined;
  let retry: NodeJS.Timeout | undefined;
  const attempt = async () => {
    const results = await Promise.allSettled(backends.all().map((s) => s.registerNode(config.nodeId, config.maxVolumesPerNode, new Date())));
    const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [`${backends.all()[i]!.backend.name}: ${(r.reason as Error).message}`] : []));
    if (!failed.length) return;
    log.warn({ failed }, `node registration failed; retrying in ${REGISTER_RETRY_MS / 1000} s`);
    retry ??= setTimeout(() => {
      retry = undefined;
      void register();
    }, REGISTER_RETRY_MS).unref();
  };
  const register = () => (running ??= attempt().finally(() => (running = undefined)));
  return register;
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`tether-csi: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`tether-csi: cannot start: ${(err as Error).message}\n`);
  process.exit(1);
});
