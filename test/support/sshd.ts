// Throwaway OpenSSH server for tests: key-only, SFTP-only, on 127.0.0.1 at a free port.
// No chroot (it needs root-owned path components): paths on the server are paths on this host.
import { mkdir, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { readFileSync, readdirSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';

export interface SshServer {
  host: string;
  port: number;
  user: string;
  /** Directory served as the backend base path; a real path on this host. */
  root: string;
  /** Public host key, "ssh-ed25519 AAAA..." (type and base64 only). */
  hostKey: string;
  /** Private client key, mode 0600. */
  clientKeyFile: string;
  workDir: string;
  logFile: string;
  /** SIGKILL the listener and every session process; files are kept. */
  kill(): Promise<void>;
  /** Start sshd again with the same port, keys and root (kills a running one first). */
  restart(): Promise<void>;
  /** SIGSTOP the listener and every session process. */
  freeze(): Promise<void>;
  /** SIGCONT them. */
  thaw(): Promise<void>;
  /** Kill everything and remove workDir. Idempotent. */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const SSHD = '/usr/sbin/sshd';
const READY_TIMEOUT_MS = 5000;

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('freePort: no TCP address');
  return address.port;
}

/**
 * `root`: serve this directory (another server's root, say: two servers, one backend); default: a new one.
 * `netns`: run sshd in this network namespace, listening on every address there, reached at `host`.
 * `commands`: also run commands (`ssh … cat FILE`, a benchmark's baseline); default: SFTP only.
 */
export async function startSshServer(opts: { port?: number; root?: string; netns?: { name: string; host: string }; commands?: boolean } = {}): Promise<SshServer> {
  const port = opts.port ?? (await freePort());
  const listenOn = opts.netns ? '0.0.0.0' : HOST;
  const workDir = await realpath(await mkdtemp(join(tmpdir(), 'tether-sshd-')));
  const root = opts.root ?? join(workDir, 'root');
  const hostKeyFile = join(workDir, 'host_ed25519');
  const clientKeyFile = join(workDir, 'client_ed25519');
  const authorizedKeys = join(workDir, 'authorized_keys');
  const configFile = join(workDir, 'sshd_config');
  const logFile = join(workDir, 'sshd.log');

  if (!opts.root) await mkdir(root);
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 }); // privilege-separation dir
  for (const [file, comment] of [[hostKeyFile, 'tether-test-host'], [clientKeyFile, 'tether-test-client']] as const) {
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], { timeout: 10_000 });
  }
  await writeFile(authorizedKeys, await readFile(`${clientKeyFile}.pub`), { mode: 0o600 });
  const hostKey = (await readFile(`${hostKeyFile}.pub`, 'utf8')).trim().split(/\s+/).slice(0, 2).join(' ');
  await writeFile(
    configFile,
    [
      `Port ${port}`,
      `ListenAddress ${listenOn}`,
      `HostKey ${hostKeyFile}`,
      'PidFile none',
      `AuthorizedKeysFile ${authorizedKeys}`,
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'UsePAM no',
      'StrictModes no',
      'AllowTcpForwarding no',
      'X11Forwarding no',
      'Subsystem sftp internal-sftp',
      ...(opts.commands ? [] : ['ForceCommand internal-sftp']),
      'LogLevel VERBOSE',
      'MaxStartups 100',
      'MaxSessions 100',
      '',
    ].join('\n'),
  );

  let listener: ResultPromise<{ stdio: 'ignore'; reject: false }> | undefined;
  let removed = false;

  // Ready when this sshd has logged that it listens (so a stale listener on the port cannot
  // fool us; sshd -E appends, so only the log written since this start counts) and a TCP
  // connect succeeds.
  const start = async (): Promise<void> => {
    const logStart = (await readLog(logFile)).length;
    const args = ['-D', '-f', configFile, '-E', logFile];
    const proc = opts.netns ? execa('ip', ['netns', 'exec', opts.netns.name, SSHD, ...args], { stdio: 'ignore', reject: false }) : execa(SSHD, args, { stdio: 'ignore', reject: false });
    listener = proc;
    let exited = false;
    void proc.then(() => (exited = true));
    const listening = `Server listening on ${listenOn} port ${port}.`;
    const deadline = Date.now() + READY_TIMEOUT_MS;
    // In a namespace of its own, this process cannot connect to it: the log line is the sign.
    while (!((await readLog(logFile)).includes(listening, logStart) && (opts.netns || (await canConnect(port))))) {
      if (exited || Date.now() > deadline) {
        await killListener();
        const tail = (await readLog(logFile)).split('\n').slice(-20).join('\n');
        throw new Error(`sshd did not listen on ${listenOn}:${port}:\n${tail}`);
      }
      await sleep(20);
    }
  };

  // SIGSTOP the listener, then its descendants, until no new process appears (a stopped
  // listener cannot fork new sessions). Returns every process of the tree.
  const stopTree = (): number[] => {
    const pid = listener?.pid;
    if (pid === undefined) return [];
    const stopped = new Set<number>();
    for (let pending = [pid]; pending.length > 0; pending = descendants(pid).filter((p) => !stopped.has(p))) {
      for (const p of pending) {
        signal(p, 'SIGSTOP');
        stopped.add(p);
      }
    }
    return [...stopped];
  };

  const killListener = async (): Promise<void> => {
    const proc = listener;
    if (proc === undefined) return;
    const pids = stopTree();
    for (const p of pids) signal(p, 'SIGKILL');
    await proc;
    await waitGone(pids);
    listener = undefined;
  };

  try {
    await start();
  } catch (err) {
    await rm(workDir, { recursive: true, force: true }); // the caller gets no handle to stop()
    throw err;
  }

  return {
    host: opts.netns?.host ?? HOST,
    port,
    user: 'root',
    root,
    hostKey,
    clientKeyFile,
    workDir,
    logFile,
    kill: killListener,
    restart: async () => {
      await killListener();
      await start();
    },
    freeze: async () => {
      stopTree();
    },
    thaw: async () => {
      const pid = listener?.pid;
      if (pid === undefined) return;
      for (const p of [pid, ...descendants(pid)]) signal(p, 'SIGCONT');
    },
    stop: async () => {
      await killListener();
      if (removed) return;
      removed = true;
      await rm(workDir, { recursive: true, force: true });
    },
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: HOST, port });
    socket.setTimeout(500);
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
  });
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** Fields of /proc/PID/stat after the command name: [state, ppid, ...]. */
function procStat(pid: number | string): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined; // gone
  }
}

function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const ppid = Number(procStat(entry)?.[1]);
    if (!Number.isInteger(ppid)) continue;
    children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
  }
  const result: number[] = [];
  for (let queue = [root]; queue.length > 0; ) {
    const kids = children.get(queue.shift()!) ?? [];
    result.push(...kids);
    queue.push(...kids);
  }
  return result;
}

/** Wait (bounded) until the processes have exited; zombies count as exited. */
async function waitGone(pids: number[]): Promise<void> {
  const deadline = Date.now() + 2000;
  while (pids.some((p) => { const s = procStat(p); return s !== undefined && s[0] !== 'Z'; })) {
    if (Date.now() > deadline) throw new Error(`sshd processes did not exit: ${pids.join(' ')}`);
    await sleep(10);
  }
}

function readLog(logFile: string): Promise<string> {
  return readFile(logFile, 'utf8').catch(() => '');
}
