// Partition torture, sshfs: a single-writer volume on node A, whose link to the storage is cut
// silently while it writes; the orchestrator force-detaches it and moves the volume to node B at
// once, as Kubernetes and Swarm do with an unreachable node. Each node plugin (and the controller)
// runs in a network and mount namespace of its own; the SSH server in another. After each round the
// file on the server must show no record of A after B's first, none of B's lost or torn, and every
// record A was told was durable. Prints per-round lines, the takeover and fence times, and
// "partition-sshfs: N passed, M failed, 0 skipped".
// Usage: node dist/test/partition/partition.js [--rounds N]
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { csiClient, type CsiClient } from '../support/csi-client.js';
import { backendConfig, nfsBackendConfig, startDriverWith, type RunningDriver } from '../support/driver.js';
import { mountCap, volumeDir } from '../support/helpers.js';
import { startSshServer } from '../support/sshd.js';
import { inNamespacesOf, makeNetLab, type NetLab } from './netlab.js';
import { durableRecords, verifyRound } from './verify.js';

const WRITER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'writer.js');
const { values } = parseArgs({ options: { rounds: { type: 'string', default: '20' }, control: { type: 'boolean', default: false }, nfs: { type: 'boolean', default: false } } });
const rounds = Number(values.rounds);
/**
 * --nfs: the same on NFS, inside the user-mode Linux guest (test/nfs/run.sh): nfs-ganesha in the
 * guest's own namespace, the node plugins in namespaces of their own, the controller beside the
 * server. Slower terms: everything is slower under UML.
 */
const NFS = values.nfs === true;
/**
 * Terms: a short cut (up to 1.8 s) plus TCP's retransmission back-off (a renewal sent into the cut is
 * resent ~3 s after it) must fit into term − margin, or the holder rightly fences itself.
 */
/**
 * How long after the term B may take to get the volume: 5 s (the issue's goal); 8 s in the NFS guest,
 * a single-CPU user-mode Linux where every process start costs ~0.3 s and A's fence (several processes)
 * runs on the same CPU as B's mount.
 */
const SLACK_S = NFS ? 8 : 5;
const TERMS = NFS ? { termSeconds: 10, renewSeconds: 1.5, fenceMarginSeconds: 4 } : { termSeconds: 8, renewSeconds: 1, fenceMarginSeconds: 2 };
const RECORDS_B = 50;
/**
 * --control: the same rounds on a MULTI_NODE_MULTI_WRITER volume, which takes no lease by definition:
 * B gets it at once, and the checks must then see the corruption the lease prevents (the test can fail).
 */
const CONTROL = values.control === true;
const CAP = mountCap(CONTROL ? 'MULTI_NODE_MULTI_WRITER' : 'SINGLE_NODE_WRITER');
const LABEL = `partition-${NFS ? 'nfs' : 'sshfs'}${CONTROL ? '-control' : ''}`;

interface RoundResult {
  round: number;
  kind: string;
  problems: string[];
  takeoverMs?: number;
  fenceMs?: number;
  recordsA: number;
  durableA: number;
  /** NFS on a kernel whose fence cannot stop late writes: what the checks found, reported rather than failed (see the README). */
  lateWrites?: string[];
}

