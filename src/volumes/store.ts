import { posix } from 'node:path';
import type { Backend } from '../backends/backend.js';
import { GROUPS_DIR, SNAPSHOTS_DIR } from './ids.js';
import { encodeRecord, groupRecord, nodeRecord, parseRecord, snapshotRecord, volumeRecord, type GroupRecord, type NodeRecord, type SnapshotRecord, type VolumeRecord } from './records.js';

/**
 * The layout of one backend's base directory:
 *   <dir>/volume.json, <dir>/data/                       a volume (the workload sees data/ only)
 *   .snapshots/<dir>/snapshot.json, .snapshots/<dir>/data/   a snapshot
 *   .groups/<dir>/group.json                             a volume group snapshot (its members are snapshots)
 *   .archive/<dir>-<time>/                               volumes deleted with onDelete=archive
 *   .nodes/<node>.json                                   nodes that have registered
 * A volume or snapshot exists once its record exists: the record is written last, so a half-made
 * one is invisible and a retry finishes it.
 */
export const VOLUME_RECORD = 'volume.json';
export const DATA_DIR = 'data';
const SNAPSHOT_RECORD = 'snapshot.json';
const GROUP_RECORD = 'group.json';
const ARCHIVE_DIR = '.archive';
const NODES_DIR = '.nodes';

export class VolumeStore {
  constructor(readonly backend: Backend) {}

  private get fs() {
    return this.backend.fs;
  }

  where(path: string): string {
    return `${this.fs.location.replace(/\/$/, '')}/${path}`;
  }

  // ---- volumes ----

  async readVolume(dir: string): Promise<VolumeRecord | undefined> {
    const path = posix.join(dir, VOLUME_RECORD);
    const bytes = await this.fs.readFile(path);
    return bytes && parseRecord(volumeRecord, bytes, this.where(path));
  }

  writeVolume(dir: string, record: VolumeRecord): Promise<void> {
    return this.fs.writeFileAtomic(posix.join(dir, VOLUME_RECORD), encodeRecord(record));
  }

  /** Makes the volume's directories (copying `sourceData` into data/ if given), then its record. */
  async createVolume(dir: string, record: VolumeRecord, sourceData?: string): Promise<void> {
    await this.fs.mkdir(dir);
    const data = posix.join(dir, DATA_DIR);
    if (sourceData) await this.fs.copyTree(sourceData, data);
    else await this.fs.mkdir(data);
    await this.writeVolume(dir, record);
  }

  /** Volume directories, sorted (records not read): the order ListVolumes pages through. */
  async volumeDirs(): Promise<string[]> {
    const entries = await this.fs.list('.');
    return entries.filter((e) => e.isDirectory && !e.name.startsWith('.')).map((e) => e.name).sort();
  }

  /** True if the volume's data directory is there (for VolumeCondition). */
  dataExists(dir: string): Promise<boolean> {
    return this.fs.exists(posix.join(dir, DATA_DIR));
  }

  removeVolume(dir: string): Promise<void> {
    return this.fs.removeTree(dir);
  }

  /** Moves the whole volume directory under .archive/, out of tether's sight; returns where it went. */
  async archiveVolume(dir: string, now: Date): Promise<string> {
    await this.fs.mkdir(ARCHIVE_DIR);
    const to = posix.join(ARCHIVE_DIR, `${dir}-${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}`);
    await this.fs.rename(dir, to);
    return to;
  }

  dataPath(dir: string): string {
    return posix.join(dir, DATA_DIR);
  }

  // ---- snapshots ----

  snapshotPath(dir: string): string {
    return posix.join(SNAPSHOTS_DIR, dir);
  }

  async readSnapshot(dir: string): Promise<SnapshotRecord | undefined> {
    const path = posix.join(SNAPSHOTS_DIR, dir, SNAPSHOT_RECORD);
    const bytes = await this.fs.readFile(path);
    return bytes && parseRecord(snapshotRecord, bytes, this.where(path));
  }

  /** Copies the volume's data on the server, then writes the record: a snapshot is visible only when complete. */
  async createSnapshot(dir: string, sourceVolumeDir: string, record: SnapshotRecord): Promise<void> {
    await this.fs.mkdir(SNAPSHOTS_DIR);
    await this.fs.mkdir(posix.join(SNAPSHOTS_DIR, dir));
    await this.fs.copyTree(posix.join(sourceVolumeDir, DATA_DIR), posix.join(SNAPSHOTS_DIR, dir, DATA_DIR));
    await this.fs.writeFileAtomic(posix.join(SNAPSHOTS_DIR, dir, SNAPSHOT_RECORD), encodeRecord(record));
  }

  async snapshotDirs(): Promise<string[]> {
    const entries = await this.fs.list(SNAPSHOTS_DIR);
    return entries.filter((e) => e.isDirectory && !e.name.startsWith('.')).map((e) => e.name).sort();
  }

  removeSnapshot(dir: string): Promise<void> {
    return this.fs.removeTree(posix.join(SNAPSHOTS_DIR, dir));
  }

  // ---- volume group snapshots ----

  async readGroup(dir: string): Promise<GroupRecord | undefined> {
    const path = posix.join(GROUPS_DIR, dir, GROUP_RECORD);
    const bytes = await this.fs.readFile(path);
    return bytes && parseRecord(groupRecord, bytes, this.where(path));
  }

  /** Written after all member snapshots exist: the group is visible only when complete. */
  async writeGroup(dir: string, record: GroupRecord): Promise<void> {
    await this.fs.mkdir(GROUPS_DIR);
    await this.fs.mkdir(posix.join(GROUPS_DIR, dir));
    await this.fs.writeFileAtomic(posix.join(GROUPS_DIR, dir, GROUP_RECORD), encodeRecord(record));
  }

  removeGroup(dir: string): Promise<void> {
    return this.fs.removeTree(posix.join(GROUPS_DIR, dir));
  }

  // ---- nodes ----

  /** Records that a node exists, so ControllerPublish can tell a real node from a mistyped one. */
  async registerNode(nodeId: string, maxVolumes: number, now: Date): Promise<void> {
    await this.fs.mkdir(NODES_DIR);
    const record: NodeRecord = { kind: 'tether.node/v1', nodeId, maxVolumes, seenAt: now.toISOString() };
    await this.fs.writeFileAtomic(posix.join(NODES_DIR, nodeFile(nodeId)), encodeRecord(record));
  }

  /** The node's record, or undefined if no node of that ID has registered here. */
  async readNode(nodeId: string): Promise<NodeRecord | undefined> {
    const path = posix.join(NODES_DIR, nodeFile(nodeId));
    const bytes = await this.fs.readFile(path);
    const record = bytes && parseRecord(nodeRecord, bytes, this.where(path));
    return record && record.nodeId === nodeId ? record : undefined;
  }
}

/** A file name for any node ID: plain IDs as they are, others encoded. */
function nodeFile(nodeId: string): string {
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$/.test(nodeId) ? `${nodeId}.json` : `~${Buffer.from(nodeId).toString('base64url')}.json`;
}
