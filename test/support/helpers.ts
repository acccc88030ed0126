// What the integration tests (and the bench) share: names, capabilities, gRPC failures, timing, the
// mount table, file commands through a mount, and the afterAll teardown of a file that mounts through
// tether. Nothing here uses jest's globals, so scripts outside jest can import it too.
//
// Everything that may touch a mount runs as an external command with a timeout (findmnt, tee, cat,
// umount), so a hung FUSE request can never wedge the test process itself.
import { access, rm } from 'node:fs/promises';
import { status, type ServiceError } from '@grpc/grpc-js';
import { execa } from 'execa';
import type { CsiClient } from './csi-client.js';
import type { RunningDriver } from './driver.js';
import type { SshServer } from './sshd.js';

/** The time limit of every external command run here. */
export const CMD_TIMEOUT_MS = 15_000;

/** `<prefix>-` and six random characters: a volume or snapshot name no other test uses. */
export const uniq = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;

/** The volume's directory under the backend's root: its ID is `<backend>/<dir>`. */
export const volumeDir = (volumeId: string) => volumeId.slice(volumeId.indexOf('/') + 1);

/** Whether `path` exists. Runs in this process: not for a path on a mount that may hang. */
export const exists = (path: string) => access(path).then(() => true, () => false);

/** A mount VolumeCapability with access mode `mode`; `mount` adds to its mount part (e.g. volume_mount_group). */
export const mountCap = (mode: string, mount: Record<string, unknown> = {}) => ({ access_mode: { mode }, mount: { fs_type: '', mount_flags: [], ...mount } });

/** The gRPC error of a call that must fail; with `code`, it must fail with that status code. */
export async function failure(call: Promise<unknown>, code?: status): Promise<ServiceError> {
  const err = await call.then(
    () => undefined,
    (e: ServiceError) => e,
  );
  if (err === undefined) throw new Error(code === undefined ? 'the call succeeded but was expected to fail' : `expected gRPC status ${status[code]}, but the call succeeded`);
  if (code !== undefined && err.code !== code) throw new Error(`expected gRPC status ${status[code]}, got ${status[err.code] ?? err.code}: ${err.details}`);
  return err;
}

