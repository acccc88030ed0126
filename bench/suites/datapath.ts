// The data path of an sshfs volume, through tether's published target path (NodeStage+NodePublish
// of a SINGLE_NODE_WRITER volume, tether's default mount options), against:
//
//   cold sequential read   `ssh -c <tether's cipher> host cat FILE > /dev/null`, the same file, the
//                          handshake not counted (an `ssh host true` of the same sample is taken off):
//                          what one SSH stream with the same cipher carries
//   sequential write       `dd bs=1M conv=fsync` through plain sshfs mounted the way other sshfs
//   small files            drivers mount it: N × 4 KiB files written one after another (open, write,
//                          close), the two sides alternating in chunks
//
// "The way other drivers mount it": sshfs's own defaults (3.7: one connection, ssh's default cipher
// — chacha20-poly1305 —, 32 KiB SFTP requests, FUSE's 128 KiB read-ahead, the 20 s attribute/dir
// cache) plus the robustness options users add to them. csi-sshfs (chr-fritz/csi-sshfs,
// pkg/sshfs/nodeserver.go) runs `sshfs -o IdentityFile=…,StrictHostKeyChecking=no,
// UserKnownHostsFile=/dev/null` and nothing else; the Docker plugin vieux/docker-volume-sshfs runs
// `sshfs -oStrictHostKeyChecking=no` plus whatever options the user gives the volume. So the
// baseline is sshfs's defaults with `reconnect,ServerAliveInterval=15,ServerAliveCountMax=3`, what
// users commonly add for robustness, and the key and pinned host key (BatchMode, a known_hosts file
// instead of trusting any key: no speed effect).
//
// Each read also counts the CPU time the whole machine spent on it (server and client are both
// here): per GiB, the SFTP path (sftp server, sshd, ssh, sshfs, FUSE's copies) costs more than one
// `cat` through sshd and ssh, and on a machine with few CPUs that cost, not the link, bounds the ratio.
//
// Every sample drops the page cache (server and node are this machine) between writing and reading,
// and before each read; the sides take turns, who goes first rotating from sample to sample.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { SSH_CIPHER } from '../../src/backends/sshfs.js';
import { mountCap, volumeDir } from '../../test/support/helpers.js';
import type { SshServer } from '../../test/support/sshd.js';
import type { Suite } from '../lib/context.js';
import { GIB, sshServer, tether } from '../lib/fixture.js';
import type { Row } from '../lib/report.js';
import { interleaved, median, rate, rotate, timed } from '../lib/stats.js';
import { CMD_TIMEOUT_MS, dropCaches, run, withCpu } from '../lib/system.js';

/** What users of other sshfs drivers add to sshfs's defaults (see above). */
export const OTHER_DRIVERS_OPTIONS = 'reconnect,ServerAliveInterval=15,ServerAliveCountMax=3';
const CAPABILITY = mountCap('SINGLE_NODE_WRITER');
const FILE_4K = Buffer.alloc(4096, 'x');

/** The options every ssh/sshfs of the baselines needs to log in without asking: key, pinned host key. */
function login(server: SshServer, knownHosts: string): string[] {
  return [`IdentityFile=${server.clientKeyFile}`, 'IdentitiesOnly=yes', `UserKnownHostsFile=${knownHosts}`, 'StrictHostKeyChecking=yes', 'BatchMode=yes'];
}

/** Plain sshfs at `mnt`; sshfs daemonizes and its ssh keeps stderr open, so stderr goes to a file. */
async function plainSshfs(server: SshServer, knownHosts: string, dir: string, mnt: string, log: string): Promise<void> {
  const args = [`${server.user}@${server.host}:${dir}`, mnt, '-p', String(server.port), '-o', [...login(server, knownHosts), OTHER_DRIVERS_OPTIONS].join(',')];
  const result = await execa('sshfs', args, { timeout: CMD_TIMEOUT_MS, stdin: 'ignore', stdout: 'ignore', stderr: { file: log }, reject: false });
  if (result.failed) {
    const tail = (await readFile(log, 'utf8').catch(() => '')).trim().split('\n').slice(-3).join(' | ');
    throw new Error(`plain sshfs mount failed (${result.exitCode ?? result.signal}): ${tail}`);
  }
}

