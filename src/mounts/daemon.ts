import { run } from '../util/exec.js';
import { listProcesses, processesOf, socketsOf, ssEndpoint, type Endpoint, type ProcessInfo } from './connections.js';

const SS_TIMEOUT_MS = 5_000;

/** What stopping a mount's daemon did: the processes killed, the connections reset and their servers. */
export interface DaemonStop {
  processes: number;
  connections: number;
  /** The remote ends of the connections reset (the fence resets what is left to them afterwards). */
  servers: Endpoint[];
  /** What did not work (ss failed): queued bytes may still be delivered. */
  problems: string[];
}

/**
 * Stops the processes serving one FUSE mount for good — those whose command line names a file in
 * the mount's private directory `dir` (sshfs's `IdentityFile=<dir>/id`, passed on to its ssh), and
 * their descendants: freezes them, then cuts the mount off (`abort`: its FUSE connection), resets
 * their TCP connections (`ss -K`, SOCK_DESTROY: the send queue is discarded, never retransmitted),
 * kills them. Frozen first, so that none of them sends more, reconnects, or exits — an sshfs whose
 * FUSE connection is aborted exits at once, and its ssh would flush what it holds on its way out.
 */
export async function stopMountProcesses(dir: string, abort: () => Promise<void>): Promise<DaemonStop> {
  const pids = processesOf(await listProcesses(), dir);
  for (const pid of pids) signal(pid, 'SIGSTOP');
  await abort();
  const sockets = await socketsOf(pids);
  const failures = new Set<string>();
  for (const s of sockets) await resetConnections(['src', ssEndpoint(s.local), 'dst', ssEndpoint(s.remote)], failures);
  for (const pid of pids) signal(pid, 'SIGKILL');
  const servers = new Map(sockets.map((s) => [ssEndpoint(s.remote), s.remote]));
  return { processes: pids.length, connections: sockets.length, servers: [...servers.values()], problems: [...failures] };
}

/**
 * The sshfs process serving each mount, from one read of /proc: the one whose command line names
 * the mount's private directory (see stopMountProcesses), else one whose command line names the
 * mount point itself (a mount another process made); 0 where none is alive. A zombie is not alive.
 */
export function daemonsOf(procs: readonly ProcessInfo[], mounts: readonly { target: string; dir: string }[]): Map<string, number> {
  const sshfs = procs.filter((p) => p.state !== 'Z' && /(^|\/)sshfs$/.test(p.argv[0] ?? ''));
  const found = new Map<string, number>();
  for (const { target, dir } of mounts) {
    const daemon = sshfs.find((p) => p.argv.some((a) => a.includes(`${dir}/`))) ?? sshfs.find((p) => p.argv.includes(target));
    found.set(target, daemon?.pid ?? 0);
  }
  return found;
}

/** `ss -K` (SOCK_DESTROY): the kernel drops the sockets' queues and sends a reset. A failure of ss itself is noted in `failures`. */
export async function resetConnections(filter: string[], failures: Set<string>): Promise<void> {
  await run('ss', ['-K', '-t', '-n', '-H', ...filter], { timeoutMs: SS_TIMEOUT_MS }).catch((err: Error) => failures.add(err.message));
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone already
  }
}
