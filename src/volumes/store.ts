import { randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import type { Backend } from '../backends/backend.js';
import type { Logger } from 'pino';
import { GROUPS_DIR, isDirName, SNAPSHOTS_DIR } from './ids.js';
import { aborted, notFound } from '../csi/errors.js';
import { sleep } from '../util/time.js';
import { ARCHIVE_DIR, DATA_DIR, generationOf, GROUP_RECORD, nodeFile, NODES_DIR, recordFile, SNAPSHOT_RECORD, TEMP_FILE } from './layout.js';
import { encodeRecord, groupRecord, nodeRecord, parseRecord, snapshotRecord, volumeRecord, type GroupRecord, type NewVolumeRecord, type NodeRecord, type SnapshotRecord, type VolumeRecord } from './records.js';

/** What a new volume is copied from: its data directory, and whether it still stands once copied. */
export interface CopySource {
  what: string;
  dataPath: string;
  stands(signal?: AbortSignal): Promise<boolean>;
}

/** How hard updateVolume tries before it answers ABORTED (the CO retries). */
export interface Contention {
  attempts: number;
  /** The longest pause between two attempts; pauses grow from 2 ms, randomized, up to this. */
  maxBackoffMs: number;
}

const CONTENTION: Contention = { attempts: 40, maxBackoffMs: 250 };

/** How many volumes' last records a store remembers (see VolumeStore.decide). */
const RECENT_RECORDS = 4096;

/** A record as a caller read it (readVolume): undefined if there was none. */
export interface ReadVolume {
  record: VolumeRecord | undefined;
}

export class VolumeStore {
  /** Foreign directories already logged (lost+found and the like): said once, not on every List. */
  private readonly ignored = new Set<string>();
  /** The record this process last wrote or read of each volume, newest last (see decide). */
  private readonly recent = new Map<string, VolumeRecord>();

  constructor(
    readonly backend: Backend,
    private readonly contention: Contention = CONTENTION,
    private readonly log?: Logger,
  ) {}

  private get fs() {
    return this.backend.fs;
  }

  where(path: string): string {
    return `${this.fs.location.replace(/\/$/, '')}/${path}`;
  }

  // ---- volumes ----

  /** The volume's record: the highest generation in its directory (see updateVolume), or undefined. */
  async readVolume(dir: string, signal?: AbortSignal): Promise<VolumeRecord | undefined> {
    return (await this.readVolumeState(dir, signal)).record;
  }

  /** The volume's record (see readVolume), and whether its data/ is there — the same listing tells both. */
  async readVolumeState(dir: string, signal?: AbortSignal): Promise<{ record: VolumeRecord | undefined; hasData: boolean }> {
    for (let attempt = 1; ; attempt++) {
      const { files, hasData } = await this.listVolumeDir(dir, signal);
      const latest = files.at(-1);
      if (latest === undefined) {
        this.remember(dir, undefined);
        return { record: undefined, hasData };
      }
      const path = posix.join(dir, recordFile(latest.generation));
      const bytes = await this.fs.readFile(path, signal, latest.size);
      // Gone between the listing and the read: a writer cleaned it up after two newer ones. List again.
      if (bytes) {
        const record: VolumeRecord = { ...parseRecord(volumeRecord, bytes, this.where(path)), generation: latest.generation };
        this.remember(dir, record);
        return { record, hasData };
      }
      if (attempt === this.contention.attempts) throw aborted(`the record of volume ${this.where(dir)} kept changing while this call read it; retry`);
    }
  }

  /**
   * Changes a volume's record by compare-and-swap on the backend itself, safe across processes and
   * hosts, with no clock and no lock: `change` gets the record as it is (undefined if there is none)
   * and returns the new one — or the same object to leave it as it is; it may throw to refuse.
   *
   * Every change is a new file, `volume.<generation>.json`, published by an exclusive link (SFTP's
   * hardlink, NFS's LINK: it never replaces a file): of all writers that read generation g, exactly
   * one creates g+1; the others read again and decide again. A writer so slow that g+1 had come and
   * gone (cleaned up) before its link sees a newer generation beside its own and starts over. The
   * record is the highest generation; each writer removes those older than the one it read.
   */
  async updateVolume(dir: string, change: (current: VolumeRecord | undefined) => NewVolumeRecord | undefined, signal?: AbortSignal, read?: ReadVolume): Promise<VolumeRecord | undefined> {
    for (let attempt = 1; attempt <= this.contention.attempts; attempt++) {
      if (attempt > 1) await sleep(Math.random() * Math.min(this.contention.maxBackoffMs, 2 ** attempt)); // many writers: spread them out
      const { current, next } = await this.decide(dir, change, attempt === 1, read, signal);
      if (next === current || next === undefined) return current;
      const base = current?.generation ?? 0;
      const record: VolumeRecord = { ...next, generation: base + 1, writeId: randomBytes(8).toString('hex') };
      const file = posix.join(dir, recordFile(record.generation));
      if (!(await this.fs.linkExclusive(file, encodeRecord(record), signal))) continue;
      const generations = await this.generations(dir);
      if (generations.at(-1) === record.generation) {
        this.remember(dir, record);
        // Committed. Older generations are no one's to read any more: removed in the background, best effort.
        void Promise.all(generations.filter((g) => g < base).map((old) => this.fs.removeFile(posix.join(dir, recordFile(old))))).catch(() => undefined);
        return record;
      }
      await this.fs.removeFile(file); // a newer generation exists: ours was made on a stale read
    }
    throw aborted(`the record of volume ${this.where(dir)} changed ${this.contention.attempts} times while this call tried to change it; retry`);
  }

  /**
   * The record a change starts from, and the change. On the first attempt, the caller's own read of
   * this call, if it made one, is used as it is; otherwise the record this process last wrote or read is tried first (most
   * changes follow this process's own: a node renewing its lease, releasing its claim) and saves a
   * read — if it is stale, the exclusive link fails or a newer generation shows, and the next
   * attempt reads. Later attempts always read. A change that would keep or refuse the remembered record is decided again on a
   * fresh read: no answer is given from memory.
   */
  private async decide(dir: string, change: (current: VolumeRecord | undefined) => NewVolumeRecord | undefined, first: boolean, read: ReadVolume | undefined, signal?: AbortSignal) {
    const remembered = first && !read ? this.recent.get(dir) : undefined;
    if (remembered) {
      try {
        const next = change(remembered);
        if (next !== undefined && next !== remembered) return { current: remembered as VolumeRecord | undefined, next };
      } catch {
        // decided again below, on what is there now
      }
    }
    const current = first && read ? read.record : await this.readVolume(dir, signal);
    return { current, next: change(current) };
  }

  /** Keeps the record this process last saw of a volume (a hint for decide, never an answer); a few thousand at most. */
  private remember(dir: string, record: VolumeRecord | undefined): void {
    this.recent.delete(dir);
    if (!record) return;
    this.recent.set(dir, record);
    if (this.recent.size > RECENT_RECORDS) this.recent.delete(this.recent.keys().next().value!);
  }

  /** The generations of a volume's record, ascending (a v0.1 `volume.json` is generation 0). */
  private async generations(dir: string, signal?: AbortSignal): Promise<number[]> {
    return (await this.listVolumeDir(dir, signal)).files.map((f) => f.generation);
  }

  /** A volume directory's record files, by generation ascending with their sizes where the listing says them, and whether data/ is there. */
  private async listVolumeDir(dir: string, signal?: AbortSignal): Promise<{ files: { generation: number; size?: number | undefined }[]; hasData: boolean }> {
    const entries = await this.fs.list(dir, signal);
    const files = entries.flatMap((e) => (e.isDirectory ? [] : generationOf(e.name).map((generation) => ({ generation, size: e.size }))));
    return { files: files.sort((a, b) => a.generation - b.generation), hasData: entries.some((e) => e.isDirectory && e.name === DATA_DIR) };
  }

  /**
   * Makes an empty volume: its directory, data/, then its record — unless a record is there already
   * (a retry, another controller): returns the record that stands. Stopped before its record, it is
   * a directory that holds only an empty data/, which isHalfMade recognizes; its retry finishes it.
   * `read` is what the caller read before (no record), saving a read when no one raced it.
   */
  async createEmptyVolume(dir: string, record: NewVolumeRecord, signal?: AbortSignal, read?: ReadVolume): Promise<VolumeRecord> {
    await this.fs.mkdir(dir, signal);
    await this.fs.mkdir(posix.join(dir, DATA_DIR), signal);
    return (await this.updateVolume(dir, (current) => current ?? record, signal, read))!;
  }

  /**
   * Begins a volume with content (a copy of a snapshot or another volume, which takes a while): its
   * directory, then its record marked as being created (see `creatingAt`) —
   * unless a record is there already (a retry, another controller): returns the record that stands.
   */
  async beginVolume(dir: string, record: NewVolumeRecord, now: Date, signal?: AbortSignal): Promise<VolumeRecord> {
    await this.fs.mkdir(dir, signal);
    return (await this.updateVolume(dir, (current) => current ?? { ...record, creatingAt: now.toISOString() }, signal))!;
  }

  /**
   * Finishes a volume `beginVolume` began: data/ (a copy of the source's data, files an earlier try
   * copied skipped, or empty), then the record without its mark. Returns the record that stands:
   * one being deleted meanwhile stays so. A source deleted meanwhile is NOT_FOUND: the volume stays
   * unfinished (no record without its mark: no volume), for DeleteVolume or the collector.
   */
  async finishVolume(dir: string, source: CopySource | undefined, signal?: AbortSignal): Promise<VolumeRecord | undefined> {
    const data = posix.join(dir, DATA_DIR);
    if (source) {
      await this.copySource(source.dataPath, data, signal);
      // A deletion that began during the copy may have emptied the source before the copy listed it.
      if (!(await source.stands(signal))) throw notFound(`the source ${source.what} was deleted while it was being copied`);
    } else await this.fs.mkdir(data, signal);
    return this.updateVolume(dir, (current) => (current?.creatingAt && !current.deletingAt ? withoutCreating(current) : current), signal);
  }

  /**
   * Copies a source's data; a source deleted while it was copied is NOT_FOUND (its retry finds it
   * gone, too), and `partial`, the copy's recordless home, is removed then.
   */
  private async copySource(from: string, to: string, signal?: AbortSignal, partial?: string): Promise<void> {
    try {
      await this.fs.copyTree(from, to, signal);
    } catch (err) {
      if (await this.fs.exists(from, signal).catch(() => true)) throw err;
      if (partial) await this.fs.removeTree(partial, signal).catch(() => undefined);
      throw notFound(`the source data ${this.where(from)} was removed while it was being copied (its snapshot or volume was deleted meanwhile)`);
    }
  }

  /** Volume directories, sorted (records not read): the order ListVolumes pages through. Anything tether cannot have made is not one. */
  async volumeDirs(signal?: AbortSignal): Promise<string[]> {
    return this.dirsIn('.', signal);
  }

  /**
   * True if `dir` holds what a CreateVolume stopped before its record leaves (tether ≤ 0.1 made
   * data/ first): nothing, its temporary files, an empty data/ or a partial copy in it. Anything
   * else in a directory without a record is not tether's to remove.
   */
  async isHalfMade(dir: string, signal?: AbortSignal): Promise<boolean> {
    if (!(await this.fs.exists(dir, signal))) return false;
    const entries = await this.fs.list(dir, signal);
    return entries.every((e) => (e.isDirectory ? e.name === DATA_DIR : TEMP_FILE.test(e.name)));
  }

  /**
   * Removes a volume no one ever had: one marked as being created, or a directory without a record
   * holding only what a stopped CreateVolume leaves (see isHalfMade). Decided by compare-and-swap —
   * a recordless one gets a tombstone record first — so a CreateVolume racing from another
   * controller either lands first (and this does nothing) or finds it being deleted (ABORTED).
   * True if it was half-made and is gone.
   */
  async discardHalfMade(dir: string, now: Date, signal?: AbortSignal): Promise<boolean> {
    const recordless = (await this.readVolume(dir, signal)) === undefined && (await this.isHalfMade(dir, signal));
    const after = await this.updateVolume(dir, (current) => {
      if (!current) return recordless ? tombstone(now) : current;
      return current.creatingAt && !current.deletingAt ? { ...current, deletingAt: now.toISOString() } : current;
    }, signal);
    if (!after?.creatingAt || !after.deletingAt) return false;
    await this.removeVolume(dir, signal);
    return true;
  }

  /** True if something is at the volume's directory, record or not. */
  dirExists(dir: string, signal?: AbortSignal): Promise<boolean> {
    return this.fs.exists(dir, signal);
  }

  /**
   * Removes a volume: its data first, its records (and directory) last, so a retry after a crash finds
   * what is left. `deleting`, the record that marked it as being deleted, names the records there are
   * (its own generation and the one before it) without a listing; anything else left is found and removed.
   */
  async removeVolume(dir: string, signal?: AbortSignal, deleting?: VolumeRecord): Promise<void> {
    this.remember(dir, undefined);
    await this.fs.removeTree(posix.join(dir, DATA_DIR), signal);
    const files = deleting
      ? [deleting.generation, deleting.generation - 1].filter((g) => g >= 0).map(recordFile)
      : (await this.fs.list(dir, signal)).filter((e) => !e.isDirectory).map((e) => e.name);
    await Promise.all(files.map((name) => this.fs.removeFile(posix.join(dir, name), signal)));
    await this.fs.removeTree(dir, signal); // empty by now, unless something else was left there (a temporary file)
  }

  /** Moves the whole volume directory under .archive/, out of tether's sight; returns where it went. */
  async archiveVolume(dir: string, now: Date, signal?: AbortSignal): Promise<string> {
    await this.fs.mkdir(ARCHIVE_DIR, signal);
    const to = posix.join(ARCHIVE_DIR, `${dir}-${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}`);
    await this.fs.rename(dir, to, signal);
    return to;
  }

  dataPath(dir: string): string {
    return posix.join(dir, DATA_DIR);
  }

  // ---- snapshots ----

  snapshotPath(dir: string): string {
    return posix.join(SNAPSHOTS_DIR, dir);
  }

  async readSnapshot(dir: string, signal?: AbortSignal): Promise<SnapshotRecord | undefined> {
    const path = posix.join(SNAPSHOTS_DIR, dir, SNAPSHOT_RECORD);
    const bytes = await this.fs.readFile(path, signal);
    return bytes && parseRecord(snapshotRecord, bytes, this.where(path));
  }

  /**
   * Copies the volume's data on the server, then writes the record: a snapshot is visible only when
   * complete. A volume deleted while it was copied is NOT_FOUND, and the partial copy (no record:
   * no snapshot) is removed.
   */
  async createSnapshot(dir: string, sourceVolumeDir: string, record: SnapshotRecord, signal?: AbortSignal): Promise<void> {
    const path = posix.join(SNAPSHOTS_DIR, dir);
    await this.fs.mkdir(SNAPSHOTS_DIR, signal);
    await this.fs.mkdir(path, signal);
    await this.copySource(posix.join(sourceVolumeDir, DATA_DIR), posix.join(path, DATA_DIR), signal, path);
    // A deletion that began during the copy may have emptied the data before the copy listed it.
    const source = await this.readVolume(sourceVolumeDir, signal);
    if (!source || source.deletingAt) {
      await this.fs.removeTree(path, signal).catch(() => undefined);
      throw notFound(`volume ${this.where(sourceVolumeDir)} was deleted while its snapshot was being taken`);
    }
    await this.fs.writeFileAtomic(posix.join(path, SNAPSHOT_RECORD), encodeRecord(record), signal);
  }

  snapshotDirs(signal?: AbortSignal): Promise<string[]> {
    return this.dirsIn(SNAPSHOTS_DIR, signal);
  }

  /** The directories under `path` whose names tether can have made, sorted; others are logged once at debug and ignored. */
  private async dirsIn(path: string, signal?: AbortSignal): Promise<string[]> {
    const entries = await this.fs.list(path, signal);
    const dirs: string[] = [];
    for (const e of entries) {
      if (!e.isDirectory || e.name.startsWith('.')) continue;
      if (isDirName(e.name)) dirs.push(e.name);
      else if (!this.ignored.has(posix.join(path, e.name))) {
        this.ignored.add(posix.join(path, e.name));
        this.log?.debug({ backend: this.backend.name, path: this.where(posix.join(path, e.name)) }, 'not a tether directory (a name tether never makes); ignored');
      }
    }
    return dirs.sort();
  }

  /** Removes a snapshot: its record first, so that one half-removed (a call stopped midway) is no snapshot at all and its retry finishes the job. */
  async removeSnapshot(dir: string, signal?: AbortSignal): Promise<void> {
    const path = posix.join(SNAPSHOTS_DIR, dir);
    await this.fs.removeTree(posix.join(path, SNAPSHOT_RECORD), signal);
    await this.fs.removeTree(path, signal).catch(async (err: unknown) => {
      // A copy from the snapshot (a restore under way) adds its scratch directory while the tree goes: not a fault, a retry finishes.
      if (await this.fs.exists(path).catch(() => false)) throw aborted(`snapshot ${this.where(path)} changed while it was being removed (a restore from it was under way); retry`);
      throw err;
    });
  }

  // ---- volume group snapshots ----

  async readGroup(dir: string, signal?: AbortSignal): Promise<GroupRecord | undefined> {
    const path = posix.join(GROUPS_DIR, dir, GROUP_RECORD);
    const bytes = await this.fs.readFile(path, signal);
    return bytes && parseRecord(groupRecord, bytes, this.where(path));
  }

  /** Written after all member snapshots exist: the group is visible only when complete. */
  async writeGroup(dir: string, record: GroupRecord, signal?: AbortSignal): Promise<void> {
    await this.fs.mkdir(GROUPS_DIR, signal);
    await this.fs.mkdir(posix.join(GROUPS_DIR, dir), signal);
    await this.fs.writeFileAtomic(posix.join(GROUPS_DIR, dir, GROUP_RECORD), encodeRecord(record), signal);
  }

  async removeGroup(dir: string, signal?: AbortSignal): Promise<void> {
    await this.fs.removeTree(posix.join(GROUPS_DIR, dir, GROUP_RECORD), signal);
    await this.fs.removeTree(posix.join(GROUPS_DIR, dir), signal);
  }

  // ---- nodes ----

  /** Records that a node exists, so ControllerPublish can tell a real node from a mistyped one. */
  async registerNode(nodeId: string, maxVolumes: number, now: Date): Promise<void> {
    await this.fs.mkdir(NODES_DIR);
    const record: NodeRecord = { kind: 'tether.node/v1', nodeId, maxVolumes, seenAt: now.toISOString() };
    await this.fs.writeFileAtomic(posix.join(NODES_DIR, nodeFile(nodeId)), encodeRecord(record));
  }

  /** The node's record, or undefined if no node of that ID has registered here. */
  async readNode(nodeId: string, signal?: AbortSignal): Promise<NodeRecord | undefined> {
    const path = posix.join(NODES_DIR, nodeFile(nodeId));
    const bytes = await this.fs.readFile(path, signal);
    const record = bytes && parseRecord(nodeRecord, bytes, this.where(path));
    return record && record.nodeId === nodeId ? record : undefined;
  }
}

/** The record that claims the removal of a recordless half-made volume: marked as being created and as being deleted. */
function tombstone(now: Date): NewVolumeRecord {
  const at = now.toISOString();
  return { kind: 'tether.volume/v1', name: '(half-made)', capacityBytes: 0, parameters: {}, onDelete: 'delete', contentSource: null, createdAt: at, publications: [], claims: [], leases: [], takeovers: [], creatingAt: at, deletingAt: at };
}

/** A record without its creating mark. */
function withoutCreating(record: VolumeRecord): NewVolumeRecord {
  const { creatingAt: _done, ...rest } = record;
  return rest;
}
