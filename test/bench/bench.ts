// `node dist/test/bench/bench.js [--runs N] [--size-mib M] [--files F] [--pairs P]` (as root):
// tether against the baselines it is built on, all measured in this one run against one throwaway sshd.
//
//   mount        raw `sshfs` with its defaults            vs  NodeStageVolume (the whole RPC)
//   write/read   dd through a raw default sshfs mount     vs  dd through tether's published target path
//   small files  F × 4 KiB writeFile through each         (sequential, one Node loop)
//   controller   CreateVolume+DeleteVolume pairs/s        vs  the same directory work over one ssh2 SFTP
//                (sequential and 8 in flight)                 session in this process (the protocol's floor),
//                                                             without and with the fsync tether does
//
// Each metric is the median (min–max) of N runs; ratios are tether / baseline, of the medians. The
// machine is shared (2 vCPUs, often other jobs), so the two sides are interleaved as finely as the
// metric allows: both mounts are up at once, dd alternates raw/tether, small files and controller
// pairs run in chunks that alternate between the sides, and who goes first swaps every time.
// No timed unit tests: this script is how tether's speed is shown.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { Client, type SFTPWrapper } from 'ssh2';
import { csiClient, type CsiClient } from '../support/csi-client.js';
import { startDriver, type RunningDriver } from '../support/driver.js';
import { mountCap, mountsUnder, volumeDir } from '../support/helpers.js';
import { startSshServer, type SshServer } from '../support/sshd.js';

// ---- options ----

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const value = Number(process.argv[i + 1]);
  if (!Number.isInteger(value) || value < 1) {
    console.error(`bench: --${name} needs a positive integer`);
    process.exit(2);
  }
  return value;
}
const RUNS = option('runs', 7);
const SIZE_MIB = option('size-mib', 512);
const FILES = option('files', 1000);
const PAIRS = option('pairs', 200); // CreateVolume+DeleteVolume pairs per controller sample
const CONCURRENCY = 8;
const CMD_TIMEOUT_MS = 120_000;

const CAPABILITY = mountCap('SINGLE_NODE_MULTI_WRITER');
const FILE_4K = Buffer.alloc(4096, 'x');

// ---- timing and statistics ----

const now = () => Number(process.hrtime.bigint()) / 1e6; // ms

