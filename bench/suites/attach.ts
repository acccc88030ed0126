// Attach and detach on sshfs: NodeStageVolume+NodePublishVolume and NodeUnpublishVolume+
// NodeUnstageVolume of one volume, against what a user does by hand — `sshfs` with exactly the
// options tether gave its own sshfs (read from that process's command line, only the mount point
// and the private directory of key files swapped for the baseline's) + `mount --bind` of data/, and
// `umount` of both. Each cycle runs both sides, who goes first alternating; the p50 of each is taken.
import { copyFile, mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Suite } from '../lib/context.js';
import { CAPABILITY, GIB, sshServer, tether } from '../lib/fixture.js';
import type { Row } from '../lib/report.js';
import { percentile, rotate, timed } from '../lib/stats.js';
import { run } from '../lib/system.js';

/** The command line of the sshfs process serving the mount at `target` (sshfs keeps its argv). */
async function sshfsCommandLine(target: string): Promise<string[]> {
  for (const pid of (await readdir('/proc')).filter((n) => /^\d+$/.test(n))) {
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0').slice(0, -1);
    if (/(^|\/)sshfs$/.test(argv[0] ?? '') && argv.includes(target)) return argv;
  }
  throw new Error(`no sshfs process serves ${target}`);
}

/**
 * The baseline's sshfs arguments: tether's, with its mount point swapped for `target` and its
 * private directory (where IdentityFile and UserKnownHostsFile point) for `secrets`, into which the
 * two files are copied. Throws if the command line does not have the shape this relies on.
 */
async function bareArgs(argv: string[], tetherTarget: string, target: string, secrets: string): Promise<string[]> {
  const options = argv.find((a) => a.includes('IdentityFile='));
  const identity = /(?:^|,)IdentityFile=([^,]+)\/id(?:,|$)/.exec(options ?? '');
  if (!options || !identity) throw new Error(`tether's sshfs command line has no IdentityFile option: ${argv.join(' ')}`);
  const dir = identity[1]!;
  await mkdir(secrets, { recursive: true, mode: 0o700 });
  for (const name of ['id', 'known_hosts']) await copyFile(join(dir, name), join(secrets, name));
  return argv.slice(1).map((a) => (a === tetherTarget ? target : a.split(`${dir}/`).join(`${secrets}/`)));
}

export const attach: Suite = {
  name: 'attach',
  describe: 'NodeStage+NodePublish and NodeUnpublish+NodeUnstage p50 vs bare sshfs (tether\'s options) + mount --bind, and umount ×2',
  async run(ctx) {
    const server = await sshServer(ctx);
    const { csi } = await tether(ctx, server);
    const { volume } = await csi.CreateVolume({ name: 'attach-bench', capacity_range: { required_bytes: GIB }, volume_capabilities: [CAPABILITY] });
    const id = volume.volume_id;
    const staging = join(ctx.work, 'tether-staging');
    const target = join(ctx.work, 'tether-target');
    const bareStaging = join(ctx.work, 'bare-staging');
    const bareTarget = join(ctx.work, 'bare-target');
    await Promise.all([bareStaging, bareTarget].map((d) => mkdir(d, { recursive: true })));

    // Each call timed on its own too: where attach and detach spend their time.
    const calls = { NodeStage: [] as number[], NodePublish: [] as number[], NodeUnpublish: [] as number[], NodeUnstage: [] as number[] };
    const call = async (name: keyof typeof calls, fn: () => Promise<unknown>) => void calls[name].push(await timed(fn));
    const tetherAttach = async () => {
      await call('NodeStage', () => csi.NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: CAPABILITY }));
      await call('NodePublish', () => csi.NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: CAPABILITY, readonly: false }));
    };
    const tetherDetach = async () => {
      await call('NodeUnpublish', () => csi.NodeUnpublishVolume({ volume_id: id, target_path: target }));
      await call('NodeUnstage', () => csi.NodeUnstageVolume({ volume_id: id, staging_target_path: staging }));
    };
    await tetherAttach();
    const argv = await sshfsCommandLine(staging);
    const args = await bareArgs(argv, staging, bareStaging, join(ctx.work, 'bare-secrets'));
    await tetherDetach();
    ctx.progress(`bare: sshfs ${args.join(' ')}`);
    const bareAttach = async () => {
      await run('sshfs', args);
      await run('mount', ['--bind', join(bareStaging, 'data'), bareTarget]);
    };
    const bareDetach = async () => {
      await run('umount', [bareTarget]);
      await run('umount', [bareStaging]);
    };
    ctx.defer('unmount the baseline', () => bareDetach().catch(() => undefined));

    const cycles = ctx.size(Math.max(20, ctx.runs * 4), 2);
    const warm = ctx.size(3, 1);
    const ms = { tether: { attach: [] as number[], detach: [] as number[] }, bare: { attach: [] as number[], detach: [] as number[] } };
    for (let i = 0; i < warm + cycles; i++) {
      for (const side of rotate(i, ['tether', 'bare'] as const)) {
        const [up, down] = side === 'tether' ? [tetherAttach, tetherDetach] : [bareAttach, bareDetach];
        const a = await timed(up);
        const d = await timed(down);
        if (i < warm) continue;
        ms[side].attach.push(a);
        ms[side].detach.push(d);
      }
      if (i >= warm && (i - warm) % 5 === 4) ctx.progress(`${i - warm + 1}/${cycles} cycles: attach p50 tether ${percentile(ms.tether.attach, 50).toFixed(1)} / bare ${percentile(ms.bare.attach, 50).toFixed(1)} ms, detach ${percentile(ms.tether.detach, 50).toFixed(1)} / ${percentile(ms.bare.detach, 50).toFixed(1)} ms`);
    }
    ctx.progress(`tether per call, p50 (warm-up included): ${Object.entries(calls).map(([name, xs]) => `${name} ${percentile(xs, 50).toFixed(1)}`).join(', ')} ms`);
    const note = `p50 of ${cycles} cycles, interleaved`;
    const row = (metric: string, kind: 'attach' | 'detach', baselineName: string, target: Row['target']): Row => ({
      suite: 'attach',
      metric,
      unit: 'ms',
      better: 'lower',
      baselineName,
      baseline: percentile(ms.bare[kind], 50),
      tether: percentile(ms.tether[kind], 50),
      target,
      note,
    });
    return [
      row('NodeStage+NodePublish', 'attach', "sshfs (tether's options) + mount --bind", { absolute: 100, ratio: 1.0 }),
      row('NodeUnpublish+NodeUnstage', 'detach', 'umount ×2', { ratio: 2.0 }),
    ];
  },
};
