// Provisioning on sshfs: CreateVolume+DeleteVolume pairs per second with 32 in flight, against a
// bare client doing the same directory work over a pool of SFTP sessions in this process — mkdir
// of the volume and its data/, the record written to a temporary file, fsynced and renamed into
// place; then the record, data/ and the directory removed — the floor of what any driver that keeps
// a durable record next to the data can do. The two sides alternate in chunks of pairs.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { SFTPWrapper } from 'ssh2';
import type { Suite } from '../lib/context.js';
import { CAPABILITY, GIB, sftpCall as p, sftpSession, sshServer, tether } from '../lib/fixture.js';
import type { Row } from '../lib/report.js';
import { interleaved, median, pool, rate, rotate } from '../lib/stats.js';
import { dropCaches } from '../lib/system.js';

const IN_FLIGHT = 32;
const BARE_SESSIONS = 4;

function bareOps(sessions: SFTPWrapper[], base: string) {
  let turn = 0;
  const record = (name: string) =>
    Buffer.from(`${JSON.stringify({ kind: 'tether.volume/v1', name, capacityBytes: 2 ** 30, parameters: {}, onDelete: 'delete', contentSource: null, createdAt: new Date().toISOString(), publications: [] }, null, 2)}\n`);
  return async (name: string) => {
    const sftp = sessions[turn++ % sessions.length]!;
    const dir = `${base}/${name}`;
    await p((cb) => sftp.mkdir(dir, { mode: 0o755 }, cb));
    await p((cb) => sftp.mkdir(`${dir}/data`, { mode: 0o755 }, cb));
    const data = record(name);
    const handle = await p<Buffer>((cb) => sftp.open(`${dir}/volume.json.tmp`, 'wx', 0o644, cb));
    await p((cb) => sftp.write(handle, data, 0, data.length, 0, cb));
    await p((cb) => sftp.ext_openssh_fsync(handle, cb));
    await p((cb) => sftp.close(handle, cb));
    await p((cb) => sftp.ext_openssh_rename(`${dir}/volume.json.tmp`, `${dir}/volume.json`, cb));
    await p((cb) => sftp.unlink(`${dir}/volume.json`, cb));
    await p((cb) => sftp.rmdir(`${dir}/data`, cb));
    await p((cb) => sftp.rmdir(dir, cb));
  };
}

export const provisioning: Suite = {
  name: 'provisioning',
  describe: `CreateVolume+DeleteVolume pairs/s, ${IN_FLIGHT} in flight, vs the bare directory work over ${BARE_SESSIONS} SFTP sessions`,
  async run(ctx) {
    const server = await sshServer(ctx);
    const { csi } = await tether(ctx, server);
    const sessions = await Promise.all(Array.from({ length: BARE_SESSIONS }, () => sftpSession(ctx, server)));
    const bareBase = join(server.root, 'bare');
    await mkdir(bareBase);
    const bare = bareOps(sessions, bareBase);
    const tetherPair = async (name: string) => {
      const { volume } = await csi.CreateVolume({ name, capacity_range: { required_bytes: GIB }, volume_capabilities: [CAPABILITY] });
      await csi.DeleteVolume({ volume_id: volume.volume_id });
    };
    const pairs = ctx.size(1000, 40);
    const chunk = ctx.size(200, 20);
    for (let i = 0; i < ctx.size(64, 4); i++) await Promise.all([tetherPair(`warm-${i}`), bare(`warm-${i}`)]); // sessions open, binaries warm
    const samples = { bare: [] as number[], tether: [] as number[] };
    for (let r = 0; r < ctx.runs; r++) {
      await dropCaches('2'); // unique names leave negative dentries that slow later mkdirs
      const sides = rotate(r, ['bare', 'tether'] as const);
      const ms = await interleaved(pairs, chunk, sides.map((side) => (from: number, to: number) =>
        pool(to - from, IN_FLIGHT, (i) => (side === 'bare' ? bare : tetherPair)(`${side}-r${r}-${from + i}`))));
      sides.forEach((side, i) => samples[side].push(rate(pairs, ms[i]!)));
      ctx.progress(`run ${r + 1}/${ctx.runs}: bare ${samples.bare.at(-1)!.toFixed(0)}, tether ${samples.tether.at(-1)!.toFixed(0)} pairs/s`);
    }
    const row: Row = {
      suite: 'provisioning',
      metric: `Create+DeleteVolume, ${IN_FLIGHT} in flight`,
      unit: 'pairs/s',
      better: 'higher',
      baselineName: `bare SFTP, ${BARE_SESSIONS} sessions, fsync`,
      baseline: median(samples.bare),
      tether: median(samples.tether),
      target: { absolute: 1000, ratio: 0.6 },
      note: `median of ${ctx.runs} × ${pairs} pairs`,
    };
    return [row];
  },
};