async function main(): Promise<number> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'tether-partition-'));
  let lab: NetLab | undefined;
  const drivers: RunningDriver[] = [];
  let server: Awaited<ReturnType<typeof startSshServer>> | undefined;
  try {
    lab = NFS ? await makeNetLab(['a', 'b'], { serverHere: true }) : await makeNetLab(['ctl', 'a', 'b']);
    let backendOf: (node: 'controller' | 'node') => object;
    let serverRoot: string;
    if (NFS) {
      backendOf = (node) => ({ ...nfsBackendConfig(), ...(node === 'node' ? { server: lab!.server.address } : {}) });
      serverRoot = process.env.NFS_EXPORT_DIR!;
    } else {
      server = await startSshServer({ netns: { name: lab.server.netns!, host: lab.server.address }, port: 2222 });
      const sshfs = backendConfig(server, 'box', ['ServerAliveInterval=2', 'ServerAliveCountMax=2']);
      backendOf = () => sshfs;
      serverRoot = server.root;
    }
    const extraConfig = { lease: TERMS, releaseIdleAfterSeconds: 0 };
    const start = (mode: 'controller' | 'node', netns: string | undefined, nodeId?: string) => startDriverWith([backendOf(mode === 'controller' ? 'controller' : 'node')], { mode, nodeId, netns, extraConfig, logLevel: 'info' });
    const [ctl, nodeA, nodeB] = await Promise.all([start('controller', lab.hosts.ctl), start('node', lab.hosts.a!, 'node-a'), start('node', lab.hosts.b!, 'node-b')]);
    drivers.push(ctl, nodeA, nodeB);
    const [c, a, b] = [ctl, nodeA, nodeB].map((d) => csiClient(d.endpoint)) as [CsiClient, CsiClient, CsiClient];
    await a.NodeGetInfo({});
    await b.NodeGetInfo({});
    const results: RoundResult[] = [];
    for (let round = 1; round <= rounds; round++) {
      const result = await runRound({ round, lab, c, a, b, nodeA, nodeB, work, serverRoot });
      results.push(result);
      const times = `takeover ${result.takeoverMs ?? '-'} ms, fence ${result.fenceMs ?? '-'} ms, A wrote ${result.recordsA} (${result.durableA} durable)`;
      const late = result.lateWrites?.length ? ` (late writes, as the README states for this kernel: ${result.lateWrites.join('; ')})` : '';
      console.log(`round ${round} (${result.kind}): ${result.problems.length ? `FAILED: ${result.problems.join('; ')}` : 'passed'}${late}; ${times}`);
    }
    return report(results);
  } finally {
    if (process.env.TETHER_PARTITION_LOGS) {
      await mkdir(process.env.TETHER_PARTITION_LOGS, { recursive: true });
      for (const [i, d] of drivers.entries()) await writeFile(path.join(process.env.TETHER_PARTITION_LOGS, `${['controller', 'node-a', 'node-b'][i]}.log`), d.logs());
    }
    for (const d of drivers) await d.stop().catch(() => undefined);
    if (lab) {
      for (const ns of [...Object.values(lab.hosts), ...(lab.server.netns ? [lab.server.netns] : [])]) {
        const pids = (await execa('ip', ['netns', 'pids', ns], { reject: false })).stdout.split('\n').filter(Boolean);
        for (const pid of pids) (() => { try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ } })();
      }
    }
    await server?.stop().catch(() => undefined);
    await lab?.destroy();
    await rm(work, { recursive: true, force: true }).catch(() => undefined);
  }
}

interface RoundContext {
  round: number;
  lab: NetLab;
  c: CsiClient;
  a: CsiClient;
  b: CsiClient;
  nodeA: RunningDriver;
  nodeB: RunningDriver;
  work: string;
  serverRoot: string;
}

