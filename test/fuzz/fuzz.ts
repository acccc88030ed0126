// Seeded fuzz test of every CSI method (Identity, Controller, GroupController, Node) against the real
// driver (`tether-csi --mode all`) on a real sshfs backend served by a throwaway sshd. It first makes
// a few real volumes, a snapshot and a group snapshot, so that a share of the calls carry valid IDs
// next to hostile values in their other fields; ~5% of the bodies are random bytes, ~4% another
// method's request. Calls run in batches of 100, 8 in flight, all over one HTTP/2 connection; after
// every batch a Probe on that connection must answer within 2 s. Then the invariants: the driver
// never exits, status codes the spec names for each method, error messages under 1 KiB, no secret in
// any message or log line, no forged log line, no file or mount outside the test's directories, the
// driver's memory bounded. Prints codes per method, the seed, RSS, each fault with a short description of a call that
// shows it, and "fuzz: N passed, M failed, 0 skipped".
//
//   node dist/test/fuzz/fuzz.js [--calls N] [--seed S]        the run (default 10,500 calls, seed 1)
//   node dist/test/fuzz/fuzz.js --seed S --from I --calls N   calls I..I+N-1 of seed S (a batch, say)
//   node dist/test/fuzz/fuzz.js --seed S --only I             call I of seed S alone, to reproduce a fault
import { mkdir, mkdtemp, readFile, realpath, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { status } from '@grpc/grpc-js';
import { startDriver, type RunningDriver } from '../support/driver.js';
import { startSshServer, type SshServer } from '../support/sshd.js';
import { addNames, buildCall, describeCall, loadMethods, type Call, type Method } from './calls.js';
import { codeName } from './codes.js';
import { isUnder, listMounts, listWatched, newEntries, newMounts, rssBytes, unmountUnder } from './host.js';
import { foreignLogLines, judge, leaks, RULES } from './judge.js';
import { Ledger, snippet } from './ledger.js';
import { pathPlan, type PathPlan } from './paths.js';
import type { Fixtures } from './requests.js';
import { Transport, type Outcome } from './transport.js';

const DEFAULT_SEED = 1;
const DEFAULT_CALLS = 10_500;
const BATCH_SIZE = 100;
const CONCURRENCY = 8;
const CALL_DEADLINE_MS = 10_000;
const PROBE_DEADLINE_MS = 2_000;
/** A stalled call sent again alone: long enough for any proper answer, short enough to try several. */
const ISOLATION_DEADLINE_MS = 3_000;
/** How long a stalled driver may take to answer again before the stalled calls are replayed. */
const RECOVERY_MS = 30_000;
/** Calls that may end at their deadline: the backend is local and answers, so ~none should. */
const MAX_DEADLINE_SHARE = 0.001;
/**
 * The driver's memory: RSS at the end ≤ max(RSS_FLOOR, 2 × RSS after the warm-up batches). Measured
 * (seed 1, 10,500 calls, three runs): 125–133 MB after warm-up, peak 176–201 MB, 176–195 MB at the
 * end — it levels off once every kind of value has passed through. A leak of what the calls carry
 * (67 MB of request bodies over a run: ~10 1 MiB strings, ~150 100,000-char IDs, ~50 10,000-entry
 * maps and lists among them, each copied several times on its way through the driver and into its
 * log) grows past the bound.
 */
const RSS_FLOOR = 250 * 1024 * 1024;
const WARMUP_BATCHES = 10;
const NODE_ID = 'fuzz-node';
/** Fault groups printed in full (the biggest); the rest are counted. */
const MAX_GROUPS_SHOWN = 40;

const FIXTURE_VOLUMES = [
  { name: 'fuzz-fixture-0', mode: 'SINGLE_NODE_WRITER' },
  { name: 'fuzz-fixture-1', mode: 'MULTI_NODE_MULTI_WRITER' },
  { name: 'fuzz-fixture-2', mode: 'MULTI_NODE_READER_ONLY' },
] as const;
const FIXTURE_SNAPSHOT = 'fuzz-fixture-snapshot';
const FIXTURE_GROUP = 'fuzz-fixture-group';

interface Env {
  work: string;
  paths: PathPlan;
  server: SshServer;
  driver: RunningDriver;
  transport: Transport;
  methods: Method[];
  fixtures: Fixtures;
  /** Lines of the sshd client key's base64 body: none may show in a message or a log. */
  secretLines: string[];
  /** Every path component the fuzzed requests carried (see addNames): what a stray file would be named. */
  sentNames: Set<string>;
}

/** The checks of the run: each passes or fails once; failures are printed as they are decided. */
class Checks {
  passed = 0;
  failed = 0;

  check(name: string, ok: boolean, detail = ''): boolean {
    if (ok) this.passed++;
    else this.failed++;
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? `: ${detail}` : ''}`);
    return ok;
  }

  /** A check decided once per batch: only failures are printed. */
  quiet(ok: boolean, name: string, detail: string): void {
    if (ok) this.passed++;
    else this.check(name, false, detail);
  }
}

/** What the driver's memory did over the run. */
interface RssSamples {
  warm?: number;
  peak: number;
  last?: number;
}

interface Done {
  call: Call;
  outcome: Outcome;
}

async function main(): Promise<number> {
  const { seed, indices, rerun } = parseCommandLine();
  console.log(`fuzz: seed ${seed}, ${indices.length} call(s); rerun exactly with: node dist/test/fuzz/fuzz.js --seed ${seed} ${rerun}`);
  const started = performance.now();
  const checks = new Checks();
  const filesBefore = await listWatched();
  const mountsBefore = await listMounts();
  const env = await setUp();
  const ownDirs = [env.work, env.driver.dir, env.server.workDir, '/run/sshd'];
  const ledger = new Ledger();
  try {
    await makeFixtures(env);
    const rss = await runBatches(env, seed, indices, ledger, checks);
    report(ledger, env, rss, seed);
    checkCalls(ledger, checks, indices.length);
    checkRss(checks, rss);
    const mounts = newMounts(mountsBefore, await listMounts(), ownDirs, env.server.root);
    checks.check('no mount outside the test directories', mounts.length === 0, mounts.slice(0, 10).map((m) => `${snippet(m.target, 120)} (${m.source})`).join(', '));
  } finally {
    await tearDown(env);
    await removeWork(env.work);
  }
  const log = env.driver.logs();
  checks.check('no secret in the driver log', !leaks(log, env.secretLines), `${(log.length / 1e6).toFixed(1)} MB of log scanned`);
  const foreign = foreignLogLines(log);
  checks.check('every driver log line is one JSON object (no forged or split lines)', foreign.length === 0, foreign.slice(0, 3).map((l) => snippet(l, 120)).join(', '));
  checkFiles(checks, filesBefore, await listWatched(), ownDirs, env.sentNames);
  console.log(`fuzz: ${((performance.now() - started) / 1000).toFixed(1)} s, ${ledger.calls} calls, ${env.transport.reconnects} reconnect(s); seed ${seed}`);
  console.log(`fuzz: ${checks.passed} passed, ${checks.failed} failed, 0 skipped`);
  return checks.failed ? 1 : 0;
}

function parseCommandLine(): { seed: number; indices: number[]; rerun: string } {
  const { values } = parseArgs({ options: { calls: { type: 'string', default: String(DEFAULT_CALLS) }, seed: { type: 'string', default: String(DEFAULT_SEED) }, from: { type: 'string', default: '0' }, only: { type: 'string' } } });
  const seed = integerArg('--seed', values.seed);
  if (values.only !== undefined) return { seed, indices: [integerArg('--only', values.only)], rerun: `--only ${values.only}` };
  const from = integerArg('--from', values.from);
  const count = integerArg('--calls', values.calls);
  return { seed, indices: Array.from({ length: count }, (_, i) => from + i), rerun: `--calls ${count}${from ? ` --from ${from}` : ''}` };
}

function integerArg(name: string, value: string | undefined): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got ${value}`);
  return n;
}

