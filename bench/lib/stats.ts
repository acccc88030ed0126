// Timing and statistics for the benchmarks: wall-clock milliseconds, medians and percentiles, and
// ways to interleave the two sides of a comparison so that a busy machine slows both alike.

export const now = () => Number(process.hrtime.bigint()) / 1e6; // ms

export async function timed(work: () => Promise<unknown>): Promise<number> {
  const t0 = now();
  await work();
  return now() - t0;
}

/** The p-th percentile (0–100) of xs, nearest rank. */
export function percentile(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export function median(xs: number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** `rotate(k, xs)`: xs rotated by k, so that over the runs every side goes first as often as the others. */
export const rotate = <T>(k: number, xs: readonly T[]): T[] => xs.map((_, i) => xs[(i + k) % xs.length]!);

/** Runs `total` items in chunks of `chunk`, the sides taking turns per chunk (who goes first rotates); returns each side's total ms. */
export async function interleaved(total: number, chunk: number, sides: Array<(from: number, to: number) => Promise<unknown>>): Promise<number[]> {
  const ms = sides.map(() => 0);
  for (let from = 0, k = 0; from < total; from += chunk, k++) {
    const to = Math.min(total, from + chunk);
    for (const i of rotate(k, sides.map((_, i) => i))) ms[i]! += await timed(() => sides[i]!(from, to));
  }
  return ms;
}

/** Runs task(0..total-1) with `concurrency` at once; returns the wall time in ms. */
export function pool(total: number, concurrency: number, task: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < total; i = next++) await task(i);
  };
  return timed(() => Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker)));
}

/** Per-call latencies (ms) of task(0..total-1) run with `concurrency` at once. */
export async function latencies(total: number, concurrency: number, task: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  await pool(total, concurrency, async (i) => out.push(await timed(() => task(i))));
  return out;
}

export const rate = (count: number, ms: number) => count / (ms / 1000);
