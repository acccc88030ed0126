import { readdir, readFile, readlink } from 'node:fs/promises';
import { isIP } from 'node:net';

/**
 * The processes and TCP connections behind a FUSE mount, from /proc (this process's network
 * namespace): what a fence must stop so that nothing they hold reaches the server.
 */

/** One end of a TCP connection: an IPv4 or IPv6 address and a port. */
export interface Endpoint {
  address: string;
  port: number;
}

export interface TcpSocket {
  inode: string;
  local: Endpoint;
  remote: Endpoint;
}

/**
 * The processes of one mount: those whose command line names a file in the mount's private
 * directory (`dir`, which only tether writes: sshfs's `-o IdentityFile=<dir>/id`, passed on to the ssh
 * it starts — which is no child of the daemon sshfs becomes), and all their descendants.
 */
export async function mountProcesses(dir: string): Promise<number[]> {
  return processesOf(await listProcesses(), dir);
}

/** mountProcesses, on a list of processes read once. */
export function processesOf(procs: readonly ProcessInfo[], dir: string): number[] {
  const roots = procs.filter((p) => p.pid !== process.pid && p.argv.some((a) => a.includes(`${dir}/`))).map((p) => p.pid);
  const found = new Set(roots);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of procs) if (!found.has(p.pid) && found.has(p.ppid)) (found.add(p.pid), (grew = true));
  }
  return [...found];
}

/** The TCP sockets the processes hold open. */
export async function socketsOf(pids: readonly number[]): Promise<TcpSocket[]> {
  const inodes = new Set<string>();
  for (const pid of pids) {
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => []);
    for (const fd of fds) {
      const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m) inodes.add(m[1]!);
    }
  }
  return (await tcpSockets()).filter((s) => inodes.has(s.inode));
}

/** Every TCP socket of this network namespace, from /proc/net/tcp and tcp6. */
export async function tcpSockets(): Promise<TcpSocket[]> {
  const tables = await Promise.all(['/proc/net/tcp', '/proc/net/tcp6'].map((f) => readFile(f, 'utf8').catch(() => '')));
  return tables.flatMap(parseProcNetTcp);
}

/** Parses /proc/net/tcp{,6}: addresses are hex, each 32-bit word in host (little-endian) order. */
export function parseProcNetTcp(text: string): TcpSocket[] {
  return text
    .split('\n')
    .slice(1)
    .flatMap((line) => {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) return [];
      const local = parseEndpoint(f[1]!);
      const remote = parseEndpoint(f[2]!);
      return local && remote ? [{ inode: f[9]!, local, remote }] : [];
    });
}

function parseEndpoint(hex: string): Endpoint | undefined {
  const [addr, port] = hex.split(':');
  if (!addr || !port) return undefined;
  const words = addr.match(/.{8}/g) ?? [];
  const bytes = words.flatMap((w) => (w.match(/../g) ?? []).reverse().map((b) => parseInt(b, 16)));
  let address: string;
  if (bytes.length === 4) address = bytes.join('.');
  else if (bytes.length === 16) {
    const mapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 255 && bytes[11] === 255;
    address = mapped ? bytes.slice(12).join('.') : Array.from({ length: 8 }, (_, i) => ((bytes[2 * i]! << 8) | bytes[2 * i + 1]!).toString(16)).join(':');
  } else return undefined;
  return { address, port: parseInt(port, 16) };
}

/** `ss` filter words for an endpoint (`10.0.0.1:22`, `[fd00::1]:22`). */
export const ssEndpoint = (e: Endpoint) => (isIP(e.address) === 6 ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`);

export interface ProcessInfo {
  pid: number;
  ppid: number;
  /** The state letter of /proc/<pid>/stat: R, S, D, T, Z (zombie), … */
  state: string;
  argv: string[];
}

/** Every process this PID namespace's /proc shows, with its parent, state and command line. */
export async function listProcesses(): Promise<ProcessInfo[]> {
  const pids = (await readdir('/proc')).filter((n) => /^\d+$/.test(n)).map(Number);
  const infos = await Promise.all(
    pids.map(async (pid) => {
      const [stat, cmdline] = await Promise.all([readFile(`/proc/${pid}/stat`, 'utf8').catch(() => ''), readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')]);
      // stat: "pid (comm) state ppid …"; comm may hold spaces and parentheses: read after the last ')'.
      const [state = '', ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return stat ? [{ pid, ppid: Number(ppid), state, argv: cmdline.split('\0').filter((a, i, all) => a !== '' || i < all.length - 1) }] : [];
    }),
  );
  return infos.flat();
}
