// The mount keeper (`tether --mode keeper`) as a child process, in a "container" of its own (see
// container.ts), with a gRPC client of its socket for tests that talk to it directly.
import { access, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { execa, type ResultPromise } from 'execa';
import { stringify } from 'yaml';
import { loadKeeperService } from '../../src/keeper/protocol.js';
import { Container } from './container.js';
import { DRIVER_MAIN } from './driver.js';

export interface KeeperOptions {
  /** The config the keeper reads (the same backends as the node plugin's). */
  config: Record<string, unknown>;
  /** A directory of the test's: the config file goes here. */
  dir: string;
  socket: string;
  allowedRoots: string[];
  logLevel?: string;
}

export interface RunningKeeper {
  socket: string;
  endpoint: string;
  configFile: string;
  container: Container;
  process: ResultPromise;
  logs(): string;
  /** Its container crashes: the keeper and every sshfs (and ssh) it started get SIGKILL. */
  crash(): Promise<void>;
  stop(): Promise<void>;
}

export async function startKeeper(options: KeeperOptions): Promise<RunningKeeper> {
  const configFile = path.join(options.dir, 'keeper-config.yaml');
  await writeFile(configFile, stringify(options.config));
  const runtimeDir = String(options.config.runtimeDir);
  const container = await Container.create('keeper', runtimeDir);
  const args = [DRIVER_MAIN, '--mode', 'keeper', '--endpoint', `unix://${options.socket}`, '--config', configFile, '--log-level', options.logLevel ?? 'debug'];
  for (const root of options.allowedRoots) args.push('--keeper-allowed-root', root);
  const [program, argv] = container.wrap('node', args);
  const child = execa(program, argv, { reject: false, stdin: 'ignore', all: true, buffer: false });
  let output = '';
  child.all?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const deadline = Date.now() + 30_000;
  while (!output.includes('the mount keeper is serving') || !(await access(options.socket).then(() => true, () => false))) {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      await container.remove();
      throw new Error(`mount keeper did not start (exit code ${child.exitCode}, signal ${child.signalCode}):\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    socket: options.socket,
    endpoint: `unix://${options.socket}`,
    configFile,
    container,
    process: child,
    logs: () => output,
    async crash() {
      await container.kill();
      await child.catch(() => undefined);
    },
    async stop() {
      child.kill('SIGTERM');
      await child;
      await container.remove();
    },
  };
}

type Reply = Record<string, any>;
export type KeeperApi = Record<'Mount' | 'Unmount' | 'Fence' | 'List' | 'Health', (req: object, deadlineMs?: number) => Promise<Reply>> & { close(): void };

/** A plain client of the keeper's socket, with promise methods named like its RPCs. */
export function keeperClient(endpoint: string): KeeperApi {
  const Client = loadKeeperService();
  const client = new Client(endpoint, credentials.createInsecure()) as unknown as Record<string, (...args: unknown[]) => unknown> & { close(): void };
  const call = (method: string) => (req: object, deadlineMs = 60_000) =>
    new Promise<Reply>((resolve, reject) =>
      client[method]!(req, new Metadata(), { deadline: Date.now() + deadlineMs }, (err: ServiceError | null, res: Reply) => (err ? reject(err) : resolve(res))),
    );
  return { Mount: call('Mount'), Unmount: call('Unmount'), Fence: call('Fence'), List: call('List'), Health: call('Health'), close: () => client.close() };
}
