// NFS, with a real kernel NFS client and a real nfs-ganesha: both live in the project's user-mode
// Linux guest (test/nfs/uml-run.sh), so on the host this suite boots the guest, runs itself there
// (`--only nfs --rows FILE`) and reads the rows back. In the guest, against one mount of the export
// made by hand with the options tether's controller uses:
//   provisioning  CreateVolume+DeleteVolume pairs/s, 32 in flight, vs the bare directory work on that
//                 mount (mkdir, mkdir data, record written, fsynced and renamed; then removed);
//   attach        NodeStageVolume+NodePublishVolume p50 vs a bare `mount -t nfs` of the volume's
//                 directory with tether's options + `mount --bind` of its data/;
//   detach        NodeUnpublishVolume+NodeUnstageVolume p50 vs bare `umount` ×2.
import { mkdir, open, readFile, rename, rm, rmdir, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { csiClient } from '../../test/support/csi-client.js';
import { nfsBackendConfig, startDriverWith } from '../../test/support/driver.js';
import { unmountLeftovers, volumeDir } from '../../test/support/helpers.js';
import { Skipped, type BenchContext, type Suite } from '../lib/context.js';
import { CAPABILITY, GIB } from '../lib/fixture.js';
import type { Row } from '../lib/report.js';
import { interleaved, median, pool, rate, rotate, timed } from '../lib/stats.js';
import { run } from '../lib/system.js';

const IN_FLIGHT = 32;
const REPO = resolve(fileURLToPath(import.meta.url), '../../../..');

async function onHost(ctx: BenchContext): Promise<Row[]> {
  await mkdir(join(REPO, '.scratch'), { recursive: true });
  const rows = join(REPO, '.scratch', `bench-nfs-${process.pid}.json`); // the guest sees the repository at the same path
  ctx.defer('remove the rows file', () => rm(rows, { force: true }));
  const args = ['test/nfs/uml-run.sh', 'node', 'dist/bench/run.js', '--only', 'nfs', '--rows', rows, '--runs', String(ctx.runs), ...(ctx.smoke ? ['--smoke'] : [])];
  const guest = execa('bash', args, { cwd: REPO, reject: false, timeout: 1_800_000, env: { NFS_VERS: '3', UML_MEM: '768M', UML_TIMEOUT: '1500' }, all: true });
  guest.all?.on('data', (chunk: Buffer) => chunk.toString().split('\n').filter((l) => /^ {2}nfs: /.test(l)).forEach((l) => ctx.progress(l.replace(/^ {2}nfs: /, 'guest: '))));
  const result = await guest;
  if (result.exitCode === 77) throw new Skipped(/NFS TESTS SKIPPED: (.*)/.exec(String(result.all))?.[1] ?? 'user-mode Linux cannot run here');
  const parsed = await readFile(rows, 'utf8').then((t) => JSON.parse(t) as Row[], () => undefined);
  if (!parsed || result.exitCode !== 0) throw new Error(`the guest run failed (exit ${result.exitCode}): ${String(result.all).split('\n').slice(-8).join(' | ')}`);
  return parsed;
}

/** The bare directory work of one Create+DeleteVolume on the NFS mount `mnt`. */
async function barePair(mnt: string, name: string): Promise<void> {
  const dir = join(mnt, name);
  await mkdir(dir);
  await mkdir(join(dir, 'data'));
  const file = await open(join(dir, 'volume.json.tmp'), 'wx', 0o644);
  try {
    await file.writeFile(`${JSON.stringify({ kind: 'tether.volume/v1', name, capacityBytes: 2 ** 30, createdAt: new Date().toISOString() }, null, 2)}\n`);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(join(dir, 'volume.json.tmp'), join(dir, 'volume.json'));
  await unlink(join(dir, 'volume.json'));
  await rmdir(join(dir, 'data'));
  await rmdir(dir);
}

async function inGuest(ctx: BenchContext): Promise<Row[]> {
  const server = process.env.NFS_SERVER!;
  const share = process.env.NFS_SHARE!;
  const driver = await startDriverWith([nfsBackendConfig('nfs')], { logLevel: 'warn', nodeId: 'node-a' });
  ctx.defer('stop tether', () => driver.stop());
  const csi = csiClient(driver.endpoint);
  ctx.defer('close the CSI client', async () => csi.close());
  ctx.defer('unmount leftovers', () => unmountLeftovers(ctx.work));
  const mnt = join(ctx.work, 'bare-export');
  await mkdir(mnt);
  await run('mount', ['-t', 'nfs', `${server}:${share}`, mnt]);
  ctx.defer('unmount the bare mount', () => run('umount', [mnt]));
  await mkdir(join(mnt, 'bare-pairs'));
  ctx.defer('remove the bare pairs directory', () => rm(join(mnt, 'bare-pairs'), { recursive: true, force: true }));

  // -- provisioning --
  const tetherPair = async (name: string) => {
    const { volume } = await csi.CreateVolume({ name, capacity_range: { required_bytes: GIB }, volume_capabilities: [CAPABILITY] });
    await csi.DeleteVolume({ volume_id: volume.volume_id });
  };
  const pairs = ctx.size(200, 20);
  const runs = Math.min(ctx.runs, 3); // UML makes every system call slow: a run of pairs takes a while
  for (let i = 0; i < ctx.size(20, 2); i++) await Promise.all([tetherPair(`warm-${i}`), barePair(join(mnt, 'bare-pairs'), `warm-${i}`)]);
  const pairRates = { bare: [] as number[], tether: [] as number[] };
  for (let r = 0; r < runs; r++) {
    const sides = rotate(r, ['bare', 'tether'] as const);
    const ms = await interleaved(pairs, ctx.size(100, 10), sides.map((side) => (from: number, to: number) =>
      pool(to - from, IN_FLIGHT, (i) => (side === 'bare' ? barePair(join(mnt, 'bare-pairs'), `b-${r}-${from + i}`) : tetherPair(`t-${r}-${from + i}`)))));
    sides.forEach((side, i) => pairRates[side].push(rate(pairs, ms[i]!)));
    ctx.progress(`provisioning run ${r + 1}/${runs}: bare ${pairRates.bare.at(-1)!.toFixed(0)}, tether ${pairRates.tether.at(-1)!.toFixed(0)} pairs/s`);
  }

  // -- attach and detach: one volume, tether and the bare mounts taking turns --
  const { volume } = await csi.CreateVolume({ name: 'attach', capacity_range: { required_bytes: GIB }, volume_capabilities: [CAPABILITY] });
  const id: string = volume.volume_id;
  const [staging, target, bareStaging, bareTarget] = ['staging', 'target', 'bare-staging', 'bare-target'].map((d) => join(ctx.work, d)) as [string, string, string, string];
  await mkdir(staging);
  await mkdir(bareStaging);
  await mkdir(bareTarget);
  const source = `${server}:${join(share, volumeDir(id))}`;
  const sides = {
    tether: {
      attach: async () => {
        await csi.NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: CAPABILITY });
        await csi.NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: CAPABILITY, readonly: false });
      },
      detach: async () => {
        await csi.NodeUnpublishVolume({ volume_id: id, target_path: target });
        await csi.NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
      },
    },
    bare: {
      attach: async () => {
        await run('mount', ['-t', 'nfs', '-o', 'nosharecache', source, bareStaging]);
        await run('mount', ['--bind', join(bareStaging, 'data'), bareTarget]);
      },
      detach: async () => {
        await run('umount', [bareTarget]);
        await run('umount', [bareStaging]);
      },
    },
  };
  const cycles = ctx.size(20, 2);
  const times = { tether: { attach: [] as number[], detach: [] as number[] }, bare: { attach: [] as number[], detach: [] as number[] } };
  for (const side of ['tether', 'bare'] as const) { // warm: binaries and the node's paths
    await sides[side].attach();
    await sides[side].detach();
  }
  for (let i = 0; i < cycles; i++) {
    for (const side of rotate(i, ['tether', 'bare'] as const)) {
      times[side].attach.push(await timed(sides[side].attach));
      times[side].detach.push(await timed(sides[side].detach));
    }
  }
  ctx.progress(`attach p50: bare ${median(times.bare.attach).toFixed(1)} ms, tether ${median(times.tether.attach).toFixed(1)} ms; detach p50: bare ${median(times.bare.detach).toFixed(1)} ms, tether ${median(times.tether.detach).toFixed(1)} ms`);
  await csi.DeleteVolume({ volume_id: id });

  return [
    { suite: 'nfs', metric: `Create+DeleteVolume, ${IN_FLIGHT} in flight`, unit: 'pairs/s', better: 'higher', baselineName: 'bare mkdir/write+fsync/rename/rmdir on an NFS mount', baseline: median(pairRates.bare), tether: median(pairRates.tether), target: { ratio: 0.6 }, note: `median of ${runs} × ${pairs} pairs` },
    { suite: 'nfs', metric: 'NodeStage+NodePublish p50', unit: 'ms', better: 'lower', baselineName: 'bare mount -t nfs + mount --bind', baseline: median(times.bare.attach), tether: median(times.tether.attach), target: { absolute: 100, ratio: 1.0 }, note: `${cycles} cycles` },
    { suite: 'nfs', metric: 'NodeUnpublish+NodeUnstage p50', unit: 'ms', better: 'lower', baselineName: 'bare umount ×2', baseline: median(times.bare.detach), tether: median(times.tether.detach), target: { ratio: 2.0 }, note: `${cycles} cycles` },
  ];
}

export const nfs: Suite = {
  name: 'nfs',
  describe: 'NFS in the user-mode Linux guest: provisioning vs bare directory work, attach vs bare mount, detach vs bare umount',
  run: (ctx) => (process.env.IN_UML === '1' ? inGuest(ctx) : onHost(ctx)),
};