/** Odd rounds: a long cut (A fences, B takes over). Even rounds: a short cut (A renews again; B waits until A lets go). */
async function runRound(ctx: RoundContext): Promise<RoundResult> {
  const { round, lab, c, a, b, nodeA, nodeB, work } = ctx;
  const long = CONTROL || round % 2 === 1;
  const modeA = round % 4 < 2 ? 'fsync5' : 'reopen';
  const kind = `${long ? 'long' : 'short'} cut, A ${modeA}${CONTROL ? `, no lease (control${round % 2 ? '' : ', link back after 1.5 s'})` : ''}`;
  const problems: string[] = [];
  const dir = path.join(work, `r${round}`);
  await mkdir(dir, { recursive: true });
  const paths = { stagingA: `${dir}/a-staging`, targetA: `${dir}/a-target`, stagingB: `${dir}/b-staging`, targetB: `${dir}/b-target`, progressA: `${dir}/progress-a`, progressB: `${dir}/progress-b` };
  const { volume } = await c.CreateVolume({ name: `partition-${round}-${Date.now()}`, volume_capabilities: [CAP], capacity_range: { required_bytes: 1 << 20 } });
  const id: string = volume.volume_id;
  await c.ControllerPublishVolume({ volume_id: id, node_id: 'node-a', volume_capability: CAP });
  await a.NodeStageVolume({ volume_id: id, staging_target_path: paths.stagingA, volume_capability: CAP });
  await a.NodePublishVolume({ volume_id: id, staging_target_path: paths.stagingA, target_path: paths.targetA, volume_capability: CAP });
  const [cmd, args] = inNamespacesOf(nodeA.process.pid!, 'node', [WRITER, `${paths.targetA}/log`, 'A', modeA, '0', paths.progressA]);
  const writerA = execa(cmd, args, { reject: false, stdin: 'ignore', stdout: 'ignore' });
  const fencesBefore = fenceLines(nodeA).length;
  // The writer is writing (a node process can take seconds to start under UML); then cut at varying moments of the renew cycle.
  for (const started = Date.now(); !durableRecords(await readFile(paths.progressA, 'utf8').catch(() => '')).size; await sleep(100)) {
    if (Date.now() - started > 20_000 || writerA.exitCode !== null) {
      writerA.kill('SIGKILL');
      problems.push(`A's writer wrote nothing: ${String((await writerA).stderr).trim().split('\n').slice(-2).join(' | ')}`);
      break;
    }
  }
  await sleep(500 + Math.random() * 1500);
  await lab.cut('a');
  const cutAt = Date.now();
  await c.ControllerUnpublishVolume({ volume_id: id, node_id: 'node-a' }); // the force-detach
  const moveToB = (deadlineMs: number) => takeVolume(c, b, id, paths.stagingB, deadlineMs);
  let takeoverMs: number | undefined;
  let bStagedAt: number | undefined;
  if (CONTROL && round % 2 === 0) setTimeout(() => void lab.heal('a'), 1_500);
  if (long) {
    const took = await moveToB(TERMS.termSeconds * 1000 + 20_000);
    bStagedAt = Date.now();
    if (took === undefined) problems.push('B never got the volume');
    else takeoverMs = Date.now() - cutAt;
  } else {
    await sleep(1000 + Math.random() * 800); // shorter than ssh's keep-alive (2 s x 2) and well inside term − margin
    await lab.heal('a');
    if ((await moveToB(TERMS.termSeconds * 1000 + 3_000)) !== undefined) problems.push('B took over the lease of a node that was renewing it again');
    writerA.kill('SIGTERM'); // the orchestrator stops A's workload, then A lets go of the volume
    await writerA;
    await a.NodeUnpublishVolume({ volume_id: id, target_path: paths.targetA });
    await a.NodeUnstageVolume({ volume_id: id, staging_target_path: paths.stagingA });
    const took = await moveToB(10_000);
    if (took === undefined) problems.push('B did not get the volume after A unstaged it');
    else takeoverMs = Date.now() - cutAt;
  }
  if (!problems.length) {
    await b.NodePublishVolume({ volume_id: id, staging_target_path: paths.stagingB, target_path: paths.targetB, volume_capability: CAP });
    const [cmdB, argsB] = inNamespacesOf(nodeB.process.pid!, 'node', [WRITER, `${paths.targetB}/log`, 'B', 'fsync1', String(RECORDS_B), paths.progressB]);
    const writerB = await execa(cmdB, argsB, { reject: false, timeout: 60_000 });
    if (writerB.exitCode !== 0) problems.push(`B's writer failed (${writerB.exitCode}): ${String(writerB.stderr).trim().split('\n').slice(-2).join(' | ')} ${await readFile(paths.progressB, 'utf8').catch(() => '')}`);
  }
  if (long) {
    await lab.heal('a');
    await sleep(5_000); // whatever A still had queued would land now
    writerA.kill('SIGKILL');
    await writerA;
  }
  const file = await readFile(path.join(ctx.serverRoot, volumeDir(id), 'data', 'log'), 'utf8').catch(() => '');
  if (long && takeoverMs !== undefined && takeoverMs > (TERMS.termSeconds + SLACK_S) * 1000) problems.push(`B took ${takeoverMs} ms to get the volume: more than the term + ${SLACK_S} s`);
  const progressA = await readFile(paths.progressA, 'utf8').catch(() => '');
  const durableA = durableRecords(progressA);
  const fence = fenceLines(nodeA).slice(fencesBefore)[0];
  if (long && !fence && !CONTROL) problems.push('A did not fence itself');
  if (fence && bStagedAt !== undefined && fence.time > bStagedAt) problems.push(`B staged ${fence.time - bStagedAt} ms before A fenced itself`);
  const found = problems.length ? [] : verifyRound(file, durableA, RECORDS_B);
  // On NFS the fence can stop late writes only with the kernel's shutdown switch and SOCK_DESTROY (README): without them, late writes are measured, not failed.
  const weakFence = NFS && fence !== undefined && !(fence.steps.some((s) => s.includes('shut down')) && fence.steps.some((s) => / connections to the server reset/.test(s)));
  const late = weakFence ? found.filter((p) => !/durable are missing|torn/.test(p)) : [];
  problems.push(...found.filter((p) => !late.includes(p)));
  await cleanUp(ctx, id, paths).catch((err: Error) => problems.push(`cleanup: ${err.message}`));
  return { round, kind, problems, takeoverMs, fenceMs: fence?.fenceMs, recordsA: (file.match(/^A /gm) ?? []).length, durableA: durableA.size, lateWrites: late };
}

