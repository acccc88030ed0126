import { readFile, realpath, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { backendSchema, type BackendConfig } from './backends/config.js';
import { privateKeyProblem } from './backends/keys.js';
import { registrationSocketPath, registrationSocketProblem } from './grpc/kubelet-registration.js';
import { parseListenAddress } from './util/listen.js';
import { DEFAULT_LEASE_TERMS, leaseTermsProblem, type LeaseTerms } from './volumes/lease.js';

export type Mode = 'all' | 'controller' | 'node' | 'keeper' | 'docker';
const MODES: readonly Mode[] = ['all', 'controller', 'node', 'keeper', 'docker'];

/** The CO that drives this plugin: messages use its words for a workload (pod, task, container). */
export type Orchestrator = 'kubernetes' | 'swarm' | 'docker';
const ORCHESTRATORS: readonly Orchestrator[] = ['kubernetes', 'swarm', 'docker'];
const WORKLOAD: Record<Orchestrator, string> = { kubernetes: 'pod', swarm: 'task', docker: 'container' };
export const workloadWord = (co: Orchestrator) => WORKLOAD[co];

/** CSI plugin names (and csi-sanity's stricter rule): letters at both ends. */
const DRIVER_NAME = /^[a-zA-Z][A-Za-z0-9.-]{0,61}[a-zA-Z]$/;

const fileConfig = z
  .object({
    driverName: z.string().regex(DRIVER_NAME, 'a CSI plugin name such as tether.csi.dev').optional(),
    /** Where node keys and known_hosts files live while a volume is mounted: should be a tmpfs. */
    runtimeDir: z.string().regex(/^\//).default('/run/tether'),
    /** NodeGetInfo's max_volumes_per_node; 0 means no limit. */
    maxVolumesPerNode: z.number().int().min(0).default(0),
    /** Node: how long a claimed volume (a CO without ControllerPublish) may stay staged with no workload before the node unstages it itself; 0 = never. */
    releaseIdleAfterSeconds: z.number().int().min(0).max(86_400).default(30),
    /** Writer leases of exclusively staged volumes (see README, "Single writer"): checked against each other. */
    lease: z
      .object({
        termSeconds: z.number().positive().default(DEFAULT_LEASE_TERMS.termMs / 1000),
        renewSeconds: z.number().positive().default(DEFAULT_LEASE_TERMS.renewMs / 1000),
        fenceMarginSeconds: z.number().positive().default(DEFAULT_LEASE_TERMS.marginMs / 1000),
      })
      .strict()
      .prefault({}),
    /** Docker's plugin (--mode docker): a mount ID no container has used its volume for this long is one Docker will never unmount (its container died in a daemon restart). */
    dockerStrayMountSeconds: z.number().int().min(1).max(86_400).default(60),
    backends: z.array(backendSchema).min(1, 'at least one backend is required'),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    const problem = leaseTermsProblem(leaseTerms(cfg.lease));
    if (problem) ctx.addIssue({ code: 'custom', path: ['lease'], message: problem });
    const seen = new Set<string>();
    cfg.backends.forEach((b, i) => {
      if (seen.has(b.name)) ctx.addIssue({ code: 'custom', path: ['backends', i, 'name'], message: `duplicate backend name "${b.name}"` });
      seen.add(b.name);
    });
  });

export interface Config {
  endpoint: string;
  socketPath: string;
  nodeId: string;
  mode: Mode;
  driverName: string;
  metricsAddress?: string;
  /** Where /healthz is served (--health-address). */
  healthAddress?: string;
  /** Serving the kubelet's plugin registration (--kubelet-registration-dir). */
  kubeletRegistration?: KubeletRegistration;
  logLevel: string;
  runtimeDir: string;
  maxVolumesPerNode: number;
  releaseIdleAfterSeconds: number;
  lease: LeaseTerms;
  backends: BackendConfig[];
  /** The private key of each sshfs backend, by backend name: read and parsed at start. */
  privateKeys: ReadonlyMap<string, Buffer>;
  /** The config file (the mount keeper reads it again at every Mount). */
  configPath: string;
  /** --mode node: the mount keeper's socket (unix:///…), which makes and holds the FUSE mounts; none: the node mounts them itself. */
  mountKeeper?: string;
  /** --mode keeper: the directories it mounts below (realpath'ed when compared); default the kubelet's. */
  keeperAllowedRoots: string[];
  /** --orchestrator (docker with --mode docker): whose words the messages use. */
  orchestrator: Orchestrator;
  /** --mode docker: Docker's volume plugin protocol. */
  docker?: DockerPluginConfig;
}

export interface DockerPluginConfig {
  /** The driver name Docker knows (`docker volume create -d NAME`): the socket is /run/docker/plugins/NAME.sock unless --endpoint says otherwise. */
  pluginName: string;
  /** Where the host mounts volumes: <mountRoot>/<backend>/<directory>. */
  mountRoot: string;
  /** How long a Mount waits for another host or container to let go of a single-writer volume. */
  mountWaitMs: number;
  /** A mount ID no container has used its volume for this long is dropped (dockerStrayMountSeconds). */
  strayAfterMs: number;
}

/** Docker gives a Mount call 2 minutes: the wait must end before that, with room for the mount itself. */
export const MAX_DOCKER_MOUNT_WAIT_S = 100;
const DEFAULT_DOCKER_MOUNT_WAIT_S = 90;
/** A plugin name Docker finds as /run/docker/plugins/NAME.sock and `-d NAME` can say. */
const DOCKER_PLUGIN_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export interface KubeletRegistration {
  /** The kubelet's plugins_registry directory as this process sees it, symlinks resolved. */
  dir: string;
  /** The registration socket in it: <dir>/<driverName>-reg.sock. */
  socketPath: string;
  /** The CSI socket as the kubelet sees it on the host (what GetInfo answers). */
  endpoint: string;
}

/** The kubelet's directory: where a mount keeper may mount unless told otherwise. */
export const DEFAULT_KEEPER_ROOT = '/var/lib/kubelet';

const leaseTerms = (l: { termSeconds: number; renewSeconds: number; fenceMarginSeconds: number }): LeaseTerms => ({
  termMs: Math.round(l.termSeconds * 1000),
  renewMs: Math.round(l.renewSeconds * 1000),
  marginMs: Math.round(l.fenceMarginSeconds * 1000),
});

/** A problem with the command line or the config file: printed as one line, exit code 2. */
export class ConfigError extends Error {}

const USAGE =
  'usage: tether-csi --endpoint unix:///path/csi.sock --node-id NAME --mode all|controller|node|keeper --config FILE [--driver-name NAME] [--orchestrator kubernetes|swarm] [--metrics-address HOST:PORT] [--health-address HOST:PORT] [--kubelet-registration-dir DIR [--kubelet-registration-path PATH]] [--log-level LEVEL] [--mount-keeper unix:///path/keeper.sock] [--keeper-allowed-root DIR ...]; ' +
  "for Docker's volume plugin: tether-csi --mode docker --config FILE [--node-id HOST] [--docker-plugin-name NAME] [--docker-mount-root DIR] [--docker-mount-wait SECONDS] [--metrics-address HOST:PORT] [--log-level LEVEL]";

/** The command line's flags (parseArgs options). */
const FLAGS = {
  endpoint: { type: 'string' },
  'node-id': { type: 'string' },
  mode: { type: 'string', default: 'all' },
  config: { type: 'string' },
  'driver-name': { type: 'string' },
  'metrics-address': { type: 'string' },
  'health-address': { type: 'string' },
  'kubelet-registration-dir': { type: 'string' },
  'kubelet-registration-path': { type: 'string' },
  'log-level': { type: 'string', default: 'info' },
  'mount-keeper': { type: 'string' },
  'keeper-allowed-root': { type: 'string', multiple: true },
  orchestrator: { type: 'string' },
  'docker-plugin-name': { type: 'string' },
  'docker-mount-root': { type: 'string' },
  'docker-mount-wait': { type: 'string' },
} as const;

const parseFlags = (argv: string[]) => parseArgs({ args: argv, strict: true, options: FLAGS }).values;

export async function loadConfig(argv: string[]): Promise<Config> {
  let values: ReturnType<typeof parseFlags>;
  try {
    values = parseFlags(argv);
  } catch (err) {
    throw new ConfigError(`${(err as Error).message}; ${USAGE}`);
  }
  const mode = values.mode as Mode;
  if (!MODES.includes(mode)) throw new ConfigError(`--mode must be ${MODES.slice(0, -1).join(', ')} or ${MODES.at(-1)}, got "${mode}"`);
  const dockerFlagValues = dockerFlags(mode, values);
  const endpoint = dockerFlagValues && !values.endpoint ? `unix:///run/docker/plugins/${dockerFlagValues.pluginName}.sock` : required(values.endpoint, '--endpoint');
  const socketPath = unixSocketPath(endpoint, '--endpoint');
  const orchestrator = orchestratorOf(mode, values.orchestrator);
  const nodeId = values['node-id'] ?? (dockerFlagValues ? hostname() : '');
  if ((mode === 'all' || mode === 'node') && !nodeId) throw new ConfigError(`--node-id is required with --mode ${mode}`);
  const { mountKeeper, keeperAllowedRoots } = keeperFlags(mode, values['mount-keeper'], values['keeper-allowed-root']);
  if (Buffer.byteLength(nodeId) > 256) throw new ConfigError('--node-id must be at most 256 bytes (the CSI limit)');
  const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
  if (!levels.includes(values['log-level']!)) throw new ConfigError(`--log-level must be one of ${levels.join(', ')}`);
  const metricsAddress = listenAddress(values['metrics-address'], '--metrics-address', '0.0.0.0:9810');
  const healthAddress = listenAddress(values['health-address'], '--health-address', '0.0.0.0:9808');
  const metricsPort = metricsAddress && parseListenAddress(metricsAddress)!.port;
  if (metricsPort && metricsPort === (healthAddress && parseListenAddress(healthAddress)!.port)) {
    throw new ConfigError(`--health-address and --metrics-address must use different ports, both use ${metricsPort}`);
  }
  const registrationFlags = { dir: values['kubelet-registration-dir'], path: values['kubelet-registration-path'] };
  checkRegistrationFlags(registrationFlags, mode);
  const file = await readConfigFile(required(values.config, '--config'));
  const docker = dockerFlagValues && { ...dockerFlagValues, strayAfterMs: file.dockerStrayMountSeconds * 1000 };
  const driverName = values['driver-name'] ?? file.driverName ?? 'tether.csi.dev';
  if (!DRIVER_NAME.test(driverName)) throw new ConfigError(`driver name "${driverName}" must start and end with a letter and hold only letters, digits, dots and dashes (at most 63)`);
  const kubeletRegistration = registrationFlags.dir === undefined ? undefined : await kubeletRegistrationOf(registrationFlags.dir, registrationFlags.path ?? socketPath, driverName);
  return {
    endpoint,
    socketPath,
    nodeId,
    mode,
    driverName,
    metricsAddress,
    healthAddress,
    kubeletRegistration,
    logLevel: values['log-level']!,
    runtimeDir: file.runtimeDir,
    maxVolumesPerNode: file.maxVolumesPerNode,
    releaseIdleAfterSeconds: file.releaseIdleAfterSeconds,
    lease: leaseTerms(file.lease),
    backends: file.backends,
    privateKeys: await readPrivateKeys(file.backends, values.config!),
    configPath: values.config!,
    mountKeeper,
    keeperAllowedRoots,
    orchestrator,
    docker,
  };
}

/** --mode docker's own flags (refused with any other mode); undefined for the other modes. */
function dockerFlags(mode: Mode, values: ReturnType<typeof parseFlags>): Omit<DockerPluginConfig, 'strayAfterMs'> | undefined {
  const given = (['docker-plugin-name', 'docker-mount-root', 'docker-mount-wait'] as const).filter((f) => values[f] !== undefined);
  if (mode !== 'docker') {
    if (given.length) throw new ConfigError(`--${given[0]} works with --mode docker only (got --mode ${mode})`);
    return undefined;
  }
  for (const flag of ['health-address', 'kubelet-registration-dir', 'mount-keeper'] as const) {
    if (values[flag] !== undefined) throw new ConfigError(`--${flag} does not work with --mode docker: Docker talks to the plugin over its own socket, and the plugin mounts itself`);
  }
  const pluginName = values['docker-plugin-name'] ?? 'tether';
  if (!DOCKER_PLUGIN_NAME.test(pluginName)) throw new ConfigError(`--docker-plugin-name must be lowercase letters, digits, ".", "_" or "-" (at most 63, starting with a letter or digit), got "${pluginName}"`);
  const mountRoot = (values['docker-mount-root'] ?? '/var/lib/tether/docker').replace(/(.)\/+$/, '$1');
  if (!mountRoot.startsWith('/') || mountRoot === '/') throw new ConfigError(`--docker-mount-root must be an absolute directory other than /, got "${mountRoot}"`);
  const wait = Number(values['docker-mount-wait'] ?? DEFAULT_DOCKER_MOUNT_WAIT_S);
  if (!Number.isFinite(wait) || wait < 0 || wait > MAX_DOCKER_MOUNT_WAIT_S) {
    throw new ConfigError(`--docker-mount-wait must be 0 to ${MAX_DOCKER_MOUNT_WAIT_S} seconds (Docker gives a mount 2 minutes), got "${values['docker-mount-wait']}"`);
  }
  return { pluginName, mountRoot, mountWaitMs: Math.round(wait * 1000) };
}

/** --orchestrator: kubernetes unless said; docker for --mode docker, which takes no other. */
function orchestratorOf(mode: Mode, value: string | undefined): Orchestrator {
  if (mode === 'docker') {
    if (value !== undefined && value !== 'docker') throw new ConfigError(`--mode docker is Docker's plugin: --orchestrator must be docker or left out, got "${value}"`);
    return 'docker';
  }
  if (value === undefined) return 'kubernetes';
  if (value === 'docker' || !ORCHESTRATORS.includes(value as Orchestrator)) throw new ConfigError(`--orchestrator must be kubernetes or swarm (Docker's own plugin is --mode docker), got "${value}"`);
  return value as Orchestrator;
}

/** A HOST:PORT flag, checked; undefined when not given. */
function listenAddress(value: string | undefined, flag: string, example: string): string | undefined {
  if (value !== undefined && !parseListenAddress(value)) throw new ConfigError(`${flag} must be HOST:PORT (for example ${example}), got "${value}"`);
  return value;
}

/** The rules of the registration flags that need no file system: which mode, which combination, which paths. */
export function checkRegistrationFlags(flags: { dir?: string | undefined; path?: string | undefined }, mode: Mode): void {
  if (flags.path !== undefined && flags.dir === undefined) throw new ConfigError('--kubelet-registration-path needs --kubelet-registration-dir');
  if (flags.dir === undefined) return;
  if (mode === 'controller' || mode === 'keeper') throw new ConfigError('--kubelet-registration-dir registers a node plugin: it needs --mode node or all');
  if (!flags.dir) throw new ConfigError('--kubelet-registration-dir must name a directory');
  if (flags.path !== undefined && !flags.path.startsWith('/')) throw new ConfigError(`--kubelet-registration-path must be an absolute path (the CSI socket as the kubelet sees it), got "${flags.path}"`);
  if (flags.path !== undefined && /[\u0000-\u001f\u007f]/.test(flags.path)) throw new ConfigError('--kubelet-registration-path must not contain control characters');
}

/**
 * The registration directory, resolved (it must exist: it is the kubelet's, mounted into the
 * container), and the socket tether will serve there: nothing may be at its path but a stale socket.
 */
async function kubeletRegistrationOf(dirFlag: string, endpoint: string, driverName: string): Promise<KubeletRegistration> {
  let dir: string;
  try {
    dir = await realpath(dirFlag);
  } catch (err) {
    throw new ConfigError(`--kubelet-registration-dir ${dirFlag}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such directory (mount the kubelet\'s plugins_registry directory there)' : (err as Error).message}`);
  }
  if (!(await stat(dir)).isDirectory()) throw new ConfigError(`--kubelet-registration-dir ${dirFlag}: not a directory`);
  const socketPath = registrationSocketPath(dir, driverName);
  const problem = await registrationSocketProblem(socketPath).catch((err: Error) => err.message);
  if (problem) throw new ConfigError(`--kubelet-registration-dir ${dirFlag}: ${problem}`);
  return { dir, socketPath, endpoint };
}

/** The path of a `unix:///absolute/path` endpoint. */
function unixSocketPath(endpoint: string, flag: string): string {
  const socketPath = endpoint.startsWith('unix://') ? endpoint.slice('unix://'.length) : endpoint.startsWith('unix:') ? endpoint.slice(5) : '';
  if (!socketPath.startsWith('/')) throw new ConfigError(`${flag} must be unix:///absolute/path.sock, got "${endpoint}"`);
  return socketPath;
}

/**
 * --mount-keeper belongs to a node plugin of its own (--mode node: in --mode all the process mounts
 * itself, as before); --keeper-allowed-root to the keeper. Roots are absolute and never "/".
 */
function keeperFlags(mode: Mode, mountKeeper: string | undefined, roots: string[] | undefined): { mountKeeper?: string; keeperAllowedRoots: string[] } {
  if (mountKeeper !== undefined && mode !== 'node') throw new ConfigError(`--mount-keeper works with --mode node only (got --mode ${mode}); without it the node plugin mounts sshfs volumes itself`);
  if (mountKeeper !== undefined) unixSocketPath(mountKeeper, '--mount-keeper');
  if (roots !== undefined && mode !== 'keeper') throw new ConfigError(`--keeper-allowed-root works with --mode keeper only (got --mode ${mode})`);
  for (const root of roots ?? []) {
    if (!root.startsWith('/') || root.replace(/\/+$/, '') === '') throw new ConfigError(`--keeper-allowed-root must be an absolute directory other than /, got "${root}"`);
  }
  return { mountKeeper, keeperAllowedRoots: roots?.length ? roots.map((r) => r.replace(/(.)\/+$/, '$1')) : [DEFAULT_KEEPER_ROOT] };
}

/**
 * The backends and their private keys from the config file, read and checked again (the mount keeper
 * does this at every Mount, so that a changed Secret applies): a problem is a ConfigError naming the field.
 */
export async function readBackendConfig(configPath: string): Promise<{ backends: BackendConfig[]; privateKeys: Map<string, Buffer> }> {
  const file = await readConfigFile(configPath);
  return { backends: file.backends, privateKeys: await readPrivateKeys(file.backends, configPath) };
}

/** Reads and parses every sshfs backend's private key: a missing, unreadable or malformed one stops the start, naming the field. */
async function readPrivateKeys(backends: readonly BackendConfig[], configPath: string): Promise<Map<string, Buffer>> {
  const keys = new Map<string, Buffer>();
  for (const [i, b] of backends.entries()) {
    if (b.type !== 'sshfs') continue;
    const field = `${configPath}: backends.${i}.privateKeyFile`;
    let bytes: Buffer;
    try {
      bytes = await readFile(b.privateKeyFile);
    } catch (err) {
      throw new ConfigError(`${field}: cannot read ${b.privateKeyFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const problem = privateKeyProblem(bytes);
    if (problem) throw new ConfigError(`${field}: ${b.privateKeyFile}: ${problem}`);
    keys.set(b.name, bytes);
  }
  return keys;
}

async function readConfigFile(path: string): Promise<z.infer<typeof fileConfig>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  return parseConfigText(text, path);
}

/** Parses and validates config YAML; every problem becomes one line naming the field. */
export function parseConfigText(text: string, path = 'config'): z.infer<typeof fileConfig> {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`${path}: not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  const parsed = fileConfig.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const at = issue.path.length ? issue.path.join('.') : '(top level)';
    throw new ConfigError(`${path}: ${at}: ${issue.message}`);
  }
  return parsed.data;
}

function required(value: string | undefined, flag: string): string {
  if (!value) throw new ConfigError(`${flag} is required; ${USAGE}`);
  return value;
}
