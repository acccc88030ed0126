import type { SnapshotRecord, VolumeRecord } from '../volumes/records.js';
import type { VolumeStore } from '../volumes/store.js';

/** A Volume message for a record. */
export function volumeInfo(id: string, record: VolumeRecord) {
  return {
    volume_id: id,
    capacity_bytes: String(record.capacityBytes),
    volume_context: {},
    content_source: record.contentSource
      ? record.contentSource.type === 'snapshot'
        ? { snapshot: { snapshot_id: record.contentSource.id } }
        : { volume: { volume_id: record.contentSource.id } }
      : null,
  };
}

/** A volume's status for ListVolumes and ControllerGetVolume: where it is published, and whether its data is there. */
export function volumeStatus(store: VolumeStore, dir: string, record: VolumeRecord, hasData: boolean) {
  const condition = hasData
    ? { abnormal: false, message: 'volume directory and data are present' }
    : { abnormal: true, message: `the data directory ${store.where(store.dataPath(dir))} is missing` };
  return { published_node_ids: record.publications.map((p) => p.nodeId), volume_condition: condition };
}

/** A Snapshot message for a record. */
export function snapshotInfo(id: string, record: SnapshotRecord) {
  return {
    snapshot_id: id,
    source_volume_id: record.sourceVolumeId,
    size_bytes: String(record.sizeBytes),
    creation_time: timestamp(record.createdAt),
    ready_to_use: true,
    group_snapshot_id: record.groupSnapshotId ?? '',
  };
}

/** A google.protobuf.Timestamp for an ISO time. */
export function timestamp(iso: string) {
  const ms = Date.parse(iso);
  return { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 };
}