/**
 * A temp tree for every path a Node call may use, a throwaway sshd, and the driver — started from
 * inside the tree, so that a relative path resolves (in the driver) to a place inside it.
 */
async function setUp(): Promise<Env> {
  const work = await realpath(await mkdtemp(path.join(os.tmpdir(), 'tether-fuzz-')));
  const paths = pathPlan(path.join(work, 'node'));
  for (const dir of [paths.cwd, ...paths.staging, path.dirname(paths.targets[0]!)]) await mkdir(dir, { recursive: true });
  const server = await startSshServer();
  const home = process.cwd();
  process.chdir(paths.cwd);
  let driver: RunningDriver;
  try {
    driver = await startDriver(server, { nodeId: NODE_ID, mode: 'all', logLevel: 'info' });
  } finally {
    process.chdir(home);
  }
  const key = await readFile(server.clientKeyFile, 'utf8');
  const secretLines = key.split('\n').filter((l) => l.length >= 20 && !l.startsWith('-----'));
  return {
    work,
    paths,
    server,
    driver,
    transport: new Transport(driver.endpoint),
    methods: loadMethods(),
    fixtures: { volumeIds: [], accessModes: [], snapshotIds: [], groupSnapshotIds: [], nodeId: NODE_ID },
    secretLines,
    sentNames: new Set(),
  };
}

