import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { run } from '../util/exec.js';
import { withTimeout } from '../util/time.js';
import { mountProcesses, socketsOf, ssEndpoint, type Endpoint } from './connections.js';
import type { MountEntry } from './mount-table.js';
import type { Mounter } from './mounter.js';
import type { MountSpec } from './spec.js';

const SS_TIMEOUT_MS = 5_000;

/** What a fence did, for the log. */
export interface FenceReport {
  steps: string[];
}

/**
 * Fences one mount off its server for good: nothing the node buffered for it — in the kernel, in the
 * FUSE daemon, in ssh, in a TCP send queue — may reach the server afterwards, and every further use
 * fails with an I/O error. The mount itself stays (the workload sees the error, not an empty
 * directory); NodeUnstage removes it.
 *
 * sshfs (`abort-fuse`): abort the FUSE connection (queued requests are dropped, new ones fail),
 * freeze the sshfs process and its ssh, reset their TCP connections (`ss -K`: the send queue is
 * discarded, never retransmitted), kill them; then reset the connections to the same server that
 * no process owns any more (an ssh that gave up earlier leaves its unsent data to the kernel, which
 * would deliver it when the link comes back).
 */
export async function fenceMount(mounter: Mounter, entry: MountEntry, spec: Pick<MountSpec, 'cutoff' | 'server'>): Promise<FenceReport> {
  const steps: string[] = [];
  if (spec.cutoff !== 'abort-fuse') {
    await run('umount', ['--force', '--no-canonicalize', '--', entry.target], { timeoutMs: 10_000 }).catch(() => undefined);
    steps.push('umount --force (RPCs in flight failed)');
    return { steps };
  }
  await mounter.abortFuse(entry); // first: from here on nothing new is handed to sshfs
  steps.push('FUSE connection aborted');
  const pids = await mountProcesses(mounter.secretDir(entry.target));
  for (const pid of pids) signal(pid, 'SIGSTOP');
  const sockets = await socketsOf(pids);
  for (const s of sockets) await resetConnections(['src', ssEndpoint(s.local), 'dst', ssEndpoint(s.remote)]);
  for (const pid of pids) signal(pid, 'SIGKILL');
  steps.push(`${pids.length} processes killed, ${sockets.length} connections reset`);
  const servers = new Map(sockets.map((s) => [ssEndpoint(s.remote), s.remote]));
  for (const e of await serverEndpoints(spec.server)) servers.set(ssEndpoint(e), e);
  for (const e of servers.values()) await resetConnections(['state', 'fin-wait-1', 'state', 'closing', 'state', 'last-ack', 'dst', ssEndpoint(e)]);
  steps.push(`orphaned connections to ${[...servers.keys()].join(', ') || 'the server'} reset`);
  return { steps };
}

/** `ss -K` (SOCK_DESTROY): the kernel drops the sockets' queues and sends a reset. */
async function resetConnections(filter: string[]): Promise<void> {
  await run('ss', ['-K', '-t', '-n', '-H', ...filter], { timeoutMs: SS_TIMEOUT_MS }).catch(() => undefined);
}

/** The server's addresses: the host itself if it is an address, else what it resolves to (bounded in time). */
async function serverEndpoints(server: { host: string; port: number } | undefined): Promise<Endpoint[]> {
  if (!server) return [];
  if (isIP(server.host)) return [{ address: server.host, port: server.port }];
  const found = await withTimeout(lookup(server.host, { all: true }), 2_000, `resolving ${server.host}`).catch(() => []);
  return found.map((a) => ({ address: a.address, port: server.port }));
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone already
  }
}
