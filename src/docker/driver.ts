import { rmdir } from 'node:fs/promises';
import path from 'node:path';
import { status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { CsiError } from '../csi/errors.js';
import type { InProcessCsi } from '../grpc/in-process.js';
import { mountAt, readMountTable, type MountEntry } from '../mounts/mount-table.js';
import { DATA_DIR } from '../volumes/layout.js';
import type { Backends } from '../volumes/registry.js';
import { accessModeOf, DEFAULT_SHARING, oneContainer, SHARING_PARAMETER, sharingOf, type Sharing } from '../volumes/sharing.js';
import { SerialQueues } from '../util/serial.js';
import { sleep } from '../util/time.js';
import { asDockerError, DockerError, inUseElsewhere, inUseHere, mountedHere, notFoundMessage, otherHolders } from './messages.js';
import type { MountRefs, VolumeRefs } from './mount-refs.js';
import { findByName, type NamedVolume } from './names.js';
import { checkDockerName, parseCreateOptions, type CreateOptions } from './options.js';
import { describeVolume, type DockerVolume } from './volume-info.js';

export interface DockerDriverDeps {
  csi: InProcessCsi;
  backends: Backends;
  refs: MountRefs;
  /** This host's name in the volumes' records (its CSI node ID). */
  host: string;
  /** Where volumes are mounted on this host: <mountRoot>/<backend>/<directory>, data/ under it is what containers get. */
  mountRoot: string;
  /** How long a Mount waits for another host (or container) to let go of a single-writer volume. */
  mountWaitMs: number;
  /** A mount ID no container has used the volume for this long is one Docker never unmounted. */
  strayAfterMs: number;
  /** How many containers use the volume staged here (users.ts); tests count otherwise. */
  containersUsing(staged: MountEntry): Promise<number>;
  now(): Date;
  log: Logger;
}

/** The budget of one CSI call made for a Docker call (Docker gives Mount 2 min, the others 1 min). */
const CALL_MS = 45_000;
const RETRY_MS = 1_000;

type MountTry = { mountpoint: string } | { busy: string };

/**
 * Docker's VolumeDriver calls, done as a CO would: through tether's own CSI services (CreateVolume,
 * DeleteVolume, NodeStageVolume, NodeUnstageVolume), so a Docker volume is a tether volume like any
 * other — the same layout, record, claims and writer leases, visible to Kubernetes and Swarm alike.
 * The host stages a volume once, at <mountRoot>/<backend>/<dir>, and Docker binds its data/ into each
 * container; the containers are counted by Docker's mount IDs (mount-refs.ts). Calls on one volume
 * run one at a time, in order.
 */
export class DockerVolumeDriver {
  private readonly queues = new SerialQueues();

  constructor(private readonly deps: DockerDriverDeps) {}

  async create(name: string, opts: Record<string, unknown> | null | undefined): Promise<void> {
    checkDockerName(name);
    const asked = parseCreateOptions(opts);
    const existing = await findByName(this.deps.backends, name);
    if (existing) return refuseUnlessSame(name, existing, asked);
    const sharing = asked.sharing ?? DEFAULT_SHARING;
    const parameters: Record<string, string> = { [SHARING_PARAMETER]: sharing };
    if (asked.backend) parameters.backend = asked.backend;
    if (asked.onDelete) parameters.onDelete = asked.onDelete;
    const capacity = asked.sizeBytes ? { required_bytes: String(asked.sizeBytes) } : undefined;
    await this.deps.csi.controller('CreateVolume', { name, parameters, capacity_range: capacity, volume_capabilities: [capabilityOf(sharing)] }, CALL_MS).catch((err: unknown) => {
      throw asDockerError(err);
    });
  }

  async remove(name: string): Promise<void> {
    const volume = await findByName(this.deps.backends, checkDockerName(name));
    if (!volume) return; // gone already: nothing to remove
    await this.queues.run(volume.id, async () => {
      const here = await this.liveRefs(volume.id);
      if (here) throw new DockerError(mountedHere(name, this.deps.host, Object.keys(here.mounts).length), 'FAILED_PRECONDITION');
      try {
        await this.deps.csi.controller('DeleteVolume', { volume_id: volume.id }, CALL_MS);
      } catch (err) {
        if (err instanceof CsiError && err.code === status.FAILED_PRECONDITION) throw new DockerError(await this.elsewhere(name, volume.id, err), 'FAILED_PRECONDITION');
        throw asDockerError(err);
      }
    });
  }

  /** Mounts the volume for one container (Docker's mount ID), waiting a bounded time for a single-writer volume's holder to let go. */
  async mount(name: string, mountId: string): Promise<string> {
    checkDockerName(name);
    if (typeof mountId !== 'string' || !mountId) throw new DockerError('Mount needs the mount ID Docker sends (ID)', 'INVALID_ARGUMENT');
    const deadline = Date.now() + this.deps.mountWaitMs;
    let waiting = false;
    for (;;) {
      const outcome = await this.tryMount(name, mountId);
      if ('mountpoint' in outcome) return outcome.mountpoint;
      if (Date.now() + RETRY_MS > deadline) throw new DockerError(`${outcome.busy}; waited ${Math.round(this.deps.mountWaitMs / 1000)} s for it to be let go`, 'FAILED_PRECONDITION');
      if (!waiting) this.deps.log.info({ volume: name, mountId, waitS: Math.round(this.deps.mountWaitMs / 1000), why: outcome.busy }, 'Mount waits for the volume to be let go');
      waiting = true;
      await sleep(RETRY_MS);
    }
  }

  async unmount(name: string, mountId: string): Promise<void> {
    const volumeId = await this.volumeIdOf(checkDockerName(name));
    if (!volumeId) return; // this host has no mount of it: nothing to undo
    await this.queues.run(volumeId, async () => {
      const left = await this.deps.refs.remove(volumeId, [mountId]);
      if (!(await this.pruned(volumeId, left))) await this.unstage(volumeId);
    });
  }

  /** Where the volume is mounted on this host, or "" if it is not. */
  async path(name: string): Promise<string> {
    const volumeId = await this.volumeIdOf(checkDockerName(name));
    return volumeId && (await this.deps.refs.get(volumeId)) ? this.mountpointOf(volumeId) : '';
  }

  async get(name: string): Promise<DockerVolume> {
    const volume = await findByName(this.deps.backends, checkDockerName(name));
    if (!volume) throw new DockerError(notFoundMessage(name), 'NOT_FOUND');
    return this.describe(name, volume);
  }

  async list(): Promise<DockerVolume[]> {
    const volumes: DockerVolume[] = [];
    for (const store of this.deps.backends.all()) {
      for (const dir of await store.volumeDirs()) {
        const id = `${store.backend.name}/${dir}`;
        const found = await this.deps.backends.findVolume(id).catch((err: Error) => void this.deps.log.warn({ volume: id, err: err.message }, 'volume left out of the list: its record cannot be read'));
        if (found) volumes.push(await this.describe(undefined, { id, found }));
      }
    }
    return volumes;
  }

  /**
   * Docker (re)started, or the plugin did: the mounts it noted are checked against what is there.
   * A note whose volume is no longer mounted goes (its claim with it); mount IDs no container has used
   * for the stray time are dropped (a daemon restart never unmounts its dead containers' volumes);
   * a volume left with none is unmounted. Mounts under the mount root that no note names (the plugin
   * stopped between mounting and noting) are unmounted too.
   */
  async reconcile(): Promise<void> {
    const noted = await this.deps.refs.all();
    for (const refs of noted) {
      await this.queues.run(refs.volumeId, async () => {
        const left = await this.pruned(refs.volumeId, await this.deps.refs.get(refs.volumeId));
        if (!left) await this.unstage(refs.volumeId);
      }).catch((err: Error) => this.deps.log.warn({ volume: refs.volumeId, err: err.message }, 'could not check the mounts noted for this volume; trying again later'));
    }
    const notedIds = new Set(noted.map((r) => r.volumeId));
    for (const volumeId of await this.strayStagings(notedIds)) {
      // Looked at again in the volume's turn: a Mount may have noted it since.
      const unnoted = async () => !(await this.deps.refs.get(volumeId)) && this.unstage(volumeId);
      await this.queues.run(volumeId, unnoted).catch((err: Error) => this.deps.log.warn({ volume: volumeId, err: err.message }, 'could not unmount a volume no container was noted for'));
    }
  }

  private async tryMount(name: string, mountId: string): Promise<MountTry> {
    const volume = await findByName(this.deps.backends, name);
    if (!volume) throw new DockerError(notFoundMessage(name), 'NOT_FOUND');
    return this.queues.run(volume.id, async () => {
      const sharing = sharingOf(volume.found.record.parameters);
      const here = await this.liveRefs(volume.id);
      const others = Object.keys(here?.mounts ?? {}).filter((id) => id !== mountId);
      if (oneContainer(sharing) && others.length) return { busy: inUseHere(name, this.deps.host, others.length, sharing) };
      try {
        await this.deps.csi.node('NodeStageVolume', { volume_id: volume.id, staging_target_path: this.stagingOf(volume.id), volume_capability: capabilityOf(sharing) }, CALL_MS);
      } catch (err) {
        // Another host holds it (FAILED_PRECONDITION), or a call of tether's own on it is under way (ABORTED): wait.
        if (err instanceof CsiError && (err.code === status.FAILED_PRECONDITION || err.code === status.ABORTED)) return { busy: await this.elsewhere(name, volume.id, err) };
        throw asDockerError(err);
      }
      await this.deps.refs.add(volume.id, name, mountId, this.deps.now());
      return { mountpoint: this.mountpointOf(volume.id) };
    });
  }

  /** Why another holder keeps the volume, in Docker's words (the record names the hosts); the CSI message when it names none. */
  private async elsewhere(name: string, volumeId: string, err: CsiError): Promise<string> {
    const found = await this.deps.backends.findVolume(volumeId).catch(() => undefined);
    const hosts = found ? otherHolders(found.record, this.deps.host) : [];
    return found && hosts.length ? inUseElsewhere(name, hosts, sharingOf(found.record.parameters), found.record) : err.message;
  }

  /** This host's note of the volume's mounts, without mount IDs no container uses any more; undefined when none are left. */
  private async liveRefs(volumeId: string): Promise<VolumeRefs | undefined> {
    return this.pruned(volumeId, await this.deps.refs.get(volumeId));
  }

  /**
   * Drops the mount IDs Docker will never unmount: all of them if the volume is not mounted here any
   * more, else those older than the stray time while no container uses the volume.
   */
  private async pruned(volumeId: string, refs: VolumeRefs | undefined): Promise<VolumeRefs | undefined> {
    if (!refs) return undefined;
    const staged = mountAt(await readMountTable(), this.stagingOf(volumeId));
    const cutoff = this.deps.now().getTime() - this.deps.strayAfterMs;
    const old = Object.entries(refs.mounts).filter(([, at]) => Date.parse(at) <= cutoff).map(([id]) => id);
    let stray: string[] = [];
    if (!staged) stray = Object.keys(refs.mounts);
    else if (old.length && (await this.deps.containersUsing(staged)) === 0) stray = old;
    if (!stray.length) return refs;
    this.deps.log.info({ volume: volumeId, mountIds: stray, mounted: Boolean(staged) }, 'dropped mount IDs Docker will not unmount: no container uses the volume');
    return this.deps.refs.remove(volumeId, stray);
  }

  private async unstage(volumeId: string): Promise<void> {
    const staging = this.stagingOf(volumeId);
    await this.deps.csi.node('NodeUnstageVolume', { volume_id: volumeId, staging_target_path: staging }, CALL_MS).catch((err: unknown) => {
      throw asDockerError(err);
    });
    await rmdir(staging).catch(() => undefined); // an empty directory of tether's; anything else stays
  }

  /** Volumes mounted under the mount root with no note: their IDs, from the mount points (<root>/<backend>/<dir>). */
  private async strayStagings(noted: ReadonlySet<string>): Promise<string[]> {
    const prefix = `${this.deps.mountRoot}/`;
    return (await readMountTable())
      .map((m) => (m.target.startsWith(prefix) ? m.target.slice(prefix.length) : ''))
      .filter((rel) => /^[^/]+\/[^/]+$/.test(rel) && !noted.has(rel))
      .filter((id) => this.deps.backends.get(id.split('/')[0]!) !== undefined);
  }

  /** The volume ID of a Docker name: from the backends, or from this host's notes when the volume is gone from them. */
  private async volumeIdOf(name: string): Promise<string | undefined> {
    const found = await findByName(this.deps.backends, name).catch(() => undefined);
    if (found) return found.id;
    return (await this.deps.refs.all()).find((r) => r.name === name)?.volumeId;
  }

  private async describe(name: string | undefined, volume: NamedVolume): Promise<DockerVolume> {
    const refs = await this.deps.refs.get(volume.id);
    return describeVolume(name, volume, { host: this.deps.host, mountpoint: refs ? this.mountpointOf(volume.id) : '', containersHere: Object.keys(refs?.mounts ?? {}).length });
  }

  private stagingOf(volumeId: string): string {
    return path.join(this.deps.mountRoot, volumeId);
  }

  private mountpointOf(volumeId: string): string {
    return path.join(this.stagingOf(volumeId), DATA_DIR);
  }
}

/** A capability for the sharing mode: mount access (Docker binds a directory), the mode's CSI access mode. */
const capabilityOf = (sharing: Sharing) => ({ mount: { fs_type: '', mount_flags: [] }, access_mode: { mode: accessModeOf(sharing) } });

/** `docker volume create` of a name that exists: fine if it asks for nothing else (Docker creates on first use, with no options). */
function refuseUnlessSame(name: string, existing: NamedVolume, asked: CreateOptions): void {
  const { record, store } = existing.found;
  const differ: string[] = [];
  if (asked.backend && asked.backend !== store.backend.name) differ.push(`backend ${store.backend.name}`);
  if (asked.sizeBytes && asked.sizeBytes > record.capacityBytes) differ.push(`size ${record.capacityBytes} bytes`);
  if (asked.sharing && asked.sharing !== sharingOf(record.parameters)) differ.push(`sharing ${sharingOf(record.parameters)}`);
  if (asked.onDelete && asked.onDelete !== record.onDelete) differ.push(`onDelete ${record.onDelete}`);
  if (differ.length) throw new DockerError(`volume ${name} already exists with ${differ.join(', ')}; remove it first or create it with those options`, 'ALREADY_EXISTS');
}
