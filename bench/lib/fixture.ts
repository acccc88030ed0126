// The pieces most benchmarks stand on: a throwaway sshd (test/support/sshd.ts), tether against it,
// a CSI client, and a bare ssh2 SFTP client for baselines. Everything is undone by ctx's cleanups.
import { readFile } from 'node:fs/promises';
import { Client, type ConnectConfig, type SFTPWrapper } from 'ssh2';
import { csiClient, type CsiClient } from '../../test/support/csi-client.js';
import { startDriver, type DriverOptions, type RunningDriver } from '../../test/support/driver.js';
import { mountCap, unmountLeftovers } from '../../test/support/helpers.js';
import { startSshServer, type SshServer } from '../../test/support/sshd.js';
import type { BenchContext } from './context.js';

export const CAPABILITY = mountCap('SINGLE_NODE_MULTI_WRITER');
export const GIB = String(2 ** 30);

/** A throwaway sshd; `commands`: it runs commands too (`ssh … cat FILE`), not only SFTP. */
export async function sshServer(ctx: BenchContext, opts: { commands?: boolean } = {}): Promise<SshServer> {
  const server = await startSshServer(opts);
  ctx.defer('stop sshd', () => server.stop());
  return server;
}

export interface Tether {
  driver: RunningDriver;
  csi: CsiClient;
}

/**
 * tether (all modes, node-a) against `server`, quiet, with its CSI client; stopped and unmounted
 * afterwards. With TETHER_BENCH_PROFILE=DIR in the environment, it writes a CPU profile to DIR when it stops.
 */
export async function tether(ctx: BenchContext, server: SshServer, options: DriverOptions = {}): Promise<Tether> {
  const profile = process.env.TETHER_BENCH_PROFILE;
  const nodeArgs = profile ? ['--cpu-prof', `--cpu-prof-dir=${profile}`] : [];
  const driver = await startDriver(server, { logLevel: 'warn', mountOptions: [], nodeArgs, ...options });
  ctx.defer('stop tether', () => driver.stop());
  const csi = csiClient(driver.endpoint);
  ctx.defer('close the CSI client', async () => csi.close());
  ctx.defer('unmount leftovers', () => unmountLeftovers(ctx.work));
  return { driver, csi };
}

/** A bare SFTP session (ssh2, like tether's) to `server`. */
export async function sftpSession(ctx: BenchContext, server: SshServer, extra: Partial<ConnectConfig> = {}): Promise<SFTPWrapper> {
  const privateKey = await readFile(server.clientKeyFile);
  const expected = Buffer.from(server.hostKey.split(' ')[1] ?? '', 'base64');
  const { client, sftp } = await new Promise<{ client: Client; sftp: SFTPWrapper }>((resolve, reject) => {
    const c = new Client();
    c.once('error', reject);
    c.once('ready', () => c.sftp((err, s) => (err ? reject(err) : resolve({ client: c, sftp: s }))));
    c.connect({ host: server.host, port: server.port, username: server.user, privateKey, readyTimeout: 10_000, hostVerifier: (key: Buffer) => key.equals(expected), ...extra });
  });
  ctx.defer('close a bare SFTP session', async () => client.end());
  return sftp;
}

/** An SFTP request as a promise. */
export const sftpCall = <T = unknown>(fn: (cb: (err: Error | null | undefined, v?: T) => void) => void) =>
  new Promise<T>((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v as T))));
