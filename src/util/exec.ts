import { execa } from 'execa';
import { withTimeout } from './time.js';

export interface RunOptions {
  timeoutMs: number;
  /** The calling RPC's signal: once aborted, no program starts, and a running one is stopped. */
  signal?: AbortSignal;
  /** Write the program's stderr to this file instead of a pipe (for programs that daemonize). */
  stderrFile?: string;
}

/**
 * How a program that did not succeed ended: it `failed` on its own (exit status, signal), was stopped
 * at its time limit (`timed out`), or was stopped — or never started — because its call ended (`cancelled`).
 */
export type CommandOutcome = 'failed' | 'timed out' | 'cancelled';

/** A program that failed: its name, how it ended and the last lines it printed, never its environment. */
export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly stderr: string,
    readonly outcome: CommandOutcome,
    message: string,
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

/** After SIGTERM, a program (or a child of it) that is still there gets SIGKILL this much later. */
const FORCE_KILL_MS = 1000;
/** How long past its time limit run() waits for a program that does not die (stuck on a dead mount). */
const EXIT_GRACE_MS = 2000;

/**
 * Runs a program with an argument array (never a shell), bounded in time. It settles once the
 * program and what it started have exited, so a caller that holds a lock over it knows the work has
 * stopped — except for a process stuck in an uninterruptible sleep on a dead mount, which cannot be
 * killed: the caller is released EXIT_GRACE_MS after the deadline even if that process lingers.
 */
export async function run(command: string, args: readonly string[], options: RunOptions): Promise<string> {
  // execa would start it and kill it at once: a program that may act before the signal lands (umount) must not start at all.
  if (options.signal?.aborted) throw new CommandError(command, '', 'cancelled', `${command} was not started: its call had ended`);
  // A process group of its own (a new session): stopping the program stops what it started too —
  // mount(8) forks mount.nfs, which would otherwise mount on after the call ended, holding our pipes.
  const child = execa(command, args, {
    detached: true,
    stdin: 'ignore',
    stderr: options.stderrFile ? { file: options.stderrFile } : 'pipe',
    reject: false,
    env: { LC_ALL: 'C' },
  });
  const stopper = new Stopper(child.pid, options.timeoutMs, options.signal);
  try {
    const result = await withTimeout(child, options.timeoutMs + EXIT_GRACE_MS, command).catch((err: unknown) => {
      stopper.kill('SIGKILL');
      throw new CommandError(command, '', 'timed out', `${command} did not finish within ${options.timeoutMs} ms: ${(err as Error).message}`);
    });
    if (!result.failed) return String(result.stdout ?? '');
    const stderr = String(result.stderr ?? '').trim();
    const tail = stderr.split('\n').slice(-3).join(' | ');
    const outcome = stopper.reason ?? 'failed';
    const why = { cancelled: 'was stopped: its call ended', 'timed out': `timed out after ${options.timeoutMs} ms`, failed: `exited with ${result.exitCode ?? result.signal}` }[outcome];
    throw new CommandError(command, stderr, outcome, `${command} ${why}${tail ? `: ${tail}` : ''}`);
  } finally {
    stopper.done();
  }
}

/** Process groups of the programs running now: killed if this process exits (execa's own cleanup skips detached programs). */
const running = new Set<number>();
let exitHooked = false;

/**
 * Stops a running program's process group — SIGTERM, then SIGKILL FORCE_KILL_MS later — when its
 * call ends or its time limit passes, and remembers why.
 */
class Stopper {
  reason?: 'timed out' | 'cancelled';
  private readonly timer: NodeJS.Timeout;
  private readonly onAbort = () => this.stop('cancelled');

  constructor(
    private readonly group: number | undefined,
    timeoutMs: number,
    private readonly signal?: AbortSignal,
  ) {
    this.timer = setTimeout(() => this.stop('timed out'), timeoutMs);
    signal?.addEventListener('abort', this.onAbort, { once: true });
    if (group === undefined) return; // it could not start: nothing to stop
    running.add(group);
    if (!exitHooked) process.once('exit', () => running.forEach((g) => signalGroup(g, 'SIGKILL')));
    exitHooked = true;
  }

  private stop(reason: 'timed out' | 'cancelled'): void {
    if (this.reason) return;
    this.reason = reason;
    this.kill('SIGTERM');
    // Not cleared when the program exits: a child of it that ignores SIGTERM and holds no pipe of ours would live on.
    setTimeout(() => this.kill('SIGKILL'), FORCE_KILL_MS).unref();
  }

  kill(signal: NodeJS.Signals): void {
    if (this.group !== undefined) signalGroup(this.group, signal);
  }

  /** The program has exited, or is given up on: its call's end and its time limit no longer concern it. */
  done(): void {
    clearTimeout(this.timer);
    this.signal?.removeEventListener('abort', this.onAbort);
    if (this.group !== undefined) running.delete(this.group);
  }
}

function signalGroup(group: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-group, signal);
  } catch {
    // ESRCH: the whole group has exited already
  }
}
