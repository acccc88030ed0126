// A workload that does not run as root: a pod with runAsUser 1000 and fsGroup 2000 writes to its
// volume. Kubernetes passes the fsGroup to the driver as VolumeCapability.mount.volume_mount_group
// (tether has the VOLUME_MOUNT_GROUP node capability, so kubelet does not chown the volume itself).
//
// How tether makes this work, with no chown and no idmapping:
// - The sshfs mount is made with `allow_other` and WITHOUT `default_permissions`: the local kernel does
//   no permission checks of its own on the volume, so any local uid may reach it; every access is
//   checked by the SSH server, as the SSH user of the backend (here root). What that user may do, the
//   workload may do: the server-side account is the volume's access control.
// - VOLUME_MOUNT_GROUP becomes the sshfs option `gid=<group>`: every file in the mount is shown as
//   owned by group 2000, so a workload that checks group ownership (or expects fsGroup semantics)
//   sees what Kubernetes promised.
// The workload here is `setpriv --reuid=1000 --regid=2000 --clear-groups sh -c '…'`: uid 1000, gid
// 2000, no supplementary groups, exactly like the pod's process. The test itself runs no shell.
import { chmod, mkdir, mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { startSshServer, type SshServer } from '../support/sshd.js';
import { startDriver, type RunningDriver } from '../support/driver.js';
import { csiClient, type CsiClient } from '../support/csi-client.js';
import { CMD_TIMEOUT_MS, exists, mountCap, mountsUnder, tearDown, uniq, volumeDir } from '../support/helpers.js';

const TEST_TIMEOUT_MS = 60_000;
const HOOK_TIMEOUT_MS = 90_000;
const RUN_AS_USER = 1000;
const FS_GROUP = 2000;

let server: SshServer;
let driver: RunningDriver;
let csi: CsiClient;
let work: string;
const staged = new Map<string, string>(); // staging path -> volume ID
const published = new Map<string, string>(); // target path -> volume ID
const volumes = new Set<string>();

/** Runs `script` as the pod's process would: uid 1000, gid 2000, no supplementary groups. */
const asWorkload = (script: string, ...args: string[]) =>
  execa('setpriv', [`--reuid=${RUN_AS_USER}`, `--regid=${FS_GROUP}`, '--clear-groups', 'sh', '-c', script, 'workload', ...args], {
    timeout: CMD_TIMEOUT_MS,
    reject: false,
  });

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tether-non-root-'));
  // mkdtemp makes 0700 root-owned directories; the workload must be able to walk to its target path
  // (in a real pod the target is bind-mounted into the container, so its parents do not matter).
  await chmod(work, 0o755);
  server = await startSshServer();
  driver = await startDriver(server, { nodeId: 'node-a', mode: 'all' });
  csi = csiClient(driver.endpoint);
  await csi.NodeGetInfo({});
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  await tearDown({ work, drivers: [{ driver, csi, staged, published }], volumes: { controller: csi, ids: volumes, nodeIds: ['node-a'] }, servers: [server] });
}, HOOK_TIMEOUT_MS);

describe('a pod running as uid 1000 with fsGroup 2000', () => {
  it('writes and reads its volume, and sees its files owned by group 2000', async () => {
    const cap = mountCap('SINGLE_NODE_MULTI_WRITER', { volume_mount_group: String(FS_GROUP) });
    const name = uniq('pvc-non-root');
    const id = (await csi.CreateVolume({ name, volume_capabilities: [cap] })).volume.volume_id as string;
    volumes.add(id);
    await csi.ControllerPublishVolume({ volume_id: id, node_id: 'node-a', volume_capability: cap, readonly: false });

    const staging = join(work, 'staging', name);
    await mkdir(staging, { recursive: true });
    staged.set(staging, id);
    await csi.NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: cap });
    const target = join(work, 'pods', 'app', 'volumes', name);
    published.set(target, id);
    await csi.NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: cap, readonly: false });
    // The mechanism, as the kernel sees the mount: other users may use it, and the kernel leaves the permission checks to the server.
    const options = String((await execa('findmnt', ['-n', '-o', 'OPTIONS', '--mountpoint', staging], { timeout: CMD_TIMEOUT_MS })).stdout).split(',');
    expect(options).toContain('allow_other');
    expect(options).not.toContain('default_permissions');
    // The target's parents are made by the driver as root; let the workload walk through them.
    for (let dir = join(target, '..'); dir.startsWith(`${work}/`); dir = join(dir, '..')) await chmod(dir, 0o755);

    const run = await asWorkload('id -u && id -g && echo x > "$1/f" && cat "$1/f"', target);
    expect(run.stderr).toBe('');
    expect(run.exitCode).toBe(0);
    expect(String(run.stdout).split('\n')).toEqual([String(RUN_AS_USER), String(FS_GROUP), 'x']);

    // As the workload (and anyone on the node) sees it: group 2000, the fsGroup.
    const seen = await execa('stat', ['-c', '%g %n', join(target, 'f'), target], { timeout: CMD_TIMEOUT_MS });
    expect(String(seen.stdout).split('\n').map((l) => l.split(' ')[0])).toEqual([String(FS_GROUP), String(FS_GROUP)]);

    // The workload can make directories and files deeper down too.
    const deeper = await asWorkload('mkdir -p "$1/cache/a" && echo y > "$1/cache/a/g" && ls -A "$1/cache/a"', target);
    expect(deeper.stderr).toBe('');
    expect(deeper.stdout).toBe('g');

    // On the server the file is there, written by the SSH user.
    const dir = volumeDir(id);
    expect(await readFile(join(server.root, dir, 'data', 'f'), 'utf8')).toBe('x\n');
    expect((await stat(join(server.root, dir, 'data', 'f'))).uid).toBe(0);

    await csi.NodeUnpublishVolume({ volume_id: id, target_path: target });
    published.delete(target);
    expect(await exists(target)).toBe(false);
    await csi.NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
    staged.delete(staging);
    expect(await mountsUnder(work)).toEqual([]);
    await csi.ControllerUnpublishVolume({ volume_id: id, node_id: 'node-a' });
    await csi.DeleteVolume({ volume_id: id });
    volumes.delete(id);
  }, TEST_TIMEOUT_MS);
});
