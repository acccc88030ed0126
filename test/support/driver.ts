import { mkdtemp, rm, writeFile, access } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { stringify } from 'yaml';
import type { Container } from './container.js';
import type { SshServer } from './sshd.js';

/** dist/src/main.js, next to this compiled file's dist/test/support/. */
export const DRIVER_MAIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/main.js');

export interface DriverOptions {
  nodeId?: string;
  mode?: 'all' | 'controller' | 'node' | 'docker';
  /** sshfs options for the backend: tests use fast keep-alives so a dead server shows within seconds. */
  mountOptions?: string[];
  maxVolumesPerNode?: number;
  metricsAddress?: string;
  extraConfig?: Record<string, unknown>;
  logLevel?: string;
  /** Run the driver in this network namespace (and a mount namespace of its own: `ip netns exec`). */
  netns?: string;
  /** More command-line flags (e.g. --kubelet-registration-dir DIR, --health-address HOST:PORT). */
  extraArgs?: string[];
  /** Run the driver inside this "container" (see container.ts): killing the container kills it and everything it started. */
  container?: Container;
  /** --mount-keeper: the mount keeper's endpoint (unix:///…). */
  mountKeeper?: string;
  /** Flags for node itself, before the script (e.g. --cpu-prof). */
  nodeArgs?: string[];
}

export interface RunningDriver {
  socket: string;
  endpoint: string;
  configFile: string;
  dir: string;
  process: ResultPromise;
  /** Everything the driver logged so far (pino JSON lines). */
  logs(): string;
  stop(): Promise<void>;
}

/** The tether config for one sshfs backend served by `server`. */
export function backendConfig(server: SshServer, name = 'box', mountOptions = ['ServerAliveInterval=2', 'ServerAliveCountMax=2']) {
  return {
    name,
    type: 'sshfs',
    host: server.host,
    port: server.port,
    user: server.user,
    path: server.root,
    hostKey: server.hostKey,
    privateKeyFile: server.clientKeyFile,
    mountOptions,
  };
}

/**
 * The tether config for an NFS backend on the server the NFS harness runs (test/nfs/uml-run.sh sets
 * NFS_SERVER and NFS_SHARE in the guest).
 */
export function nfsBackendConfig(name = 'nfs', mountOptions: string[] = []) {
  const server = process.env.NFS_SERVER;
  const share = process.env.NFS_SHARE;
  if (!server || !share) throw new Error('NFS_SERVER and NFS_SHARE are not set: NFS tests run inside the guest of test/nfs/uml-run.sh');
  return { name, type: 'nfs', server, share, mountOptions };
}

/** Starts `tether-csi` as a child process against the sshfs `server` and waits until its socket answers. */
export function startDriver(server: SshServer, options: DriverOptions = {}): Promise<RunningDriver> {
  return startDriverWith([backendConfig(server, 'box', options.mountOptions)], options);
}

/** Starts `tether-csi` with these backends (configs as in the YAML file) and waits until its socket answers. */
export async function startDriverWith(backends: object[], options: DriverOptions = {}): Promise<RunningDriver> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tether-driver-'));
  const socket = path.join(dir, 'csi.sock');
  const configFile = path.join(dir, 'config.yaml');
  await writeFile(
    configFile,
    stringify({
      runtimeDir: path.join(dir, 'run'),
      maxVolumesPerNode: options.maxVolumesPerNode ?? 0,
      backends,
      ...options.extraConfig,
    }),
  );
  const args = [DRIVER_MAIN, '--endpoint', `unix://${socket}`, '--mode', options.mode ?? 'all', '--config', configFile, '--log-level', options.logLevel ?? 'debug'];
  if (options.mode !== 'controller') args.push('--node-id', options.nodeId ?? 'node-a');
  if (options.metricsAddress) args.push('--metrics-address', options.metricsAddress);
  if (options.extraArgs) args.push(...options.extraArgs);
  if (options.mountKeeper) args.push('--mount-keeper', options.mountKeeper);
  const node = ['node', ...(options.nodeArgs ?? [])];
  const command = options.netns ? ['ip', 'netns', 'exec', options.netns, ...node, ...args] : [...node, ...args];
  const [program, argv] = options.container ? options.container.wrap(command[0]!, command.slice(1)) : [command[0]!, command.slice(1)];
  const child = execa(program, argv, { reject: false, stdin: 'ignore', all: true, buffer: false });
  let output = '';
  child.all?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  // Generous: under user-mode Linux a cold start reads node_modules through hostfs (5-20 s measured).
  const deadline = Date.now() + 60_000;
  while (!(await access(socket).then(() => true, () => false))) {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      await child; // its output read to the end
      await rm(dir, { recursive: true, force: true });
      throw new Error(`driver did not start (exit code ${child.exitCode}, signal ${child.signalCode}):\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    socket,
    endpoint: `unix://${socket}`,
    configFile,
    dir,
    process: child,
    logs: () => output,
    async stop() {
      child.kill('SIGTERM');
      await child;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The driver's log so far as parsed JSON lines (lines that are not JSON are skipped). */
export function logLines(driver: RunningDriver): Record<string, unknown>[] {
  return driver
    .logs()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Waits until the driver logs a line for which `match` holds and returns it; fails after `timeoutMs` or when the driver exits. */
export async function waitForLog(driver: RunningDriver, match: (line: Record<string, unknown>) => boolean, timeoutMs = 15_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = logLines(driver).find(match);
    if (found) return found;
    if (driver.process.exitCode !== null || driver.process.signalCode !== null || Date.now() > deadline) {
      throw new Error(`the driver logged no such line (exit code ${driver.process.exitCode}, signal ${driver.process.signalCode}); its log:\n${driver.logs().slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