/** `ssh host ARGS…` with the baselines' login and tether's cipher, its output to /dev/null; the ms it took. */
function sshRun(server: SshServer, knownHosts: string, args: string[]): Promise<number> {
  const options = [...login(server, knownHosts), `Ciphers=${SSH_CIPHER}`].flatMap((o) => ['-o', o]);
  const argv = ['-p', String(server.port), ...options, `${server.user}@${server.host}`, ...args];
  return timed(() => execa('ssh', argv, { timeout: CMD_TIMEOUT_MS, stdin: 'ignore', stdout: 'ignore' }));
}

/** A timing less another (the ssh handshake taken off an `ssh cat`). */
const less = (a: { ms: number; cpuMs: number }, b: { ms: number; cpuMs: number }) => ({ ms: a.ms - b.ms, cpuMs: a.cpuMs - b.cpuMs });

const ddWrite = (file: string, mib: number) => run('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', `count=${mib}`, 'conv=fsync']);
const ddRead = (file: string) => run('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M']);

async function writeSmallFiles(dir: string, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i++) await writeFile(join(dir, `f${String(i).padStart(5, '0')}`), FILE_4K);
}

export const datapath: Suite = {
  name: 'datapath',
  describe: `sshfs volume through tether's target path: cold read vs ssh cat (${SSH_CIPHER}), write and 4 KiB files vs plain sshfs with other drivers' options`,
  async run(ctx) {
    const mib = ctx.size(512, 4);
    const files = ctx.size(1000, 20);
    const chunk = ctx.size(100, 10);
    const server = await sshServer(ctx, { commands: true });
    const knownHosts = join(ctx.work, 'known_hosts');
    await writeFile(knownHosts, `[${server.host}]:${server.port} ${server.hostKey}\n`);

    const { csi } = await tether(ctx, server);
    const { volume } = await csi.CreateVolume({ name: 'bench-datapath', capacity_range: { required_bytes: GIB }, volume_capabilities: [CAPABILITY] });
    const volumeId: string = volume.volume_id;
    ctx.defer('delete the volume', () => csi.DeleteVolume({ volume_id: volumeId }));
    await csi.ControllerPublishVolume({ volume_id: volumeId, node_id: 'node-a', volume_capability: CAPABILITY });
    ctx.defer('unpublish the volume', () => csi.ControllerUnpublishVolume({ volume_id: volumeId, node_id: 'node-a' }));
    const staging = join(ctx.work, 'staging');
    const target = join(ctx.work, 'target');
    await mkdir(staging);
    await csi.NodeStageVolume({ volume_id: volumeId, staging_target_path: staging, volume_capability: CAPABILITY });
    ctx.defer('NodeUnstage', () => csi.NodeUnstageVolume({ volume_id: volumeId, staging_target_path: staging }));
    await csi.NodePublishVolume({ volume_id: volumeId, staging_target_path: staging, target_path: target, volume_capability: CAPABILITY, readonly: false });
    ctx.defer('NodeUnpublish', () => csi.NodeUnpublishVolume({ volume_id: volumeId, target_path: target }));

    const plainDir = join(server.root, 'plain');
    const plainMnt = join(ctx.work, 'plain');
    await mkdir(plainDir);
    await mkdir(plainMnt);
    await plainSshfs(server, knownHosts, plainDir, plainMnt, join(ctx.work, 'sshfs.log'));
    ctx.defer('unmount plain sshfs', () => run('fusermount3', ['-u', plainMnt]));

    type Side = 'plain' | 'tether';
    const mounted: Record<Side, string> = { plain: plainMnt, tether: target };
    const onServer: Record<Side, string> = { plain: plainDir, tether: join(server.root, volumeDir(volumeId), 'data') };
    // A new name every sample: files are removed on the server, behind the mounts' attribute caches.
    const seq = (side: Side, r: number | string) => join(mounted[side], `seq-${r}.bin`);
    const catTether = (r: number | string) => sshRun(server, knownHosts, ['cat', '--', join(onServer.tether, `seq-${r}.bin`)]);
    const handshake = () => sshRun(server, knownHosts, ['true']);

    // Warm-up, untimed: binaries and the server's sftp child in the page cache, both mounts in use.
    for (const side of ['plain', 'tether'] as const) {
      await ddWrite(seq(side, 'warm'), 1);
      await ddRead(seq(side, 'warm'));
    }
    await catTether('warm');

    const samples = { write: { plain: [] as number[], tether: [] as number[] }, read: { cat: [] as number[], tether: [] as number[], plain: [] as number[] }, cpu: { cat: [] as number[], tether: [] as number[], plain: [] as number[] }, small: { plain: [] as number[], tether: [] as number[] } };
    for (let r = 0; r < ctx.runs; r++) {
      const sides = rotate(r, ['plain', 'tether'] as const);
      for (const side of sides) {
        await run('sync', []);
        samples.write[side].push(mib / ((await timed(() => ddWrite(seq(side, r), mib))) / 1000));
      }
      for (const reader of rotate(r, ['cat', 'tether', 'plain'] as const)) {
        await dropCaches('3');
        const { ms, cpuMs } = reader === 'cat' ? less(await withCpu(() => catTether(r)), await withCpu(handshake)) : await withCpu(() => ddRead(seq(reader, r)));
        samples.read[reader].push(mib / (ms / 1000));
        samples.cpu[reader].push(cpuMs / 1000 / (mib / 1024));
      }
      const dirs = sides.map((side) => join(mounted[side], `small-${r}`));
      for (const dir of dirs) await mkdir(dir);
      await run('sync', []);
      const ms = await interleaved(files, chunk, dirs.map((dir) => (from: number, to: number) => writeSmallFiles(dir, from, to)));
      sides.forEach((side, i) => samples.small[side].push(rate(files, ms[i]!)));
      for (const side of sides) { // on the server's disk, not through sshfs
        await rm(join(onServer[side], `small-${r}`), { recursive: true, force: true });
        await rm(join(onServer[side], `seq-${r}.bin`), { force: true });
      }
      const last = (xs: number[]) => xs.at(-1)!.toFixed(0);
      ctx.progress(`run ${r + 1}/${ctx.runs}: write MiB/s plain ${last(samples.write.plain)} tether ${last(samples.write.tether)}; `
        + `cold read MiB/s ssh cat ${last(samples.read.cat)} tether ${last(samples.read.tether)} plain sshfs ${last(samples.read.plain)}; `
        + `4 KiB files/s plain ${last(samples.small.plain)} tether ${last(samples.small.tether)}`);
    }

    const note = (what: string) => `median of ${ctx.runs} × ${what}`;
    const plainName = 'plain sshfs, other drivers\' options';
    const rows: Row[] = [
      {
        suite: 'datapath', metric: 'cold sequential read', unit: 'MiB/s', better: 'higher',
        baselineName: `ssh cat, ${SSH_CIPHER}`, baseline: median(samples.read.cat), tether: median(samples.read.tether),
        target: { ratio: 0.9 }, note: `${note(`${mib} MiB`)}; CPU s/GiB, all processes: ssh cat ${median(samples.cpu.cat).toFixed(1)}, tether ${median(samples.cpu.tether).toFixed(1)}`,
      },
      {
        suite: 'datapath', metric: 'sequential write (fsync)', unit: 'MiB/s', better: 'higher',
        baselineName: plainName, baseline: median(samples.write.plain), tether: median(samples.write.tether),
        target: { ratio: 1.3 }, note: note(`${mib} MiB`),
      },
      {
        suite: 'datapath', metric: 'create 4 KiB files', unit: 'files/s', better: 'higher',
        baselineName: plainName, baseline: median(samples.small.plain), tether: median(samples.small.tether),
        target: { ratio: 1.2 }, note: note(`${files} files`),
      },
    ];
    ctx.progress(`cold read, plain sshfs (no target): ${median(samples.read.plain).toFixed(0)} MiB/s; CPU s/GiB (the machine's, all processes): ssh cat ${median(samples.cpu.cat).toFixed(2)}, tether ${median(samples.cpu.tether).toFixed(2)}, plain sshfs ${median(samples.cpu.plain).toFixed(2)}; ${cpus().length} CPUs`);
    return rows;
  },
};