/** Sends one well-formed request (fixtures, clean-up); resolves with its outcome and decoded response. */
async function unary(env: Env, name: string, request: object): Promise<{ outcome: Outcome; response?: Record<string, any> }> {
  const method = env.methods.find((m) => m.name === name)!;
  const outcome = await env.transport.call(method.path, method.serialize(request), CALL_DEADLINE_MS);
  return { outcome, response: outcome.response ? (method.decodeResponse(outcome.response) as Record<string, any>) : undefined };
}

const mountCapability = (mode: string) => ({ access_mode: { mode }, mount: { fs_type: '', mount_flags: [] } });

/** Creates the real volumes, snapshot and group snapshot whose IDs the fuzzed calls carry. */
async function makeFixtures(env: Env): Promise<void> {
  const ids = await ensureFixtures(env);
  if (ids.problems.length) throw new Error(`could not make the fixtures: ${ids.problems.join('; ')}`);
  Object.assign(env.fixtures, { volumeIds: ids.volumeIds, accessModes: FIXTURE_VOLUMES.map((v) => v.mode), snapshotIds: [ids.snapshotId], groupSnapshotIds: [ids.groupId] });
  console.log(`fixtures: volumes ${ids.volumeIds.join(', ')}; snapshot ${ids.snapshotId}; group snapshot ${ids.groupId}`);
}

/**
 * Creates the fixtures, or finds them (the Create calls are idempotent): fuzzed Delete calls with
 * valid IDs remove them now and then, so this runs again after such a batch to keep valid IDs valid.
 * Their IDs follow from their names, so they come back the same.
 */
async function ensureFixtures(env: Env): Promise<{ volumeIds: string[]; snapshotId: string; groupId: string; problems: string[] }> {
  const problems: string[] = [];
  const answer = (what: string, r: { outcome: Outcome }) => {
    if (r.outcome.code !== status.OK) problems.push(`${what}: ${codeName(r.outcome.code)} ${snippet(r.outcome.details, 200)}`);
  };
  const volumeIds: string[] = [];
  for (const { name, mode } of FIXTURE_VOLUMES) {
    const r = await unary(env, 'CreateVolume', { name, volume_capabilities: [mountCapability(mode)], capacity_range: { required_bytes: '1048576' } });
    answer(`CreateVolume ${name}`, r);
    volumeIds.push(r.response?.volume?.volume_id ?? '');
  }
  const snapshot = await unary(env, 'CreateSnapshot', { name: FIXTURE_SNAPSHOT, source_volume_id: volumeIds[0] });
  answer('CreateSnapshot', snapshot);
  const group = await unary(env, 'CreateVolumeGroupSnapshot', { name: FIXTURE_GROUP, source_volume_ids: volumeIds.slice(1) });
  answer('CreateVolumeGroupSnapshot', group);
  return { volumeIds, snapshotId: snapshot.response?.snapshot?.snapshot_id ?? '', groupId: group.response?.group_snapshot?.group_snapshot_id ?? '', problems };
}