/** Runs `fn`; returns its result or its (gRPC) error, and how long it took in whole ms. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ value?: T; error?: ServiceError; ms: number }> {
  const t0 = performance.now();
  try {
    return { value: await fn(), ms: Math.round(performance.now() - t0) };
  } catch (err) {
    return { error: err as ServiceError, ms: Math.round(performance.now() - t0) };
  }
}

/** A findmnt path: `\xNN` escapes are bytes of UTF-8 (a non-ASCII name is several of them); characters printed as they are stay so. */
function decodeFindmnt(t: string): string {
  const bytes = t.replace(/\\x([0-9a-f]{2})/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
  return bytes === t || /[^\x00-\xff]/.test(bytes) ? bytes : Buffer.from(bytes, 'latin1').toString('utf8');
}

/**
 * Every mount point at or below `dir`, deepest first, read from the mount table only (nothing is
 * stat'ed). With `fsType` (e.g. 'fuse.sshfs'), only the mounts of that type.
 */
export async function mountsUnder(dir: string, fsType?: string): Promise<string[]> {
  const args = ['-rn', '-o', 'TARGET', ...(fsType === undefined ? [] : ['-t', fsType])];
  const { stdout } = await execa('findmnt', args, { timeout: CMD_TIMEOUT_MS, reject: false });
  return String(stdout)
    .split('\n')
    .map(decodeFindmnt)
    .filter((t) => t === dir || t.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/** Whether something is mounted at exactly `path`. */
export async function isMounted(path: string): Promise<boolean> {
  const { exitCode } = await execa('findmnt', ['-n', '--mountpoint', path], { timeout: CMD_TIMEOUT_MS, reject: false });
  return exitCode === 0;
}

/** Lazily unmounts (umount -l, deepest first) whatever is still mounted at or below `dir`; true if nothing is left. */
export async function unmountLeftovers(dir: string): Promise<boolean> {
  for (const target of await mountsUnder(dir)) await execa('umount', ['-l', '--no-canonicalize', target], { timeout: CMD_TIMEOUT_MS, reject: false });
  return (await mountsUnder(dir)).length === 0;
}

/** Writes `content` to `file` with tee. Never rejects: look at exitCode and stderr. */
export const write = (file: string, content: string) => execa('tee', [file], { input: content, timeout: CMD_TIMEOUT_MS, reject: false });

/** Reads `file` with cat. Never rejects: look at exitCode and stdout. */
export const cat = (file: string) => execa('cat', [file], { timeout: CMD_TIMEOUT_MS, reject: false });

/** A driver a test file started, its client, and what the file staged and published through it. */
export interface DriverInUse {
  driver?: RunningDriver | undefined;
  csi?: CsiClient | undefined;
  /** Staging path -> volume ID. */
  staged?: Map<string, string>;
  /** Target path -> volume ID. */
  published?: Map<string, string>;
}

export interface Teardown {
  /** The file's scratch directory, where its staging and target paths are. */
  work: string | undefined;
  drivers: (DriverInUse | undefined)[];
  /** Volumes to ControllerUnpublish from each of `nodeIds` and then delete, through `controller`. */
  volumes?: { controller: CsiClient | undefined; ids: Iterable<string>; nodeIds: string[] };
  servers: (SshServer | undefined)[];
}

/**
 * The afterAll of a test file that mounts through tether; safe when a test (or beforeAll) failed
 * half-way, and errors of the driver calls are ignored. The drivers' own teardown comes first: each
 * NodeUnpublishes what it published, then NodeUnstages what it staged; then the volumes are
 * unpublished and deleted; then anything left under `work` is lazily unmounted. Whatever happened,
 * the clients are closed, the drivers and servers stopped, and `work` removed only if nothing is
 * mounted under it any more: never recurse into a live mount.
 */
export async function tearDown({ work, drivers, volumes, servers }: Teardown): Promise<void> {
  try {
    for (const { csi, staged, published } of drivers.filter((d) => d !== undefined)) {
      if (!csi) continue;
      for (const [target, id] of published ?? []) await csi.NodeUnpublishVolume({ volume_id: id, target_path: target }).catch(() => undefined);
      for (const [staging, id] of staged ?? []) await csi.NodeUnstageVolume({ volume_id: id, staging_target_path: staging }).catch(() => undefined);
    }
    const controller = volumes?.controller;
    if (volumes && controller) {
      for (const id of volumes.ids) {
        for (const node of volumes.nodeIds) await controller.ControllerUnpublishVolume({ volume_id: id, node_id: node }).catch(() => undefined);
        await controller.DeleteVolume({ volume_id: id }).catch(() => undefined);
      }
    }
    if (work) await unmountLeftovers(work);
  } finally {
    for (const { driver, csi } of drivers.filter((d) => d !== undefined)) {
      csi?.close();
      await driver?.stop().catch(() => undefined);
    }
    for (const server of servers) await server?.stop().catch(() => undefined);
    if (work && (await mountsUnder(work)).length === 0) await rm(work, { recursive: true, force: true });
  }
}

/**
 * A volume's record as tether keeps it on the server: the highest `volume.<generation>.json` in the
 * volume's directory. Read in this process: for a backend directory on this host, never through a mount.
 */
export async function recordOn(volumeDirOnServer: string): Promise<Record<string, unknown>> {
  const { readdir, readFile } = await import('node:fs/promises');
  const generations = (await readdir(volumeDirOnServer)).flatMap((n) => /^volume\.(\d+)\.json$/.exec(n)?.[1] ?? []).map(Number);
  if (!generations.length) throw new Error(`no record in ${volumeDirOnServer}`);
  return JSON.parse(await readFile(`${volumeDirOnServer}/volume.${Math.max(...generations)}.json`, 'utf8')) as Record<string, unknown>;
}
