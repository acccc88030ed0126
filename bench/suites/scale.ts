// Scale: how tether's controller and node behave as a backend fills up. Volumes are laid down
// directly on the server's disk (the throwaway sshd serves a directory of this host), each as
// CreateVolume leaves it — a directory with its record and an empty data/ — 10, then 1,000, then
// 10,000 of them (smoke: 10, 100, 300). At each size:
//   ListVolumes (all entries, one call) against a bare client doing the same reads — the base
//     directory listed, then each volume's directory listed and its record read — over as many
//     SFTP sessions with as many requests in flight as tether uses;
//   CreateVolume latency (p50 of sequential creates, each deleted after) and NodeStageVolume
//     latency (p50 of stage+unstage cycles of one volume), to show they stay flat.
import { mkdir, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { SFTPWrapper } from 'ssh2';
import { encodeRecord, type VolumeRecord } from '../../src/volumes/records.js';
import type { Suite } from '../lib/context.js';
import { CAPABILITY, GIB, sftpCall as p, sftpSession, sshServer, tether } from '../lib/fixture.js';
import type { Row } from '../lib/report.js';
import { median, pool, rotate, timed } from '../lib/stats.js';

const SESSIONS = 4;
const IN_FLIGHT = 32;

function record(name: string): VolumeRecord {
  const at = new Date().toISOString();
  return {
    kind: 'tether.volume/v1', generation: 1, writeId: randomBytes(8).toString('hex'), name, capacityBytes: 2 ** 30, parameters: {}, onDelete: 'delete',
    contentSource: null, createdAt: at, publications: [], claims: [], leases: [], takeovers: [],
  };
}

/** Lays volumes scale-<from>..scale-<to-1> down on the server's disk, as CreateVolume leaves them. */
async function layDown(root: string, from: number, to: number): Promise<void> {
  await pool(to - from, 16, async (i) => {
    const name = `scale-${String(from + i).padStart(6, '0')}`;
    await mkdir(join(root, name, 'data'), { recursive: true });
    await writeFile(join(root, name, 'volume.1.json'), encodeRecord(record(name)));
  });
}

/** The bare reads of a listing: the base directory, then each volume's directory and its record. */
async function bareList(sessions: SFTPWrapper[], root: string): Promise<number> {
  const readdir = (s: SFTPWrapper, path: string) => p<{ filename: string; attrs: { size: number } }[]>((cb) => s.readdir(path, cb as never));
  const names = (await readdir(sessions[0]!, root)).map((e) => e.filename).filter((n) => n.startsWith('scale-') || n.startsWith('c-'));
  let turn = 0;
  let read = 0;
  await pool(names.length, IN_FLIGHT, async (i) => {
    const s = sessions[turn++ % sessions.length]!;
    const entries = await readdir(s, join(root, names[i]!));
    const file = entries.find((e) => e.filename.startsWith('volume.'));
    if (file) read += (await p<Buffer>((cb) => s.readFile(join(root, names[i]!, file.filename), cb))).length > 0 ? 1 : 0;
  });
  return read;
}

/** What one size measured: medians, in ms. */
interface AtSize {
  tetherMs: number;
  bareMs: number;
  createMs: number;
  stageMs: number;
}

export const scale: Suite = {
  name: 'scale',
  describe: 'ListVolumes vs the same bare SFTP reads, and CreateVolume/NodeStage latency, at 10, 1,000 and 10,000 volumes',
  async run(ctx) {
    const server = await sshServer(ctx);
    const { csi } = await tether(ctx, server);
    const sessions = await Promise.all(Array.from({ length: SESSIONS }, () => sftpSession(ctx, server)));
    const sizes = ctx.size([10, 1000, 10000], [10, 100, 300]);
    const listRuns = ctx.size(Math.max(3, Math.min(ctx.runs, 5)), 1);
    const creates = ctx.size(40, 5);
    const stages = ctx.size(10, 2);
    const staging = join(ctx.work, 'staging');
    await mkdir(staging);
    const { volume } = await csi.CreateVolume({ name: 'c-stage', capacity_range: { required_bytes: GIB }, volume_capabilities: [CAPABILITY] });
    const stageArgs = { volume_id: volume.volume_id, staging_target_path: staging, volume_capability: CAPABILITY };
    ctx.defer('unstage', () => csi.NodeUnstageVolume({ volume_id: volume.volume_id, staging_target_path: staging }).catch(() => undefined));
    await csi.NodeStageVolume(stageArgs); // warm: the node's SFTP session, sshfs in the page cache
    await csi.NodeUnstageVolume({ volume_id: volume.volume_id, staging_target_path: staging });

    const at = new Map<number, AtSize>();
    let laid = 0;
    for (const size of sizes) {
      await layDown(server.root, laid, size);
      laid = size;
      const tetherMs: number[] = [];
      const bareMs: number[] = [];
      let listed = 0;
      for (let r = 0; r < listRuns; r++) {
        for (const side of rotate(r, ['tether', 'bare'] as const)) {
          if (side === 'tether') tetherMs.push(await timed(async () => (listed = (await csi.ListVolumes({ max_entries: 0 })).entries.length)));
          else bareMs.push(await timed(() => bareList(sessions, server.root)));
        }
      }
      if (listed < size) throw new Error(`ListVolumes returned ${listed} volumes of the ${size} laid down`);
      const createMs: number[] = [];
      for (let i = 0; i < creates; i++) {
        let id = '';
        createMs.push(await timed(async () => (id = (await csi.CreateVolume({ name: `c-${size}-${i}`, capacity_range: { required_bytes: GIB }, volume_capabilities: [CAPABILITY] })).volume.volume_id)));
        await csi.DeleteVolume({ volume_id: id });
      }
      const stageMs: number[] = [];
      for (let i = 0; i < stages; i++) {
        stageMs.push(await timed(() => csi.NodeStageVolume(stageArgs)));
        await csi.NodeUnstageVolume({ volume_id: volume.volume_id, staging_target_path: staging });
      }
      at.set(size, { tetherMs: median(tetherMs), bareMs: median(bareMs), createMs: median(createMs), stageMs: median(stageMs) });
      ctx.progress(`${size} volumes: ListVolumes ${median(tetherMs).toFixed(0)} ms (bare ${median(bareMs).toFixed(0)} ms), CreateVolume p50 ${median(createMs).toFixed(1)} ms, NodeStage p50 ${median(stageMs).toFixed(1)} ms`);
    }
    const [small, middle, large] = sizes.map((s) => at.get(s)!) as [AtSize, AtSize, AtSize];
    const [nSmall, nMiddle, nLarge] = sizes as [number, number, number];
    const label = (n: number) => n.toLocaleString('en-US');
    const rows: Row[] = [
      { suite: 'scale', metric: `ListVolumes, ${label(nLarge)} volumes`, unit: 'ms', better: 'lower', baselineName: `bare SFTP reads, ${SESSIONS} sessions`, baseline: large.bareMs, tether: large.tetherMs, target: { absolute: ctx.smoke ? undefined : 2000 }, note: `median of ${listRuns}` },
      { suite: 'scale', metric: `ListVolumes per volume at ${label(nLarge)}`, unit: 'µs', better: 'lower', baselineName: `tether at ${label(nMiddle)}`, baseline: (middle.tetherMs * 1000) / nMiddle, tether: (large.tetherMs * 1000) / nLarge, target: { ratio: 1.0 } },
      { suite: 'scale', metric: `CreateVolume p50 at ${label(nLarge)} volumes`, unit: 'ms', better: 'lower', baselineName: `tether at ${label(nSmall)}`, baseline: small.createMs, tether: large.createMs, target: { ratio: 1.2 }, note: `${creates} creates` },
      { suite: 'scale', metric: `NodeStageVolume p50 at ${label(nLarge)} volumes`, unit: 'ms', better: 'lower', baselineName: `tether at ${label(nSmall)}`, baseline: small.stageMs, tether: large.stageMs, target: { ratio: 1.2 }, note: `${stages} stages` },
    ];
    return rows;
  },
};
