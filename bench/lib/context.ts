// What every benchmark suite is given: the run's size (full or smoke), a scratch directory, and a
// place to register cleanups that run in reverse order however the suite ends.
import type { Row } from './report.js';

export interface BenchContext {
  /** A tiny run that proves the benchmark still works (CI); its numbers mean nothing. */
  smoke: boolean;
  /** Samples per metric in a full run (each sample interleaves tether and its baseline). */
  runs: number;
  /** A fresh directory of this suite's, removed afterwards. */
  work: string;
  /** `full` in a full run, `smoke` in a smoke run. */
  size<T>(full: T, smoke: T): T;
  /** Registers `undo` to run when the suite ends (last registered, first run). */
  defer(what: string, undo: () => Promise<unknown>): void;
  /** A progress line on stderr (the table goes to stdout). */
  progress(message: string): void;
}

export interface Suite {
  name: string;
  /** One line: what is compared with what. */
  describe: string;
  /** Root, tools, a kernel feature…: undefined if the suite can run here, else why not. */
  unavailable?(): Promise<string | undefined>;
  run(ctx: BenchContext): Promise<Row[]>;
}

/** Thrown by a suite that cannot run here (a kernel feature, a tool): the run counts it as skipped, loudly. */
export class Skipped extends Error {}

/** Runs registered cleanups in reverse order, each once, reporting failures without throwing. */
export class Cleanups {
  private readonly undo: Array<[string, () => Promise<unknown>]> = [];

  add(what: string, fn: () => Promise<unknown>): void {
    this.undo.push([what, fn]);
  }

  async run(report: (message: string) => void): Promise<void> {
    while (this.undo.length) {
      const [what, fn] = this.undo.pop()!;
      await fn().catch((err: Error) => report(`cleanup: ${what}: ${err.message}`));
    }
  }
}