/**
 * Runs the calls in batches. After each: the driver must still run (else the run stops there), a
 * Probe on the same connection must answer (else the connection is replaced, so the rest of the run
 * can still find other faults), stalled calls are isolated, RSS is sampled, and the fixtures are
 * restored if a Delete went through.
 */
async function runBatches(env: Env, seed: number, indices: readonly number[], ledger: Ledger, checks: Checks): Promise<RssSamples> {
  const rss: RssSamples = { peak: 0 };
  const started = performance.now();
  let restoreProblems = 0;
  let crash = '';
  for (let b = 0; b * BATCH_SIZE < indices.length && !crash; b++) {
    if (b % 10 === 0) console.log(`calls from #${indices[b * BATCH_SIZE]}: ${ledger.failures.length} fault(s), ${ledger.deadlines.length} deadline(s) so far, ${((performance.now() - started) / 1000).toFixed(0)} s`);
    const batch = await runBatch(env, seed, indices.slice(b * BATCH_SIZE, (b + 1) * BATCH_SIZE), ledger);
    const span = `calls ${batch[0]?.call.index}..${batch.at(-1)?.call.index}`;
    crash = exitOf(env.driver, span);
    if (crash) break;
    const probe = await env.transport.call('/csi.v1.Identity/Probe', Buffer.alloc(0), PROBE_DEADLINE_MS);
    checks.quiet(probe.code === status.OK, `Probe after batch ${b} (${span})`, `${codeName(probe.code)} after ${probe.ms} ms ${snippet(probe.details)}`);
    if (probe.code !== status.OK) env.transport.reconnect();
    await isolateStalls(env, ledger, b, batch);
    sampleRss(rss, await rssBytes(env.driver.process.pid!), b);
    if (!batch.some(({ call, outcome }) => outcome.code === status.OK && call.method.name.startsWith('Delete'))) continue;
    const restored = await ensureFixtures(env);
    restoreProblems += restored.problems.length;
    if (restored.problems.length && restoreProblems <= 5) console.log(`(fixtures after batch ${b}: ${restored.problems.join('; ')})`);
  }
  checks.check('driver process never exited', !crash, crash);
  if (restoreProblems) console.log(`(fixture restores that failed: ${restoreProblems})`);
  rss.warm ??= rss.last; // a short run (--only, small --calls) has no warm-up: compare with itself
  return rss;
}