/** ControllerPublish to node-b, then NodeStage there, each retried every 250 ms while refused; the time it took, or undefined at the deadline. */
async function takeVolume(c: CsiClient, b: CsiClient, id: string, staging: string, deadlineMs: number): Promise<number | undefined> {
  const started = Date.now();
  const retry = async (call: () => Promise<unknown>) => {
    for (;;) {
      try {
        await call();
        return true;
      } catch (err) {
        if ((err as { code?: number }).code !== 9 || Date.now() - started > deadlineMs) return false; // 9: FAILED_PRECONDITION
        await sleep(250);
      }
    }
  };
  if (!(await retry(() => c.ControllerPublishVolume({ volume_id: id, node_id: 'node-b', volume_capability: CAP })))) return undefined;
  if (!(await retry(() => b.NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: CAP })))) return undefined;
  return Date.now() - started;
}

async function cleanUp({ c, a, b }: RoundContext, id: string, p: Record<string, string>): Promise<void> {
  await b.NodeUnpublishVolume({ volume_id: id, target_path: p.targetB }).catch(() => undefined);
  await b.NodeUnstageVolume({ volume_id: id, staging_target_path: p.stagingB }).catch(() => undefined);
  await a.NodeUnpublishVolume({ volume_id: id, target_path: p.targetA });
  await a.NodeUnstageVolume({ volume_id: id, staging_target_path: p.stagingA });
  await c.ControllerUnpublishVolume({ volume_id: id, node_id: 'node-b' });
  await c.DeleteVolume({ volume_id: id });
}

/** The fence events in a node plugin's log (`time`: when the fence was done, epoch ms). */
function fenceLines(driver: RunningDriver): { fenceMs: number; lastRenewalAgoMs: number; steps: string[]; time: number }[] {
  return driver
    .logs()
    .split('\n')
    .filter((l) => l.includes('"event":"fence"'))
    .map((l) => JSON.parse(l) as { fenceMs: number; lastRenewalAgoMs: number; steps: string[]; time: number });
}

function report(results: RoundResult[]): number {
  const failed = results.filter((r) => r.problems.length).length;
  const stats = (label: string, values: number[]) => {
    if (!values.length) return;
    const sorted = [...values].sort((x, y) => x - y);
    console.log(`${label}: min ${sorted[0]} ms, median ${sorted[Math.floor(sorted.length / 2)]} ms, max ${sorted.at(-1)} ms (${values.length} rounds)`);
  };
  stats(`takeover after a long cut (cut to B staged; goal <= term ${TERMS.termSeconds} s + ${SLACK_S} s)`, results.filter((r) => r.kind.startsWith('long')).flatMap((r) => (r.takeoverMs === undefined ? [] : [r.takeoverMs])));
  stats('fence (its own duration, first step to last)', results.flatMap((r) => (r.fenceMs === undefined ? [] : [r.fenceMs])));
  if (CONTROL) {
    // Without a lease the corruption must show, or these checks could not see it either.
    const seen = failed > 0;
    console.log(`control: A's late writes corrupted the volume in ${failed} of ${results.length} rounds without a lease`);
    console.log(`${LABEL}: ${seen ? 1 : 0} passed, ${seen ? 0 : 1} failed, 0 skipped`);
    return seen ? 0 : 1;
  }
  console.log(`${LABEL}: ${results.length - failed} passed, ${failed} failed, 0 skipped`);
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    console.log(`${LABEL}: 0 passed, 1 failed, 0 skipped`);
    process.exit(1);
  },
);
