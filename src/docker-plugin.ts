import path from 'node:path';
import type { Logger } from 'pino';
import type { DockerPluginConfig } from './config.js';
import { DockerVolumeDriver } from './docker/driver.js';
import { MountRefs } from './docker/mount-refs.js';
import { serveDocker, type DockerServer } from './docker/server.js';
import { containersUsing } from './docker/users.js';
import type { InProcessCsi } from './grpc/in-process.js';
import type { MetricsSink } from './grpc/metrics-sink.js';
import type { Backends } from './volumes/registry.js';

/** How often, at most, the plugin looks for mount IDs Docker will not unmount (and at least as often as they turn stray). */
const RECONCILE_EVERY_MS = 60_000;

export interface DockerPluginParts {
  config: DockerPluginConfig;
  socketPath: string;
  runtimeDir: string;
  host: string;
  backends: Backends;
  csi: InProcessCsi;
  metrics: MetricsSink;
  log: Logger;
}

/**
 * `--mode docker`: Docker's volume plugin on this host. The driver (docker/driver.ts) makes its
 * volumes through tether's own Controller and Node services; this wires it to its socket, and checks
 * the mounts it noted against what is there — at start, whenever Docker activates the plugin (a
 * dockerd restart), and every minute (or as often as mount IDs turn stray, if that is sooner).
 */
export async function runDockerPlugin(parts: DockerPluginParts): Promise<{ server: DockerServer; close(): void }> {
  const { config, log } = parts;
  const driver = new DockerVolumeDriver({
    csi: parts.csi,
    backends: parts.backends,
    refs: new MountRefs(path.join(parts.runtimeDir, 'docker-mounts')),
    host: parts.host,
    mountRoot: config.mountRoot,
    mountWaitMs: config.mountWaitMs,
    strayAfterMs: config.strayAfterMs,
    containersUsing,
    now: () => new Date(),
    log,
  });
  const reconcile = oneAtATime(() => driver.reconcile().catch((err: Error) => log.warn({ err: err.message }, 'could not check the noted mounts; trying again in a minute')));
  await reconcile();
  const server = await serveDocker({ socketPath: parts.socketPath, driver, onActivate: () => void reconcile(), metrics: parts.metrics, log });
  const timer = setInterval(() => void reconcile(), Math.min(RECONCILE_EVERY_MS, config.strayAfterMs));
  timer.unref();
  return {
    server,
    close() {
      clearInterval(timer);
      server.close();
    },
  };
}

/** Runs `task` one at a time: a call while it runs gets that run's promise. */
function oneAtATime(task: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  return () => (running ??= task().finally(() => (running = undefined)));
}
