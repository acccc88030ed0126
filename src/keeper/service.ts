import { lstat, readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { BackendConfig } from '../backends/config.js';
import { SshfsBackend } from '../backends/sshfs.js';
import { alreadyExists, invalid, notFound, precondition, unavailable } from '../csi/errors.js';
import { listProcesses } from '../mounts/connections.js';
import { daemonsOf } from '../mounts/daemon.js';
import { isReadOnly, mountAt, readMountTable, sourceMatches, type MountEntry } from '../mounts/mount-table.js';
import type { Mounter } from '../mounts/mounter.js';
import { resolvePath } from '../mounts/paths.js';
import { probeMount } from '../mounts/probe.js';
import type { MountSpec } from '../mounts/spec.js';
import { withTimeout } from '../util/time.js';
import { parseVolumeId } from '../volumes/ids.js';
import type { FenceResponse, HealthResponse, MountRequest__Output, MountResponse, MountState } from './protocol.js';
import { checkFlags, checkTargetShape, isUnderRoot, parseGroup, sameOrder, volumeOfSource, type HeldOrder } from './rules.js';

/** The backends part of the driver's config file, with the private keys it names, read again on every Mount. */
export type ReadConfig = () => Promise<{ backends: BackendConfig[]; privateKeys: ReadonlyMap<string, Buffer> }>;

export interface KeeperOptions {
  /** Makes the mounts; its runtime directory (a tmpfs) is the keeper's own: key copies and order notes. */
  mounter: Mounter;
  /** Targets must lie below one of these (compared with every symlink resolved). */
  allowedRoots: readonly string[];
  readConfig: ReadConfig;
  version: string;
  log: Logger;
}

const FUSE_SSHFS = 'fuse.sshfs';
/** The note the keeper keeps beside a mount's key copy (see HeldOrder). */
const ORDER_FILE = 'order.json';
const PROBE_MS = 5_000;
const STAT_MS = 5_000;
/** A private directory without its order note is a mount still being made, unless it is this old. */
const HALF_MADE_MS = 10 * 60_000;

/**
 * The mount keeper's work. It takes no command, spec, key or host from a caller: a Mount names a
 * volume ID and a target, and the keeper builds the sshfs mount itself from its own copy of the
 * config (read again each time), through the backend's mountSpec after its allowlist. It refuses IDs
 * tether did not make, NFS volumes (kernel mounts: the node makes them), and targets outside its
 * allowed roots. It never mounts anything again by itself.
 */
export class KeeperService {
  private readonly started = Date.now();

  constructor(private readonly options: KeeperOptions) {}

  async mount(req: MountRequest__Output, signal: AbortSignal, log: Logger): Promise<MountResponse> {
    if (!req.volume_id) throw invalid('volume_id is required');
    checkTargetShape(req.target);
    checkFlags(req.mount_flags);
    const group = parseGroup(req.group);
    const spec = await this.specFor(req.volume_id, req.mount_flags, req.readonly, group);
    const target = await this.allowedTarget(req.target, true);
    const order: HeldOrder = { volumeId: req.volume_id, target, source: spec.source, flags: [...req.mount_flags], readonly: req.readonly, group };
    const made = { ...spec, secretFiles: { ...spec.secretFiles, [ORDER_FILE]: JSON.stringify(order) } };
    const { mounter } = this.options;
    return mounter.exclusive(target, async () => {
      const there = mountAt(await readMountTable(signal), target);
      if (there && (await this.keep(there, order, signal, log))) return { mount: await this.stateOf(target, false), mounted: false };
      await mounter.mountUnlocked(made, target, signal);
      return { mount: await this.stateOf(target, false), mounted: true };
    });
  }

  /**
   * Something is mounted at the target already: true if it is this volume, alive, as asked (Mount is
   * then OK as it is); a mount of it whose daemon is gone for good is taken down (false: mount again).
   * Anything else is ALREADY_EXISTS, or UNAVAILABLE for a mount that lives but does not answer.
   */
  private async keep(there: MountEntry, order: HeldOrder, signal: AbortSignal, log: Logger): Promise<boolean> {
    const { mounter } = this.options;
    if (there.fstype !== FUSE_SSHFS || !sourceMatches(there, order.source)) {
      throw alreadyExists(`${order.target} already holds ${there.source} (${there.fstype}), not volume ${order.volumeId}; it is left as it is`);
    }
    const alive = (await mounter.daemonsAlive([order.target])).get(order.target);
    const held = await this.orderAt(order.target);
    const health = await probeMount(order.target, PROBE_MS, signal);
    if (alive || health.ok) {
      const same = held ? sameOrder(held, order) : isReadOnly(there) === order.readonly;
      if (!same) throw alreadyExists(`volume ${order.volumeId} is mounted at ${order.target} already, with other options (read-only ${held?.readonly ?? isReadOnly(there)}, flags ${held?.flags.join(',') || 'none'}); unmount it first`);
      if (!health.ok && health.kind !== 'unreachable') log.warn({ target: order.target, reason: health.reason }, 'mounted and its daemon alive, but it does not answer');
      return true;
    }
    if (health.kind !== 'gone') throw unavailable(`volume ${order.volumeId} is mounted at ${order.target} but does not answer (${health.reason}); it is kept, so that it heals when its server is back`);
    log.warn({ volume: order.volumeId, target: order.target, reason: health.reason }, 'the mount at the target is dead (its FUSE daemon is gone): taking it down to mount again');
    await mounter.unmount(there, signal, 'abort-fuse');
    return false;
  }

  /** Unmounts the keeper's own mount at the target (anything else there is left alone) and removes its key copy. */
  async unmount(target: string, signal: AbortSignal, log: Logger): Promise<{ unmounted: boolean }> {
    checkTargetShape(target);
    const resolved = await this.allowedTarget(target, false);
    const { mounter } = this.options;
    const unmounted = await mounter.exclusive(resolved, async () => {
      const there = mountAt(await readMountTable(signal), resolved);
      const held = await this.orderAt(resolved);
      if (!there || !held || there.fstype !== FUSE_SSHFS || !sourceMatches(there, held.source)) return false;
      await mounter.unmount(there, signal, 'abort-fuse');
      log.info({ volume: held.volumeId, target: resolved }, 'unmounted a mount the node plugin had left');
      return true;
    });
    await mounter.removeSecrets(resolved); // only if nothing is mounted there (again)
    return { unmounted };
  }

  /** The process half of a fence: the mount's FUSE connection aborted, its sshfs and ssh frozen, their connections reset, killed. */
  async fence(target: string, signal: AbortSignal, log: Logger): Promise<FenceResponse> {
    checkTargetShape(target);
    const resolved = await this.allowedTarget(target, false);
    const there = mountAt(await readMountTable(signal), resolved);
    if (!there || there.fstype !== FUSE_SSHFS) throw notFound(`no sshfs mount at ${resolved}: nothing to fence`);
    const started = performance.now();
    const stopped = await this.options.mounter.fenceDaemon(there);
    const servers = stopped.servers.map((e) => (e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`));
    log.error({ event: 'fence', target: resolved, processes: stopped.processes, connections: stopped.connections, problems: stopped.problems, ms: Math.round(performance.now() - started) }, 'fenced a mount at the node plugin\'s request: its daemon is stopped for good; the keeper never mounts it again by itself');
    return { processes: stopped.processes, connections: stopped.connections, servers, problems: stopped.problems };
  }

  /** The sshfs mounts of tether volumes below the allowed roots, with their daemons (and, if asked, a probe of each). */
  async list(probe: boolean, signal: AbortSignal): Promise<MountState[]> {
    const roots = await this.roots();
    const mounts = (await readMountTable(signal)).filter((m) => m.fstype === FUSE_SSHFS && isUnderRoot(m.target, roots));
    // The config (and its keys) is read only for a mount the keeper holds no order for: rare, not every List.
    let bases: Promise<{ backend: string; base: string }[]> | undefined;
    const basesOnce = () => (bases ??= this.bases().catch(() => []));
    const pids = daemonsOf(await listProcesses(), mounts.map((m) => ({ target: m.target, dir: this.options.mounter.secretDir(m.target) })));
    const states: MountState[] = [];
    for (const m of mounts) {
      const held = await this.orderAt(m.target);
      const volumeId = held && sourceMatches(m, held.source) ? held.volumeId : volumeOfSource(m.source, await basesOnce());
      if (!volumeId) continue; // not a tether volume
      const daemon = pids.get(m.target) ?? 0;
      const health = probe ? await probeMount(m.target, PROBE_MS, signal) : undefined;
      const probed = health === undefined ? {} : health.ok ? { probe: 'ok' } : { probe: health.kind, message: health.reason };
      states.push({ target: m.target, volume_id: volumeId, source: m.source, daemon_pid: daemon, alive: daemon > 0, readonly: isReadOnly(m), held: held !== undefined, ...probed });
    }
    return states;
  }

  async health(): Promise<HealthResponse> {
    const held = await readdir(path.join(this.runtimeDir(), 'mounts')).catch(() => []);
    return { version: this.options.version, allowed_roots: [...this.options.allowedRoots], mounts: held.length, uptime_seconds: String(Math.round((Date.now() - this.started) / 1000)) };
  }

  /**
   * Removes the key copies of mounts that are gone (unmounted by the node plugin while the keeper was
   * down, or lost at a reboot of a runtime directory that is no tmpfs): at start and then regularly.
   */
  async sweep(log: Logger): Promise<void> {
    const dir = path.join(this.runtimeDir(), 'mounts');
    for (const name of await readdir(dir).catch(() => [])) {
      const order = await readFile(path.join(dir, name, ORDER_FILE), 'utf8').then((t) => JSON.parse(t) as HeldOrder, () => undefined);
      if (!order) {
        const age = await stat(path.join(dir, name)).then((s) => Date.now() - s.mtimeMs, () => 0);
        if (age > HALF_MADE_MS) await rm(path.join(dir, name), { recursive: true, force: true });
        continue;
      }
      const mounted = mountAt(await readMountTable(), order.target);
      if (mounted && sourceMatches(mounted, order.source)) continue;
      await this.options.mounter.removeSecrets(order.target);
      log.info({ volume: order.volumeId, target: order.target }, 'removed the key copy of a mount that is gone');
    }
  }

  /** How to mount the volume, from the config as it is now; NOT_FOUND for an ID tether did not make. */
  private async specFor(volumeId: string, flags: readonly string[], readonly: boolean, group: number | undefined): Promise<MountSpec> {
    const ref = parseVolumeId(volumeId);
    if (!ref) throw notFound(`volume ${volumeId.slice(0, 200)} does not exist: tether did not make this ID`);
    const { backends, privateKeys } = await this.config();
    const config = backends.find((b) => b.name === ref.backend);
    if (!config) throw notFound(`volume ${volumeId} names backend "${ref.backend}", which the mount keeper's config does not have (it has ${backends.map((b) => b.name).join(', ') || 'none'}): the keeper and the node plugin must read the same config`);
    if (config.type !== 'sshfs') throw invalid(`volume ${volumeId} is on the ${config.type} backend "${config.name}": a kernel mount, which the node plugin makes itself; the keeper holds sshfs mounts only`);
    const backend = new SshfsBackend(config, privateKeys.get(config.name)!, this.options.log);
    backend.checkMountOptions(flags);
    return backend.mountSpec(ref.dir, { flags, readonly, group });
  }

  /**
   * The target with every symlink resolved, checked to lie below an allowed root and (for Mount) to be
   * a directory; INVALID_ARGUMENT otherwise. A mount point is never looked into (it may hang).
   */
  private async allowedTarget(target: string, mustExist: boolean): Promise<string> {
    const resolved = await resolvePath(target);
    const roots = await this.roots();
    if (!isUnderRoot(resolved, roots)) {
      throw invalid(`target ${target}${resolved === target ? '' : ` (${resolved})`} is not below the mount keeper's allowed roots (${roots.join(', ')}): it mounts nowhere else (--keeper-allowed-root)`);
    }
    if (!mustExist || mountAt(await readMountTable(), resolved)) return resolved;
    const kind = await withTimeout(lstat(resolved), STAT_MS, `lstat ${resolved}`).then((s) => (s.isDirectory() ? 'directory' : 'other'), () => 'missing');
    if (kind === 'missing') throw notFound(`target ${resolved} does not exist: the node plugin makes the directory before it asks for a mount`);
    if (kind !== 'directory') throw invalid(`target ${resolved} is not a directory`);
    return resolved;
  }

  private async roots(): Promise<string[]> {
    return Promise.all(this.options.allowedRoots.map((r) => resolvePath(r).catch(() => r)));
  }

  private async config() {
    try {
      return await this.options.readConfig();
    } catch (err) {
      throw precondition(`the mount keeper cannot use its config: ${(err as Error).message}`);
    }
  }

  /** The source of each sshfs backend's base directory (`user@host:/path`). */
  private async bases(): Promise<{ backend: string; base: string }[]> {
    const { backends, privateKeys } = await this.options.readConfig();
    return backends.flatMap((b) => (b.type === 'sshfs' ? [{ backend: b.name, base: new SshfsBackend(b, privateKeys.get(b.name)!, this.options.log).mountSpec('.', { flags: [], readonly: false }).source }] : []));
  }

  private async orderAt(target: string): Promise<HeldOrder | undefined> {
    const order = await readFile(path.join(this.options.mounter.secretDir(target), ORDER_FILE), 'utf8').then((t) => JSON.parse(t) as HeldOrder, () => undefined);
    return order?.target === target ? order : undefined;
  }

  private async stateOf(target: string, probe: boolean): Promise<MountState | undefined> {
    return (await this.list(probe, AbortSignal.timeout(PROBE_MS * 2))).find((s) => s.target === target);
  }

  private runtimeDir(): string {
    return this.options.mounter.runtimeDir;
  }
}
