// The machine the benchmarks run on: the page cache, child processes with timeouts.
import { writeFile } from 'node:fs/promises';
import { execa } from 'execa';

export const CMD_TIMEOUT_MS = 120_000;

/** Runs a program (argument array, no shell) with a timeout; rejects on failure. */
export const run = (cmd: string, args: string[]) => execa(cmd, args, { timeout: CMD_TIMEOUT_MS, stdin: 'ignore', env: { LC_ALL: 'C' } });

/** Syncs, then drops the page cache ('1'), dentries and inodes ('2') or both ('3'). */
export async function dropCaches(level: '1' | '2' | '3'): Promise<void> {
  await run('sync', []);
  await writeFile('/proc/sys/vm/drop_caches', level);
}
