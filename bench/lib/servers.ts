// CSI servers as child processes for the per-call and process benchmarks: tether (`node
// dist/src/main.js`, with the Node.js flags the Helm chart gives its mode) against a throwaway sshd and the Go reference driver (test/clients/csi-reference,
// built by test/tools/install.sh), each started, timed to its first answered Probe, measured (RSS) and
// stopped the same way.
import { spawn, type ChildProcess } from 'node:child_process';
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { credentials, Client, type ServiceError } from '@grpc/grpc-js';
import { parse, stringify } from 'yaml';
import { backendConfig, DRIVER_MAIN } from '../../test/support/driver.js';
import type { SshServer } from '../../test/support/sshd.js';
import type { BenchContext } from './context.js';
import { now } from './stats.js';

export const ROOT = path.resolve(path.dirname(DRIVER_MAIN), '../..');
export const TOOLS = path.join(ROOT, '.tools/bin');
export const GHZ = path.join(TOOLS, 'ghz');
export const REFERENCE = path.join(TOOLS, 'csi-reference');
export const CSI_PROTO_FILE = path.join(ROOT, 'proto/csi.proto');
export const REFERENCE_NAME = 'Go reference (grpc-go, as hostpathplugin)';

/** Why a suite needing the Go tools cannot run, or undefined. */
export async function goToolsMissing(): Promise<string | undefined> {
  for (const tool of [GHZ, REFERENCE]) {
    if (!(await access(tool).then(() => true, () => false))) return `${tool} is missing: run bash test/tools/install.sh`;
  }
  return undefined;
}

/** A CSI server process the benchmark started. */
export interface Server {
  socket: string;
  endpoint: string;
  child: ChildProcess;
  /** ms from spawning the process to its first answered Probe. */
  startMs: number;
  /** Its resident set (VmRSS) now, in MiB. */
  rssMiB(): Promise<number>;
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 30_000;
const POLL_MS = 1;

/** One Probe over a fresh connection; resolves true if answered OK. The request is empty: no proto needed. */
function probeOnce(endpoint: string): Promise<boolean> {
  const client = new Client(endpoint, credentials.createInsecure(), { 'grpc.enable_retries': 0, 'grpc.initial_reconnect_backoff_ms': 1 });
  return new Promise<boolean>((resolve) => {
    client.makeUnaryRequest('/csi.v1.Identity/Probe', () => Buffer.alloc(0), (b: Buffer) => b, {}, { deadline: Date.now() + 5000 }, (err: ServiceError | null) => resolve(!err));
  }).finally(() => client.close());
}

/** Spawns argv[0] with argv[1..], then polls its socket until a Probe is answered; the time to that is startMs. */
async function startServer(ctx: BenchContext, what: string, argv: string[], socket: string, cleanup: () => Promise<void>): Promise<Server> {
  const logFile = `${socket}.log`;
  const t0 = now();
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-20_000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    }
    await cleanup();
  };
  ctx.defer(`stop ${what}`, stop);
  const endpoint = `unix://${socket}`;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null || now() - t0 > START_TIMEOUT_MS) {
      await writeFile(logFile, output).catch(() => undefined);
      throw new Error(`${what} did not answer Probe (exit ${child.exitCode}, signal ${child.signalCode}): ${output.slice(-2000)}`);
    }
    if ((await access(socket).then(() => true, () => false)) && (await probeOnce(endpoint))) break;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  const startMs = now() - t0;
  return { socket, endpoint, child, startMs, rssMiB: () => rssMiB(child.pid!), stop };
}

/** VmRSS of a process, in MiB. */
export async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (!kb) throw new Error(`no VmRSS for process ${pid}`);
  return Number(kb) / 1024;
}

export interface TetherOptions {
  mode?: 'all' | 'controller' | 'node';
  logLevel?: string;
  extraArgs?: string[];
}

/** tether on its own socket against the sshfs `server` (node ID node-a), timed to its first Probe. */
export async function startTether(ctx: BenchContext, server: SshServer, options: TetherOptions = {}): Promise<Server> {
  const dir = await mkdtemp(path.join(ctx.work, 'tether-'));
  const socket = path.join(dir, 'csi.sock');
  const configFile = path.join(dir, 'config.yaml');
  await writeFile(configFile, stringify({ runtimeDir: path.join(dir, 'run'), backends: [backendConfig(server, 'box', [])] }));
  const mode = options.mode ?? 'all';
  const flags = await chartNodeFlags(mode);
  const argv = ['node', ...flags, DRIVER_MAIN, '--endpoint', `unix://${socket}`, '--mode', mode, '--config', configFile];
  if (options.logLevel) argv.push('--log-level', options.logLevel);
  if (mode !== 'controller') argv.push('--node-id', 'node-a');
  argv.push(...(options.extraArgs ?? []));
  const what = `tether (${[mode, ...flags].join(' ')})`;
  return startServer(ctx, what, argv, socket, () => rm(dir, { recursive: true, force: true }));
}

/**
 * The Node.js flags the Helm chart gives a mode's container (values.yaml: node.nodeFlags for the
 * node plugin, controller.nodeFlags for the controller and for --mode all, which the chart never
 * runs): tether is measured as it is shipped.
 */
export async function chartNodeFlags(mode: 'all' | 'controller' | 'node'): Promise<string[]> {
  const values = parse(await readFile(path.join(ROOT, 'charts/tether/values.yaml'), 'utf8')) as Record<string, { nodeFlags?: string }>;
  return (values[mode === 'node' ? 'node' : 'controller']?.nodeFlags ?? '').split(' ').filter(Boolean);
}

/** The Go reference driver on its own socket and state directory, timed to its first Probe. */
export async function startReference(ctx: BenchContext): Promise<Server> {
  const dir = await mkdtemp(path.join(ctx.work, 'reference-'));
  const socket = path.join(dir, 'csi.sock');
  await mkdir(path.join(dir, 'state'));
  const argv = [REFERENCE, '--endpoint', `unix://${socket}`, '--nodeid', 'node-a', '--drivername', 'reference.csi.k8s.io', '--statedir', path.join(dir, 'state')];
  return startServer(ctx, 'the Go reference driver', argv, socket, () => rm(dir, { recursive: true, force: true }));
}

/** ms from spawning `node -e 0` to its exit: the floor of any Node.js program's start. */
export async function nodeBare(): Promise<number> {
  const t0 = now();
  const child = spawn('node', ['-e', '0'], { stdio: 'ignore' });
  await new Promise<void>((resolve, reject) => child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`node -e 0 exited ${code}`)))));
  return now() - t0;
}
