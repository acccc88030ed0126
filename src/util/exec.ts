import { execa } from 'execa';
import { withTimeout } from './time.js';

export interface RunOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  /** Write the program's stderr to this file instead of a pipe (for programs that daemonize). */
  stderrFile?: string;
}

/** A program that failed: its name, exit status and the last lines it printed, never its environment. */
export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly stderr: string,
    readonly timedOut: boolean,
    message: string,
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

/**
 * Runs a program with an argument array (never a shell), bounded in time. A child stuck in an
 * uninterruptible sleep on a dead mount cannot be killed, so the caller is released at the deadline
 * even if the child lingers.
 */
export async function run(command: string, args: readonly string[], options: RunOptions): Promise<string> {
  const child = execa(command, args, {
    timeout: options.timeoutMs,
    forceKillAfterDelay: 1000,
    cancelSignal: options.signal,
    stdin: 'ignore',
    stderr: options.stderrFile ? { file: options.stderrFile } : 'pipe',
    reject: false,
    env: { LC_ALL: 'C' },
  });
  const result = await withTimeout(child, options.timeoutMs + 2000, `${command}`).catch((err: unknown) => {
    child.kill('SIGKILL');
    throw new CommandError(command, '', true, `${command} did not finish within ${options.timeoutMs} ms: ${(err as Error).message}`);
  });
  if (result.failed) {
    const stderr = String(result.stderr ?? '').trim();
    const tail = stderr.split('\n').slice(-3).join(' | ');
    const why = result.timedOut ? `timed out after ${options.timeoutMs} ms` : result.isCanceled ? 'was cancelled' : `exited with ${result.exitCode ?? result.signal}`;
    throw new CommandError(command, stderr, Boolean(result.timedOut), `${command} ${why}${tail ? `: ${tail}` : ''}`);
  }
  return String(result.stdout ?? '');
}
