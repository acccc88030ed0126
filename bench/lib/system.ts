// The machine the benchmarks run on: the page cache, child processes with timeouts.
import { readFile, writeFile } from 'node:fs/promises';
import { execa } from 'execa';

export const CMD_TIMEOUT_MS = 120_000;

/** Runs a program (argument array, no shell) with a timeout; rejects on failure. */
export const run = (cmd: string, args: string[]) => execa(cmd, args, { timeout: CMD_TIMEOUT_MS, stdin: 'ignore', env: { LC_ALL: 'C' } });

/** Syncs, then drops the page cache ('1'), dentries and inodes ('2') or both ('3'). */
export async function dropCaches(level: '1' | '2' | '3'): Promise<void> {
  await run('sync', []);
  await writeFile('/proc/sys/vm/drop_caches', level);
}

/** The machine's busy CPU time so far, all CPUs, in ms (user + nice + system + irq + softirq + steal of /proc/stat). */
async function busyCpuMs(): Promise<number> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n', 1)[0]!;
  const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
  return ((user! + nice! + system! + irq! + softirq! + steal!) * 1000) / CLOCK_TICKS;
}
const CLOCK_TICKS = 100;

/** Runs `fn`; answers its wall time and the CPU time the whole machine spent meanwhile (every process of the path counts). */
export async function withCpu(fn: () => Promise<unknown>): Promise<{ ms: number; cpuMs: number }> {
  const cpu0 = await busyCpuMs();
  const t0 = performance.now();
  await fn();
  const ms = performance.now() - t0;
  return { ms, cpuMs: (await busyCpuMs()) - cpu0 };
}