async function timed(work: () => Promise<unknown>): Promise<number> {
  const t0 = now();
  await work();
  return now() - t0;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

interface Metric {
  key: string;
  title: string;
  unit: string;
  baseline: string;
  higherIsBetter: boolean;
  raw: number[];
  tether: number[];
}

const metrics: Metric[] = [];
function metric(key: string, title: string, unit: string, baseline: string, higherIsBetter: boolean): Metric {
  const m = { key, title, unit, baseline, higherIsBetter, raw: [], tether: [] };
  metrics.push(m);
  return m;
}

const mountMs = metric('mount', 'mount latency', 'ms', 'raw sshfs', false);
const writeRate = metric('write', `seq write ${SIZE_MIB} MiB (conv=fsync)`, 'MiB/s', 'raw sshfs', true);
const readRate = metric('read', `cold seq read ${SIZE_MIB} MiB`, 'MiB/s', 'raw sshfs', true);
const smallRate = metric('small files', `create ${FILES} × 4 KiB files`, 'files/s', 'raw sshfs', true);
// Each controller row has a second baseline: the same SFTP work with the record fsync'd, as tether does
// (a record must survive a server crash). The tether samples are shared.
const ctlSeq = metric('controller seq', 'Create+DeleteVolume, sequential', 'pairs/s', 'raw SFTP', true);
const ctlSeqSync = metric('controller seq', 'Create+DeleteVolume, sequential', 'pairs/s', 'raw SFTP+fsync', true);
const ctlPar = metric(`controller ${CONCURRENCY}`, `Create+DeleteVolume, ${CONCURRENCY} in flight`, 'pairs/s', 'raw SFTP', true);
const ctlParSync = metric(`controller ${CONCURRENCY}`, `Create+DeleteVolume, ${CONCURRENCY} in flight`, 'pairs/s', 'raw SFTP+fsync', true);
ctlSeqSync.tether = ctlSeq.tether;
ctlParSync.tether = ctlPar.tether;

const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const cell = (xs: number[]) => (xs.length ? `${fmt(median(xs))} (${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))})` : 'n/a');
const ratio = (m: Metric) => (m.raw.length && m.tether.length ? median(m.tether) / median(m.raw) : NaN);

function printTable(): void {
  const rows = [
    ['metric', 'unit', 'baseline', 'baseline median (min–max)', 'tether median (min–max)', 'tether/baseline'],
    ...metrics.map((m) => [m.title, m.unit, m.baseline, cell(m.raw), cell(m.tether), `${ratio(m).toFixed(2)}×`]),
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const line = (r: string[]) => `| ${r.map((v, c) => (c >= 3 ? v.padStart(widths[c]!) : v.padEnd(widths[c]!))).join(' | ')} |`;
  console.log(line(rows[0]!));
  console.log(`|${widths.map((w, c) => (c >= 3 ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`);
  for (const r of rows.slice(1)) console.log(line(r));
  console.log('');
  for (const m of metrics) {
    const better = m.higherIsBetter ? 'higher is better' : 'lower is better';
    console.log(`${m.key}: tether ${ratio(m).toFixed(2)}× ${m.baseline} (${m.unit}, ${better})`);
  }
}

// ---- the machine ----

const run = (cmd: string, args: string[]) => execa(cmd, args, { timeout: CMD_TIMEOUT_MS, stdin: 'ignore', env: { LC_ALL: 'C' } });

async function dropCaches(level: '2' | '3'): Promise<void> {
  await run('sync', []);
  await writeFile('/proc/sys/vm/drop_caches', level);
}

async function unmountAll(dir: string): Promise<void> {
  for (let round = 0; round < 5; round++) {
    const targets = await mountsUnder(dir); // deepest first
    if (!targets.length) return;
    for (const t of targets) {
      const r = await execa('umount', ['--', t], { timeout: 10_000, reject: false });
      if (r.failed) await execa('umount', ['-l', '--', t], { timeout: 10_000, reject: false });
    }
  }
}

// ---- raw sshfs ----

interface Raw { server: SshServer; knownHosts: string; log: string }

/**
 * Plain sshfs with its own defaults; only what a non-interactive, pinned, key-only login needs.
 * sshfs daemonizes and its ssh child keeps stderr open, so stderr goes to a file, not a pipe.
 */
async function rawMount(raw: Raw, dir: string, mnt: string): Promise<void> {
  const { server } = raw;
  const args = [
    '-p', String(server.port), `${server.user}@${server.host}:${dir}`, mnt,
    '-o', `IdentityFile=${server.clientKeyFile},UserKnownHostsFile=${raw.knownHosts},StrictHostKeyChecking=yes,BatchMode=yes`,
  ];
  const result = await execa('sshfs', args, { timeout: 30_000, stdin: 'ignore', stdout: 'ignore', stderr: { file: raw.log }, reject: false });
  if (result.failed) {
    const log = (await readFile(raw.log, 'utf8').catch(() => '')).trim().split('\n').slice(-3).join(' | ');
    throw new Error(`raw sshfs mount failed (${result.exitCode ?? result.signal}): ${log}`);
  }
}

const rawUnmount = (mnt: string) => run('fusermount3', ['-u', mnt]);

// ---- I/O through a mount ----

const ddWrite = (file: string) => run('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', `count=${SIZE_MIB}`, 'conv=fsync']);
const ddRead = (file: string) => run('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M']);

const ddSeconds = async (work: () => Promise<unknown>) => (await timed(work)) / 1000;

/** `order(k, xs)`: xs, rotated by k, so every side is first as often as the others. */
const order = <T>(k: number, xs: T[]): T[] => xs.map((_, i) => xs[(i + k) % xs.length]!);

