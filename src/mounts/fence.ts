import { lookup } from 'node:dns/promises';
import { writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { run } from '../util/exec.js';
import { withTimeout } from '../util/time.js';
import { ssEndpoint, tcpSockets, type Endpoint } from './connections.js';
import { resetConnections } from './daemon.js';
import type { MountEntry } from './mount-table.js';
import type { Mounter } from './mounter.js';
import type { MountSpec } from './spec.js';

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
 * sshfs (`abort-fuse`): freeze the sshfs process and its ssh, abort the FUSE connection (queued
 * requests are dropped, new ones fail), reset their TCP connections (`ss -K`: the send queue is
 * discarded, never retransmitted), kill them; then reset the connections to the same server that
 * no process owns any more (an ssh that gave up earlier leaves its unsent data to the kernel, which
 * would deliver it when the link comes back).
 */
export async function fenceMount(mounter: Pick<Mounter, 'fenceDaemon'>, entry: MountEntry, spec: Pick<MountSpec, 'cutoff' | 'server'>): Promise<FenceReport> {
  if (spec.cutoff !== 'abort-fuse') return fenceNfs(entry, spec);
  const steps: string[] = [];
  // By whoever runs the daemon: this process, or the mount keeper (its processes may be in a PID
  // namespace this one cannot see). Frozen before the abort: an aborted sshfs exits at once.
  const stopped = await mounter.fenceDaemon(entry);
  const by = stopped.by ? ` (${stopped.by})` : '';
  steps.push(`${stopped.processes} processes frozen, FUSE connection aborted${by}`);
  steps.push(`${stopped.connections} connections reset, ${stopped.processes} processes killed`);
  const failures = new Set(stopped.problems);
  const servers = new Map(stopped.servers.map((e) => [ssEndpoint(e), e]));
  for (const e of await serverEndpoints(spec.server)) servers.set(ssEndpoint(e), e);
  for (const e of servers.values()) await resetConnections(['state', 'fin-wait-1', 'state', 'closing', 'state', 'last-ack', 'dst', ssEndpoint(e)], failures);
  steps.push(`orphaned connections to ${[...servers.keys()].join(', ') || 'the server'} reset`);
  if (failures.size) steps.push(`weaker than asked, queued bytes may still be delivered: ${[...failures].join('; ')}`);
  return { steps };
}

/**
 * NFS: the kernel client has no abort of its own before Linux 6.7. In order:
 * - Linux ≥ 6.7: shut the mount's NFS client down (`/sys/fs/nfs/<device>/shutdown`): every request,
 *   now and later, fails with EIO, so dirty pages are dropped rather than written;
 * - `umount --force`: the requests in flight on the mount fail (the staging mount's binds keep it
 *   mounted, so this returns at once);
 * - reset the node's connections to the server (`ss -K`): requests already in a TCP send queue are
 *   discarded instead of delivered when the link comes back. The NFS client reconnects by itself;
 *   other volumes' requests still pending are sent again on the new connection.
 * Each step is reported with whether it applied: a kernel without them gives a weaker fence.
 */
async function fenceNfs(entry: MountEntry, spec: Pick<MountSpec, 'server'>): Promise<FenceReport> {
  const steps: string[] = [];
  const shutdown = path.join('/sys/fs/nfs', entry.device, 'shutdown');
  const shut = await writeFile(shutdown, '1').then(() => true, () => false);
  steps.push(shut ? 'NFS client of the mount shut down' : 'no NFS shutdown switch (Linux < 6.7): later writes are not stopped by the kernel');
  await run('umount', ['--force', '--no-canonicalize', '--', entry.target], { timeoutMs: 10_000 }).catch(() => undefined);
  steps.push('umount --force (requests in flight failed)');
  const servers = await serverEndpoints(spec.server);
  const before = await countConnections(servers);
  for (const e of servers) await resetConnections(['dst', ssEndpoint(e)], new Set());
  const after = await countConnections(servers);
  steps.push(before === 0 ? 'no open connection to the server' : after < before ? `${before - after} connections to the server reset` : 'connections to the server could not be reset (kernel without SOCK_DESTROY): requests queued in them may still be delivered');
  return { steps };
}

async function countConnections(servers: Endpoint[]): Promise<number> {
  const sockets = await tcpSockets();
  return sockets.filter((s) => servers.some((e) => e.address === s.remote.address && e.port === s.remote.port)).length;
}

/** The server's addresses: the host itself if it is an address, else what it resolves to (bounded in time). */
async function serverEndpoints(server: { host: string; port: number } | undefined): Promise<Endpoint[]> {
  if (!server) return [];
  if (isIP(server.host)) return [{ address: server.host, port: server.port }];
  const found = await withTimeout(lookup(server.host, { all: true }), 2_000, `resolving ${server.host}`).catch(() => []);
  return found.map((a) => ({ address: a.address, port: server.port }));
}

/** Capabilities a fence needs, by bit in /proc/self/status CapEff: mount and abort (SYS_ADMIN), reset TCP connections (`ss -K`: NET_ADMIN). */
const FENCE_CAPABILITIES: Record<string, number> = { CAP_SYS_ADMIN: 21, CAP_NET_ADMIN: 12 };

/** The capabilities this process lacks for a complete fence (empty when it has them all), from its CapEff line. */
export function missingFenceCapabilities(status: string): string[] {
  const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  if (!hex) return [];
  const effective = BigInt(`0x${hex}`);
  return Object.entries(FENCE_CAPABILITIES).filter(([, bit]) => !((effective >> BigInt(bit)) & 1n)).map(([name]) => name);
}
