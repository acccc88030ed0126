// `npm run bench [-- --smoke] [--only a,b] [--runs N] [--results FILE]` (as root): every benchmark of
// tether against the baseline it is held to, measured side by side in this one run, printed as one
// table (metric, baseline, tether, ratio, target, met). --smoke runs each benchmark tiny, so that
// none rots (CI); its numbers mean nothing. --results writes the table and the machine to FILE
// (bench/RESULTS.md holds the last full run).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cleanups, Skipped, type BenchContext, type Suite } from './lib/context.js';
import { met, table, type Row } from './lib/report.js';
import { now } from './lib/stats.js';
import { SUITES } from './suites/index.js';

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? undefined : process.argv[i + 1];
}

function usage(message: string): never {
  console.error(`bench: ${message}\nusage: npm run bench [-- --smoke] [--only ${SUITES.map((s) => s.name).join(',')}] [--runs N] [--results FILE] [--rows FILE]`);
  process.exit(2);
}

const smoke = process.argv.includes('--smoke');
const runs = Number(option('runs') ?? (smoke ? 1 : 7));
if (!Number.isInteger(runs) || runs < 1) usage('--runs needs a positive integer');
const only = option('only')?.split(',');
for (const name of only ?? []) if (!SUITES.some((s) => s.name === name)) usage(`no benchmark named ${name}`);
const resultsFile = option('results');
/** Where to write the rows as JSON (the nfs suite reads back what its run in the guest measured). */
const rowsFile = option('rows');

const cleanups = new Cleanups();
const say = (message: string) => process.stderr.write(`${message}\n`);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    say(`bench: ${sig}: cleaning up`);
    void cleanups.run(say).finally(() => process.exit(130));
  });
}

function machine(): string {
  const cpu = cpus();
  return `${cpu.length} × ${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}`;
}

async function runSuite(suite: Suite): Promise<{ rows: Row[]; error?: string; skipped?: string }> {
  const skipped = await suite.unavailable?.();
  if (skipped) return { rows: [], skipped };
  const work = await mkdtemp(join(tmpdir(), `tether-bench-${suite.name}-`));
  const suiteCleanups = new Cleanups();
  cleanups.add(`${suite.name}: cleanups`, () => suiteCleanups.run(say));
  const ctx: BenchContext = {
    smoke,
    runs,
    work,
    size: (full, small) => (smoke ? small : full),
    defer: (what, undo) => suiteCleanups.add(what, undo),
    progress: (message) => say(`  ${suite.name}: ${message}`),
  };
  suiteCleanups.add('remove the work directory', () => rm(work, { recursive: true, force: true }));
  try {
    const rows = await suite.run(ctx);
    const broken = rows.filter((r) => !Number.isFinite(r.tether));
    return broken.length ? { rows, error: `no number for ${broken.map((r) => r.metric).join(', ')}` } : { rows };
  } catch (err) {
    if (err instanceof Skipped) return { rows: [], skipped: err.message };
    return { rows: [], error: (err as Error).message };
  } finally {
    await suiteCleanups.run(say);
  }
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) usage('run as root: the benchmarks mount, and drop the page cache');
  const began = now();
  const startedAt = new Date();
  const load0 = loadavg()[0]!.toFixed(2);
  say(`tether bench (${smoke ? 'smoke: tiny sizes, numbers mean nothing' : `${runs} samples per metric`}) on ${machine()}`);
  const rows: Row[] = [];
  const outcome: string[] = [];
  let failed = 0;
  let skipped = 0;
  for (const suite of SUITES.filter((s) => !only || only.includes(s.name))) {
    say(`${suite.name}: ${suite.describe}`);
    const t0 = now();
    const result = await runSuite(suite);
    rows.push(...result.rows);
    const took = `${((now() - t0) / 1000).toFixed(1)} s`;
    if (result.skipped) {
      skipped++;
      outcome.push(`${suite.name}: SKIPPED (${result.skipped})`);
    } else if (result.error) {
      failed++;
      outcome.push(`${suite.name}: FAILED after ${took}: ${result.error}`);
    } else outcome.push(`${suite.name}: ${result.rows.length} rows in ${took}`);
    say(outcome.at(-1)!);
  }
  const wall = ((now() - began) / 1000).toFixed(0);
  const footer = `${startedAt.toISOString()}; ${machine()}; load average ${load0} at the start, ${loadavg()[0]!.toFixed(2)} at the end; wall time ${wall} s`;
  const body = table(rows);
  console.log(`\n${body}\n\n${footer}\n${outcome.join('\n')}`);
  const unmet = rows.filter((r) => met(r) === false);
  if (!smoke) console.log(`targets met: ${rows.length - unmet.length} of ${rows.length}${unmet.length ? `; not met: ${unmet.map((r) => `${r.suite}: ${r.metric}`).join('; ')}` : ''}`);
  const passed = outcome.length - failed - skipped;
  console.log(`bench${smoke ? '-smoke' : ''}: ${passed} passed, ${failed} failed, ${skipped} skipped`);
  if (rowsFile) await writeFile(rowsFile, JSON.stringify(rows));
  if (resultsFile) {
    const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
    await writeFile(resultsFile, `# Benchmark results\n\nThe last full run of \`${command}\`: ${footer}.\n`
      + 'Each row compares tether with a baseline measured in the same run, the two sides interleaved; '
      + 'ratio = tether / baseline. See bench/run.ts and bench/suites/ for how each number is taken.\n\n'
      + `${body}\n\n${outcome.map((o) => `- ${o}`).join('\n')}\n`);
  }
  return failed ? 1 : 0;
}

main()
  .then((code) => (process.exitCode = code))
  .catch((err: Error) => {
    say(`bench failed: ${err.message}`);
    process.exitCode = 1;
  })
  .finally(() => cleanups.run(say));