/** Runs `total` items in chunks of `chunk`, alternating the sides per chunk; returns each side's total ms. */
async function interleaved(total: number, chunk: number, sides: Array<(from: number, to: number) => Promise<unknown>>): Promise<number[]> {
  const ms = sides.map(() => 0);
  for (let from = 0, k = 0; from < total; from += chunk, k++) {
    const to = Math.min(total, from + chunk);
    for (const i of order(k, sides.map((_, i) => i))) ms[i]! += await timed(() => sides[i]!(from, to));
  }
  return ms;
}

async function writeSmallFiles(dir: string, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i++) await writeFile(join(dir, `f${String(i).padStart(5, '0')}`), FILE_4K);
}

// ---- controller: tether vs the bare SFTP work ----

async function pool(total: number, concurrency: number, task: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < total; i = next++) await task(i);
  };
  return timed(() => Promise.all(Array.from({ length: concurrency }, worker)));
}

function sftpConnect(server: SshServer, privateKey: Buffer): Promise<{ client: Client; sftp: SFTPWrapper }> {
  const expected = Buffer.from(server.hostKey.split(' ')[1] ?? '', 'base64');
  return new Promise((resolve, reject) => {
    const client = new Client();
    client.once('error', reject);
    client.once('ready', () => client.sftp((err, sftp) => (err ? reject(err) : resolve({ client, sftp }))));
    client.connect({ host: server.host, port: server.port, username: server.user, privateKey, readyTimeout: 10_000, hostVerifier: (key: Buffer) => key.equals(expected) });
  });
}

/**
 * The SFTP requests CreateVolume+DeleteVolume need at the least, with nothing around them (no lookups,
 * no fsync unless asked).
 */
function rawVolumeOps(sftp: SFTPWrapper, base: string, fsync: boolean) {
  const p = <T = unknown>(fn: (cb: (err: Error | null | undefined, v?: T) => void) => void) =>
    new Promise<T>((res, rej) => fn((err, v) => (err ? rej(err) : res(v as T))));
  const record = (name: string) =>
    Buffer.from(`${JSON.stringify({ kind: 'tether.volume/v1', name, capacityBytes: 2 ** 30, parameters: {}, onDelete: 'delete', contentSource: null, createdAt: new Date().toISOString(), publications: [] }, null, 2)}\n`);
  return {
    create: async (name: string) => {
      const dir = `${base}/${name}`;
      await p((cb) => sftp.mkdir(dir, { mode: 0o755 }, cb));
      await p((cb) => sftp.mkdir(`${dir}/data`, { mode: 0o755 }, cb));
      const data = record(name);
      const handle = await p<Buffer>((cb) => sftp.open(`${dir}/volume.json.tmp`, 'w', 0o644, cb));
      await p((cb) => sftp.write(handle, data, 0, data.length, 0, cb));
      if (fsync) await p((cb) => sftp.ext_openssh_fsync(handle, cb));
      await p((cb) => sftp.close(handle, cb));
      await p((cb) => sftp.ext_openssh_rename(`${dir}/volume.json.tmp`, `${dir}/volume.json`, cb));
    },
    remove: async (name: string) => {
      const dir = `${base}/${name}`;
      await p((cb) => sftp.unlink(`${dir}/volume.json`, cb));
      await p((cb) => sftp.rmdir(`${dir}/data`, cb));
      await p((cb) => sftp.rmdir(dir, cb));
    },
  };
}

function tetherVolumeOps(csi: CsiClient) {
  return async (name: string) => {
    const { volume } = await csi.CreateVolume({ name, capacity_range: { required_bytes: String(2 ** 30) }, volume_capabilities: [CAPABILITY] });
    await csi.DeleteVolume({ volume_id: volume.volume_id });
  };
}

// ---- main ----

