// The tether process: time from spawning `node dist/src/main.js` to its first answered Probe, per
// mode, against the Go reference driver's start (test/clients/csi-reference, served like
// hostpathplugin) and the floor of any Node.js program (`node -e 0`, spawn to exit); its resident
// set idle (after a few seconds of settling) and with volumes staged and published on sshfs, against
// the reference's idle resident set (the ratio is only informative: the target is tether's own RSS).
// Each mode runs with the Node.js flags the Helm chart gives it (values.yaml, nodeFlags): the
// node plugin's young generation is 1 MiB and V8 favours memory over speed. The volumes are published through a node plugin, created
// by a controller process of its own, as in a cluster.
// The sides take turns, who goes first rotating per run.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { BenchContext, Suite } from '../lib/context.js';
import { CAPABILITY, GIB, sshServer } from '../lib/fixture.js';
import type { Row } from '../lib/report.js';
import { goToolsMissing, nodeBare, REFERENCE_NAME, startReference, startTether, type Server } from '../lib/servers.js';
import { median, pool, rotate } from '../lib/stats.js';
import { csiClient } from '../../test/support/csi-client.js';
import { unmountLeftovers } from '../../test/support/helpers.js';
import type { SshServer } from '../../test/support/sshd.js';

const MODES = ['node', 'controller', 'all'] as const;
type Side = (typeof MODES)[number] | 'reference' | 'bare';
const START_TARGET_MS = 300;
const RSS_TARGET_MIB = 80;
const PUBLISH_IN_FLIGHT = 4;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts `side`, returns its start time and RSS after `settleMs`, and stops it. */
async function sample(ctx: BenchContext, server: SshServer, side: Side, settleMs: number): Promise<{ startMs: number; rss: number }> {
  if (side === 'bare') return { startMs: await nodeBare(), rss: NaN };
  const s: Server = side === 'reference' ? await startReference(ctx) : await startTether(ctx, server, { mode: side });
  try {
    await sleep(settleMs);
    return { startMs: s.startMs, rss: await s.rssMiB() };
  } finally {
    await s.stop();
  }
}

/**
 * A node plugin with `count` sshfs volumes created (by a controller of its own, as the chart runs
 * them), staged and published; its RSS once they are. Everything is undone afterwards.
 */
async function rssWithVolumes(ctx: BenchContext, server: SshServer, count: number, settleMs: number): Promise<number> {
  const controller = csiClient((await startTether(ctx, server, { mode: 'controller', logLevel: 'warn' })).endpoint);
  ctx.defer('close the controller client', async () => controller.close());
  const t = await startTether(ctx, server, { mode: 'node', logLevel: 'warn' });
  const csi = csiClient(t.endpoint);
  const mounts = join(ctx.work, 'mounts');
  const published: Array<{ id: string; staging: string; target: string }> = [];
  ctx.defer('unmount leftovers', () => unmountLeftovers(mounts));
  ctx.defer('unpublish and unstage the volumes', async () => {
    await pool(published.length, PUBLISH_IN_FLIGHT, async (i) => {
      const { id, staging, target } = published[i]!;
      await csi.NodeUnpublishVolume({ volume_id: id, target_path: target }).catch(() => undefined);
      await csi.NodeUnstageVolume({ volume_id: id, staging_target_path: staging }).catch(() => undefined);
    });
    csi.close();
  });
  await pool(count, PUBLISH_IN_FLIGHT, async (i) => {
    const { volume } = await controller.CreateVolume({ name: `rss-${i}`, capacity_range: { required_bytes: GIB }, volume_capabilities: [CAPABILITY] });
    const id = volume.volume_id as string;
    const staging = join(mounts, 'staging', String(i));
    const target = join(mounts, 'pods', String(i), 'mount');
    await mkdir(staging, { recursive: true });
    await csi.NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: CAPABILITY });
    published.push({ id, staging, target: '' });
    await csi.NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: CAPABILITY, readonly: false });
    published.at(-1)!.target = target;
    if ((i + 1) % 25 === 0) ctx.progress(`${i + 1} of ${count} volumes published`);
  });
  await sleep(settleMs);
  return t.rssMiB();
}

export const processSuite: Suite = {
  name: 'process',
  describe: 'start to first Probe and RSS (idle, with volumes published) of tether vs the Go reference driver and node -e 0',
  unavailable: goToolsMissing,
  async run(ctx) {
    const server = await sshServer(ctx);
    // Idle means settled: V8 shrinks a heap that stopped growing ~10 s after start (its memory reducer); before that the RSS swings by 10 MiB with when the last scavenge ran.
    const settleMs = ctx.size(15_000, 300);
    const sides: Side[] = [...MODES, 'reference', 'bare'];
    for (const side of sides) await sample(ctx, server, side, 0); // files in the page cache, as on a node that restarts a plugin
    const start = new Map<Side, number[]>(sides.map((s) => [s, []]));
    for (let r = 0; r < ctx.runs; r++) {
      for (const side of rotate(r, sides)) start.get(side)!.push((await sample(ctx, server, side, 0)).startMs);
      ctx.progress(`run ${r + 1}/${ctx.runs}: start ${sides.map((s) => `${s} ${start.get(s)!.at(-1)!.toFixed(0)}`).join(', ')} ms`);
    }
    const rss = new Map<Side, number>();
    for (const side of [...MODES, 'reference'] as const) rss.set(side, (await sample(ctx, server, side, settleMs)).rss);
    ctx.progress(`RSS idle: ${[...rss].map(([s, mib]) => `${s} ${mib.toFixed(1)}`).join(', ')} MiB`);
    const volumes = ctx.size(100, 3);
    const withVolumes = await rssWithVolumes(ctx, server, volumes, settleMs);
    const med = (m: Map<Side, number[]>, s: Side) => median(m.get(s)!);
    const rows: Row[] = [];
    const note = `median of ${ctx.runs}`;
    for (const mode of MODES) {
      const base = { suite: 'process', unit: 'ms', better: 'lower' as const, tether: med(start, mode), target: { absolute: START_TARGET_MS }, note };
      rows.push({ ...base, metric: `start to first Probe, --mode ${mode}`, baselineName: REFERENCE_NAME, baseline: med(start, 'reference') });
      if (mode === 'node') rows.push({ ...base, metric: `start to first Probe, --mode ${mode}`, baselineName: 'node -e 0 (to exit)', baseline: med(start, 'bare') });
    }
    const idle = rss.get('reference')!;
    for (const mode of MODES) {
      rows.push({ suite: 'process', metric: `RSS idle, --mode ${mode}`, unit: 'MiB', better: 'lower', baselineName: `${REFERENCE_NAME}, idle`, baseline: idle, tether: rss.get(mode)!, target: { absolute: RSS_TARGET_MIB }, note: `one sample, ${settleMs / 1000} s after start` });
    }
    rows.push({ suite: 'process', metric: `RSS with ${volumes} sshfs volumes published, --mode node`, unit: 'MiB', better: 'lower', baselineName: `${REFERENCE_NAME}, idle`, baseline: idle, tether: withVolumes, target: { absolute: RSS_TARGET_MIB }, note: `one sample, ${settleMs / 1000} s after the last publish; the sshfs processes not counted` });
    return rows;
  },
};