/** One batch: its calls, CONCURRENCY at a time, each judged as it returns. */
async function runBatch(env: Env, seed: number, indices: readonly number[], ledger: Ledger): Promise<Done[]> {
  const done: Done[] = [];
  let next = 0;
  const worker = async () => {
    while (next < indices.length) {
      const call = buildCall(seed, indices[next++]!, env.methods, env.fixtures, env.paths);
      const outcome = await env.transport.call(call.method.path, call.body, CALL_DEADLINE_MS);
      record(env, ledger, call, outcome);
      done.push({ call, outcome });
      if (indices.length === 1) console.log(`${describeCall(call)}\n  value kinds: ${call.notes.join(', ') || '(none)'}\n  answer: ${codeName(outcome.code)} after ${outcome.ms} ms ${snippet(outcome.details, 400)}`);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return done.sort((a, b) => a.call.index - b.call.index);
}

function record(env: Env, ledger: Ledger, call: Call, outcome: Outcome): void {
  ledger.record(call, outcome);
  if (outcome.code === status.DEADLINE_EXCEEDED) ledger.deadlines.push(call);
  for (const rule of judge(call, outcome, env.secretLines)) ledger.fail(rule, call, outcome);
  try {
    addNames(call.method.decodeRequest(call.body), env.sentNames);
  } catch {
    // a body the driver could not decode either: it named nothing
  }
}

/** Why the driver process is gone, or '' while it runs. */
function exitOf(driver: RunningDriver, span: string): string {
  const { exitCode, signalCode } = driver.process;
  if (exitCode === null && signalCode === null) return '';
  return `exited (code ${exitCode}, signal ${signalCode}) during ${span}; log tail:\n${driver.logs().slice(-2000)}`;
}

/**
 * Calls that hit their deadline together are mostly held up by one of them (a wedged connection
 * stalls everything in flight on it), and which one is not clear from the batch. So each is sent
 * again alone, on a connection of its own, followed by a Probe there: the call that stalls again, or
 * leaves its connection unable to answer the Probe, is named as the cause.
 */
async function isolateStalls(env: Env, ledger: Ledger, b: number, batch: readonly Done[]): Promise<void> {
  const stalled = batch.filter(({ outcome }) => outcome.code === status.DEADLINE_EXCEEDED);
  if (!stalled.length) return;
  const causes: string[] = [];
  for (const { call } of stalled) {
    // A wedged driver may not answer anyone for seconds: each replay starts from a driver that answers.
    if (!(await answersAgain(env.driver.endpoint))) {
      causes.push(`(the driver did not answer a Probe on a new connection for ${RECOVERY_MS / 1000} s; stopped isolating)`);
      break;
    }
    const alone = new Transport(env.driver.endpoint);
    const again = await alone.call(call.method.path, call.body, ISOLATION_DEADLINE_MS);
    const probe = await alone.call('/csi.v1.Identity/Probe', Buffer.alloc(0), PROBE_DEADLINE_MS);
    alone.close();
    if (again.code === status.DEADLINE_EXCEEDED || probe.code !== status.OK) {
      causes.push(`#${call.index} ${call.method.name} [${call.kind}] (${call.notes.join(', ') || 'no notes'}) → alone: ${codeName(again.code)}, then Probe ${codeName(probe.code)}`);
    }
  }
  const found = causes.length ? `stalls alone too: ${causes.join('; ')}` : 'none stalls alone (a stall that needs concurrency: rerun the batch with --from)';
  console.log(`(batch ${b}: ${stalled.length} call(s) hit the deadline; ${found})`);
  ledger.stallCauses.push(...causes);
}

/** Waits (up to RECOVERY_MS) until a Probe on a new connection answers OK. */
async function answersAgain(endpoint: string): Promise<boolean> {
  for (const until = performance.now() + RECOVERY_MS; performance.now() < until; ) {
    const fresh = new Transport(endpoint);
    const probe = await fresh.call('/csi.v1.Identity/Probe', Buffer.alloc(0), PROBE_DEADLINE_MS);
    fresh.close();
    if (probe.code === status.OK) return true;
  }
  return false;
}

function sampleRss(rss: RssSamples, now: number | undefined, b: number): void {
  if (now === undefined) return;
  rss.peak = Math.max(rss.peak, now);
  rss.last = now;
  if (b === WARMUP_BATCHES - 1) rss.warm = now;
}

const mb = (n: number | undefined) => (n === undefined ? '?' : `${(n / 1024 / 1024).toFixed(0)} MB`);

function report(ledger: Ledger, env: Env, rss: RssSamples, seed: number): void {
  console.log(`\nstatus codes per method (${ledger.calls} calls; mean/longest answer time):`);
  for (const line of ledger.codeTable()) console.log(line);
  console.log(`driver RSS: after warm-up ${mb(rss.warm)}, peak ${mb(rss.peak)}, at the end ${mb(rss.last)}; driver log ${(env.driver.logs().length / 1e6).toFixed(1)} MB`);
  console.log(`slowest calls:\n${ledger.slowest.map(({ call, outcome }) => `    ${outcome.ms} ms ${codeName(outcome.code)} ${describeCall(call).slice(0, 200)}`).join('\n')}`);
  if (ledger.deadlines.length) console.log(`calls that hit their ${CALL_DEADLINE_MS / 1000} s deadline: ${ledger.deadlines.length}; of those, sent again alone, these stall again or wedge their connection:\n${ledger.stallCauses.map((c) => `    ${c}`).join('\n') || '    (none)'}`);
  if (ledger.failures.length) console.log(`\nfaults (seed ${seed}; rerun one call with --seed ${seed} --only <#>):\n${ledger.failureGroups(MAX_GROUPS_SHOWN).join('\n')}\n`);
}

/** One check per rule over all calls, and the deadline bound. */
function checkCalls(ledger: Ledger, checks: Checks, calls: number): void {
  for (const rule of Object.values(RULES)) {
    const n = ledger.count(rule);
    checks.check(`no ${rule}`, n === 0, n ? `${n} call(s), see faults above` : '');
  }
  const maxDeadlines = Math.floor(calls * MAX_DEADLINE_SHARE);
  checks.check(`calls past their deadline ≤ ${maxDeadlines}`, ledger.deadlines.length <= maxDeadlines, `${ledger.deadlines.length}`);
}

function checkRss(checks: Checks, rss: RssSamples): void {
  const bound = Math.max(RSS_FLOOR, 2 * (rss.warm ?? 0));
  checks.check('driver RSS bounded', rss.last !== undefined && rss.last <= bound, `${mb(rss.last)} at the end, bound max(${mb(RSS_FLOOR)}, 2 × ${mb(rss.warm)} after warm-up) = ${mb(bound)}; peak ${mb(rss.peak)}`);
}

function checkFiles(checks: Checks, before: ReadonlySet<string>, after: ReadonlySet<string>, ownDirs: readonly string[], sentNames: ReadonlySet<string>): void {
  const { suspect, unattributed, others } = newEntries(before, after, ownDirs, sentNames);
  const ignored = [
    unattributed.length ? `ignored: ${unattributed.length} new in /tmp named after nothing sent (${unattributed.slice(0, 5).map((e) => snippet(e, 80)).join(', ')})` : '',
    others ? `${others} of other test runs, jest and npm` : '',
  ].filter(Boolean);
  checks.check('no file or directory created outside the test directories', suspect.length === 0, [...suspect.slice(0, 20).map((e) => snippet(e, 120)), ...ignored].join('; '));
}

/**
 * Undoes what the fuzzing left mounted: NodeUnpublish and NodeUnstage of every fixture volume at
 * every pool path, then a lazy unmount of anything still mounted in the tree (hostile paths inside
 * it); then stops the driver and sshd.
 */
async function tearDown(env: Env): Promise<void> {
  try {
    for (const volume_id of env.fixtures.volumeIds) {
      for (const target_path of env.paths.targets) await unary(env, 'NodeUnpublishVolume', { volume_id, target_path });
      for (const staging_target_path of env.paths.staging) await unary(env, 'NodeUnstageVolume', { volume_id, staging_target_path });
    }
  } finally {
    env.transport.close();
    if (!(await unmountUnder(env.paths.tree))) console.log(`(mounts left under ${env.paths.tree}: kept, not removed)`);
    await env.driver.stop().catch(() => undefined);
    await env.server.stop().catch(() => undefined);
  }
}

/** Removes the test's tree unless something is still mounted in it (never recurse into a live mount). */
async function removeWork(work: string): Promise<void> {
  if ((await listMounts()).some((m) => isUnder(m.target, work))) return;
  await rm(work, { recursive: true, force: true });
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    console.log('fuzz: 0 passed, 1 failed, 0 skipped');
    process.exit(1);
  },
);