const cleanups: Array<[string, () => Promise<unknown>]> = [];
let cleaning: Promise<void> | undefined;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const [what, undo] of cleanups.reverse()) {
      await undo().catch((err: Error) => console.error(`bench: cleanup: ${what}: ${err.message}`));
    }
  })();
  return cleaning;
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    console.error(`\nbench: ${sig}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: it mounts, and drops the page cache');
  const began = now();
  const load0 = loadavg()[0]!.toFixed(2);
  console.log(`tether bench: ${RUNS} runs, ${SIZE_MIB} MiB sequential, ${FILES} small files, ${PAIRS} controller pairs per sample; `
    + `median (min–max); ratio = tether / baseline of the medians`);

  const work = await mkdtemp(join(tmpdir(), 'tether-bench-'));
  cleanups.push(['remove the work directory', async () => {
    if ((await mountsUnder(work)).length) throw new Error(`${work} still holds mounts; left in place`);
    await rm(work, { recursive: true, force: true });
  }]);

  const server = await startSshServer();
  cleanups.push(['stop sshd', () => server.stop()]);
  const raw: Raw = { server, knownHosts: join(work, 'known_hosts'), log: join(work, 'sshfs.log') };
  await writeFile(raw.knownHosts, `[${server.host}]:${server.port} ${server.hostKey}\n`);

  const driver: RunningDriver = await startDriver(server, { logLevel: 'warn', mountOptions: [] });
  cleanups.push(['stop tether', () => driver.stop()]);
  const csi = csiClient(driver.endpoint);
  cleanups.push(['close the CSI client', async () => csi.close()]);
  cleanups.push(['unmount leftovers', () => unmountAll(work)]); // before tether and sshd stop

  const { client, sftp } = await sftpConnect(server, await readFile(server.clientKeyFile));
  cleanups.push(['close the SFTP session', async () => client.end()]);
  await mkdir(join(server.root, 'raw-ctl'));
  const rawPairs = (fsync: boolean) => {
    const ops = rawVolumeOps(sftp, join(server.root, 'raw-ctl'), fsync);
    return async (name: string) => {
      await ops.create(name);
      await ops.remove(name);
    };
  };
  const rawPair = rawPairs(false);
  const rawPairSync = rawPairs(true);
  const tetherPair = tetherVolumeOps(csi);

  // One volume for the node-side runs; the raw mounts get a sibling directory on the same disk.
  const { volume } = await csi.CreateVolume({ name: 'bench-io', capacity_range: { required_bytes: String(2 ** 30) }, volume_capabilities: [CAPABILITY] });
  const volumeId: string = volume.volume_id;
  cleanups.push(['delete the volume', () => csi.DeleteVolume({ volume_id: volumeId })]);
  await csi.ControllerPublishVolume({ volume_id: volumeId, node_id: 'node-a', volume_capability: CAPABILITY });
  cleanups.push(['unpublish the volume', () => csi.ControllerUnpublishVolume({ volume_id: volumeId, node_id: 'node-a' })]);
  const volumeDataOnServer = join(server.root, volumeDir(volumeId), 'data');
  const rawDir = join(server.root, 'raw-io');
  await mkdir(rawDir);
  const rawMnt = join(work, 'raw-mnt');
  const staging = join(work, 'staging');
  const target = join(work, 'target');
  await mkdir(rawMnt);
  await mkdir(staging);

  const stage = () => csi.NodeStageVolume({ volume_id: volumeId, staging_target_path: staging, volume_capability: CAPABILITY });
  const publish = () => csi.NodePublishVolume({ volume_id: volumeId, staging_target_path: staging, target_path: target, volume_capability: CAPABILITY, readonly: false });
  const unpublish = () => csi.NodeUnpublishVolume({ volume_id: volumeId, target_path: target });
  const unstage = () => csi.NodeUnstageVolume({ volume_id: volumeId, staging_target_path: staging });
  cleanups.push(['unmount leftovers', async () => {
    await unpublish().catch(() => undefined);
    await unstage().catch(() => undefined);
    await unmountAll(work);
  }]);

  // Warm-up, untimed: ssh/sshfs binaries in the page cache, tether's SFTP session connected.
  await rawMount(raw, rawDir, rawMnt);
  await rawUnmount(rawMnt);
  await stage();
  await unstage();
  for (let i = 0; i < 20; i++) {
    await tetherPair(`bench-warm-${i}`);
    await rawPair(`warm-${i}`);
    await rawPairSync(`warm-${i}`);
  }

  const CHUNK_FILES = 50;
  const CHUNK_PAIRS = 40;
  const rate = (count: number, ms: number) => count / (ms / 1000);

  for (let r = 0; r < RUNS; r++) {
    // -- node side: both mounts up at once, raw and tether alternating --
    interface Side { root: string; server: string; samples: 'raw' | 'tether'; mount(): Promise<unknown> }
    const sides = order<Side>(r, [
      { root: rawMnt, server: rawDir, samples: 'raw', mount: () => rawMount(raw, rawDir, rawMnt) },
      { root: target, server: volumeDataOnServer, samples: 'tether', mount: stage },
    ]);
    try {
      for (const side of sides) mountMs[side.samples].push(await timed(side.mount));
      await publish();
      for (const side of sides) {
        await run('sync', []);
        writeRate[side.samples].push(SIZE_MIB / (await ddSeconds(() => ddWrite(join(side.root, 'seq.bin')))));
      }
      for (const side of sides) {
        await dropCaches('3');
        readRate[side.samples].push(SIZE_MIB / (await ddSeconds(() => ddRead(join(side.root, 'seq.bin')))));
      }
      for (const side of sides) {
        await rm(join(side.root, 'seq.bin'));
        await mkdir(join(side.root, 'small'));
      }
      await run('sync', []);
      const ms = await interleaved(FILES, CHUNK_FILES, sides.map((side) => (from, to) => writeSmallFiles(join(side.root, 'small'), from, to)));
      sides.forEach((side, i) => smallRate[side.samples].push(rate(FILES, ms[i]!)));
    } finally {
      await unpublish().catch(() => undefined);
      await unstage().catch(() => undefined);
      await rawUnmount(rawMnt).catch(() => undefined);
    }
    for (const side of sides) await rm(join(side.server, 'small'), { recursive: true, force: true }); // on the server's disk, not through sshfs

    // -- controller: raw SFTP, raw SFTP+fsync and tether alternating in chunks of pairs --
    const variants: Array<[string, (name: string) => Promise<void>]> = [['r', rawPair], ['f', rawPairSync], ['bench-t', tetherPair]];
    for (const [concurrency, rows] of [[1, [ctlSeq, ctlSeqSync]], [CONCURRENCY, [ctlPar, ctlParSync]]] as const) {
      await dropCaches('2'); // unique names leave negative dentries that slow later mkdirs
      const turn = order(r, variants.map((_, i) => i));
      const ms = await interleaved(PAIRS, CHUNK_PAIRS, turn.map((v) => async (from, to) => {
        const [prefix, pair] = variants[v]!;
        await pool(to - from, concurrency, (i) => pair(`${prefix}-c${concurrency}-r${r}-${from + i}`));
      }));
      const msOf = (v: number) => ms[turn.indexOf(v)]!;
      rows[0].raw.push(rate(PAIRS, msOf(0)));
      rows[1].raw.push(rate(PAIRS, msOf(1)));
      rows[0].tether.push(rate(PAIRS, msOf(2)));
    }

    const last = (xs: number[]) => fmt(xs[xs.length - 1] ?? NaN);
    process.stderr.write(`run ${r + 1}/${RUNS} (${((now() - began) / 1000).toFixed(0)} s): `
      + metrics.filter((m) => m.tether.length === r + 1).map((m) => `${m.key}${m.baseline.endsWith('fsync') ? ' (fsync)' : ''} ${last(m.raw)}/${last(m.tether)}`).join(', ') + ' (raw/tether)\n');
  }

  console.log('');
  printTable();
  console.log(`\nwall time ${((now() - began) / 1000).toFixed(1)} s; sshd, sshfs, dd and tether share this machine's ${cpus().length} CPUs; `
    + `load average ${load0} at the start, ${loadavg()[0]!.toFixed(2)} at the end (anything else running skews both sides)`);
}

main()
  .catch((err: Error) => {
    console.error(`bench failed: ${err.message}`);
    process.exitCode = 1;
  })
  .finally(cleanup);
