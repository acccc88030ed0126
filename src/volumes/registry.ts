import type { Logger } from 'pino';
import { invalid, notFound } from '../csi/errors.js';
import type { Backend } from '../backends/backend.js';
import { parseGroupSnapshotId, parseSnapshotId, parseVolumeId, type VolumeRef } from './ids.js';
import type { GroupRecord, SnapshotRecord, VolumeRecord } from './records.js';
import { VolumeStore } from './store.js';

/** An object an ID names: where it lives and its record. */
export interface Found<T> {
  ref: VolumeRef;
  store: VolumeStore;
  record: T;
}

/** A live volume as found: with whether its data/ is there (for VolumeCondition). */
export interface FoundVolume extends Found<VolumeRecord> {
  hasData: boolean;
}

/**
 * The configured backends by name, each with its volume store, and the one way from an ID to what
 * it names: `find…` answers undefined for anything that does not exist (an ID tether cannot have
 * made, an unknown backend, no record, a retained volume), `resolve…` answers NOT_FOUND.
 */
export class Backends {
  private readonly stores = new Map<string, VolumeStore>();

  constructor(backends: readonly Backend[], log?: Logger) {
    for (const b of backends) this.stores.set(b.name, new VolumeStore(b, undefined, log));
  }

  /** The store of a backend named in an ID, or undefined (so the ID names nothing that exists). */
  get(name: string): VolumeStore | undefined {
    return this.stores.get(name);
  }

  /** The backend a StorageClass asks for: by name, or the only one there is. */
  choose(name: string | undefined): VolumeStore {
    if (name) {
      const store = this.stores.get(name);
      if (!store) throw invalid(`parameter backend="${name}" names no configured backend; configured: ${this.names().join(', ')}`);
      return store;
    }
    if (this.stores.size === 1) return [...this.stores.values()][0]!;
    throw invalid(`parameter "backend" is required when more than one backend is configured (${this.names().join(', ')})`);
  }

  all(): VolumeStore[] {
    return [...this.stores.values()];
  }

  names(): string[] {
    return [...this.stores.keys()];
  }

  async close(): Promise<void> {
    await Promise.all(this.all().map((s) => s.backend.close()));
  }

  /** Where a volume ID points, without reading anything; NOT_FOUND for an ID tether did not make. */
  locateVolume(id: string): { ref: VolumeRef; store: VolumeStore } {
    const ref = parseVolumeId(id);
    const store = ref && this.stores.get(ref.backend);
    if (!ref || !store) throw notFound(`volume ${id} does not exist: tether did not make this ID`);
    return { ref, store };
  }

  /** A live volume (one a CO can use: not deleted, not being deleted, not retained by onDelete=retain), or undefined. */
  async findVolume(id: string, signal?: AbortSignal): Promise<FoundVolume | undefined> {
    const ref = parseVolumeId(id);
    const store = ref && this.stores.get(ref.backend);
    if (!ref || !store) return undefined;
    const { record, hasData } = await store.readVolumeState(ref.dir, signal);
    return isLive(record) ? { ref, store, record, hasData } : undefined;
  }

  /** A live volume, or NOT_FOUND "`what` `id` does not exist". */
  async resolveVolume(id: string, what = 'volume', signal?: AbortSignal): Promise<FoundVolume> {
    return orNotFound(await this.findVolume(id, signal), `${what} ${id} does not exist`);
  }

  findSnapshot(id: string, signal?: AbortSignal): Promise<Found<SnapshotRecord> | undefined> {
    return this.find(parseSnapshotId(id), (store, dir) => store.readSnapshot(dir, signal));
  }

  async resolveSnapshot(id: string, signal?: AbortSignal): Promise<Found<SnapshotRecord>> {
    return orNotFound(await this.findSnapshot(id, signal), `snapshot ${id} does not exist`);
  }

  findGroup(id: string, signal?: AbortSignal): Promise<Found<GroupRecord> | undefined> {
    return this.find(parseGroupSnapshotId(id), (store, dir) => store.readGroup(dir, signal));
  }

  async resolveGroup(id: string, signal?: AbortSignal): Promise<Found<GroupRecord>> {
    return orNotFound(await this.findGroup(id, signal), `group snapshot ${id} does not exist`);
  }

  private async find<T>(ref: VolumeRef | undefined, read: (store: VolumeStore, dir: string) => Promise<T | undefined>): Promise<Found<T> | undefined> {
    const store = ref && this.stores.get(ref.backend);
    const record = ref && store ? await read(store, ref.dir) : undefined;
    return ref && store && record ? { ref, store, record } : undefined;
  }
}

/** A volume a CO can use: it has a record, is complete, and is neither being deleted nor retained after deletion. */
export const isLive = (record: VolumeRecord | undefined): record is VolumeRecord => record !== undefined && !record.creatingAt && !record.retainedAt && !record.deletingAt;

/** Inside a record change: the record if the volume is live, else NOT_FOUND (it went away since the call looked it up). */
export function live(record: VolumeRecord | undefined, id: string): VolumeRecord {
  if (!isLive(record)) throw notFound(`volume ${id} does not exist`);
  return record;
}

function orNotFound<T>(found: T | undefined, message: string): T {
  if (!found) throw notFound(message);
  return found;
}
