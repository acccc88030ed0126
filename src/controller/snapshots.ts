import type { Rpc } from '../grpc/pipeline.js';
import { alreadyExists, invalid, notFound, precondition } from '../grpc/errors.js';
import type { Backends } from '../backends/registry.js';
import { dirForName, parseSnapshotId, parseVolumeId, snapshotId } from '../volumes/ids.js';
import { checkSnapshotParameters } from '../volumes/params.js';
import type { SnapshotRecord } from '../volumes/records.js';
import { pageAfter } from './pages.js';
import { checkMaxEntries, requireField } from '../grpc/validate.js';

/**
 * Snapshots: a server-side copy of a volume's data/ under .snapshots/<dir>/, its record written
 * last, so a snapshot is listed only once it is complete (and is then ready to use).
 */
export function snapshotRpcs(backends: Backends, now: () => Date): Record<string, Rpc> {

  const read = async (id: string) => {
    const ref = parseSnapshotId(id);
    const store = ref && backends.get(ref.backend);
    const record = ref && store ? await store.readSnapshot(ref.dir) : undefined;
    return record && { record, ref: ref!, store: store! };
  };

  const allIds = async () =>
    (await Promise.all(backends.all().map(async (s) => (await s.snapshotDirs()).map((dir) => snapshotId({ backend: s.backend.name, dir }))))).flat();

  /** The snapshot ID a CreateSnapshot request leads to (on the source volume's backend). */
  const idFor = (req: { name: string; source_volume_id: string }) => {
    const source = parseVolumeId(req.source_volume_id);
    return source ? snapshotId({ backend: source.backend, dir: dirForName(req.name) }) : undefined;
  };

  return {
    CreateSnapshot: {
      validate(req: { name: string; source_volume_id: string; parameters?: Record<string, string> }) {
        requireField(req.source_volume_id, 'source_volume_id');
        if (!req.name) throw invalid('name is required');
        checkSnapshotParameters(req.parameters);
      },
      lockKey: (req) => idFor(req) ?? `snapshot name ${req.name}`,
      async handle(req: { name: string; source_volume_id: string }) {
        const source = parseVolumeId(req.source_volume_id);
        const store = source && backends.get(source.backend);
        const volume = source && store ? await store.readVolume(source.dir) : undefined;
        const id = idFor(req);
        const existing = id ? await read(id) : undefined;
        if (existing) {
          if (existing.record.name !== req.name || existing.record.sourceVolumeId !== req.source_volume_id) {
            throw alreadyExists(`snapshot "${req.name}" already exists for volume ${existing.record.sourceVolumeId}`);
          }
          return { snapshot: snapshotInfo(id!, existing.record) };
        }
        if (!source || !store || !volume || volume.retainedAt) throw notFound(`source volume ${req.source_volume_id} does not exist`);
        const dir = dirForName(req.name);
        const record: SnapshotRecord = {
          kind: 'tether.snapshot/v1',
          name: req.name,
          sourceVolumeId: req.source_volume_id,
          sizeBytes: volume.capacityBytes,
          createdAt: now().toISOString(),
        };
        await store.createSnapshot(dir, source.dir, record);
        return { snapshot: snapshotInfo(id!, record) };
      },
    },

    DeleteSnapshot: {
      validate: (req: { snapshot_id: string }) => requireField(req.snapshot_id, 'snapshot_id'),
      lockKey: (req) => req.snapshot_id,
      async handle(req: { snapshot_id: string }) {
        const found = await read(req.snapshot_id);
        if (found?.record.groupSnapshotId) {
          throw precondition(`snapshot ${req.snapshot_id} belongs to group snapshot ${found.record.groupSnapshotId}; delete the group instead`);
        }
        const ref = parseSnapshotId(req.snapshot_id);
        const store = ref && backends.get(ref.backend);
        if (ref && store) await store.removeSnapshot(ref.dir);
        return {};
      },
    },

    GetSnapshot: {
      validate: (req: { snapshot_id: string }) => requireField(req.snapshot_id, 'snapshot_id'),
      async handle(req: { snapshot_id: string }) {
        const found = await read(req.snapshot_id);
        if (!found) throw notFound(`snapshot ${req.snapshot_id} does not exist`);
        return { snapshot: snapshotInfo(req.snapshot_id, found.record) };
      },
    },

    ListSnapshots: {
      validate: (req: { max_entries: number }) => checkMaxEntries(req.max_entries),
      async handle(req: { max_entries: number; starting_token: string; snapshot_id: string; source_volume_id: string }) {
        const ids = req.snapshot_id ? (parseSnapshotId(req.snapshot_id) ? [req.snapshot_id] : []) : await allIds();
        const { entries, nextToken } = await pageAfter(ids, req.starting_token, req.max_entries, parseSnapshotId, async (id) => {
          const found = await read(id).catch(() => undefined);
          if (!found || (req.source_volume_id && found.record.sourceVolumeId !== req.source_volume_id)) return undefined;
          return { snapshot: snapshotInfo(id, found.record) };
        });
        return { entries, next_token: nextToken };
      },
    },
  };
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

export function timestamp(iso: string) {
  const ms = Date.parse(iso);
  return { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 };
}
