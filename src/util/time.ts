/** An operation that did not finish within its time limit (the pipeline answers DEADLINE_EXCEEDED). */
export class TimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TimeoutError';
  }
}

/** Resolves or rejects with `promise`, or rejects with a TimeoutError after `ms`; the timer never keeps the process alive. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what} did not finish within ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Milliseconds on the system's monotonic clock (CLOCK_MONOTONIC, shared by every process since boot):
 * never jumps with the wall clock, and a restarted process reads on from where the last one was.
 */
export const monotonicMs = (): number => Number(process.hrtime.bigint() / 1_000_000n);
