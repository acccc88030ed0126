import { alreadyExists, invalid, notFound, precondition } from '../csi/errors.js';
import type { ControllerRpcs, RequestOfRpc } from '../grpc/rpc.js';
import { checkMaxEntries, requireFields } from '../grpc/validate.js';
import { dirForName, parseSnapshotId, parseVolumeId, snapshotId } from '../volumes/ids.js';
import { checkSnapshotParameters } from '../volumes/params.js';
import type { SnapshotRecord } from '../volumes/records.js';
import { snapshotInfo } from './messages.js';
import { pageAfter } from './pages.js';
import type { ControllerDeps } from './deps.js';

/**
 * Snapshots: a server-side copy of a volume's data/ under .snapshots/<dir>/, its record written
 * last, so a snapshot is listed only once it is complete (and is then ready to use).
 */

/** The snapshot ID a CreateSnapshot request leads to (on the source volume's backend). */
const snapshotIdFor = (req: RequestOfRpc<ControllerRpcs['CreateSnapshot']>) => {
  const source = parseVolumeId(req.source_volume_id);
  return source ? snapshotId({ backend: source.backend, dir: dirForName(req.name) }) : undefined;
};

export function createSnapshot({ backends, now }: ControllerDeps): ControllerRpcs['CreateSnapshot'] {
  return {
    validate(req) {
      requireFields(req, 'source_volume_id');
      if (!req.name) throw invalid('name is required');
      checkSnapshotParameters(req.parameters);
    },
    lockKey: (req) => snapshotIdFor(req) ?? `snapshot name ${req.name}`,
    async handle(req, { signal }) {
      const volume = await backends.findVolume(req.source_volume_id, signal);
      const id = snapshotIdFor(req);
      const existing = id ? await backends.findSnapshot(id, signal) : undefined;
      if (id && existing) {
        if (existing.record.name !== req.name || existing.record.sourceVolumeId !== req.source_volume_id) {
          throw alreadyExists(`snapshot "${req.name}" already exists for volume ${existing.record.sourceVolumeId}`);
        }
        return { snapshot: snapshotInfo(id, existing.record) };
      }
      if (!id || !volume) throw notFound(`source volume ${req.source_volume_id} does not exist`);
      const record: SnapshotRecord = {
        kind: 'tether.snapshot/v1',
        name: req.name,
        sourceVolumeId: req.source_volume_id,
        sizeBytes: volume.record.capacityBytes,
        createdAt: now().toISOString(),
      };
      await volume.store.createSnapshot(dirForName(req.name), volume.ref.dir, record, signal);
      return { snapshot: snapshotInfo(id, record) };
    },
  };
}

export function deleteSnapshot({ backends }: ControllerDeps): ControllerRpcs['DeleteSnapshot'] {
  return {
    validate: (req) => requireFields(req, 'snapshot_id'),
    lockKey: (req) => req.snapshot_id,
    async handle(req, { signal }) {
      const found = await backends.findSnapshot(req.snapshot_id, signal);
      if (found?.record.groupSnapshotId) {
        throw precondition(`snapshot ${req.snapshot_id} belongs to group snapshot ${found.record.groupSnapshotId}; delete the group instead`);
      }
      // No record is no snapshot, but a half-made copy may be there: remove whatever the ID names.
      const ref = parseSnapshotId(req.snapshot_id);
      const store = ref && backends.get(ref.backend);
      if (ref && store) await store.removeSnapshot(ref.dir, signal);
      return {};
    },
  };
}

export function getSnapshot({ backends }: ControllerDeps): ControllerRpcs['GetSnapshot'] {
  return {
    validate: (req) => requireFields(req, 'snapshot_id'),
    async handle(req, { signal }) {
      const { record } = await backends.resolveSnapshot(req.snapshot_id, signal);
      return { snapshot: snapshotInfo(req.snapshot_id, record) };
    },
  };
}

/** ListSnapshots: all, one by ID, or those of a source volume; a page at a time like ListVolumes. */
export function listSnapshots({ backends }: ControllerDeps): ControllerRpcs['ListSnapshots'] {
  const allIds = async (signal: AbortSignal) =>
    (await Promise.all(backends.all().map(async (s) => (await s.snapshotDirs(signal)).map((dir) => snapshotId({ backend: s.backend.name, dir }))))).flat();
  return {
    validate: (req) => checkMaxEntries(req.max_entries),
    async handle(req, { signal, log }) {
      const ids = req.snapshot_id ? (parseSnapshotId(req.snapshot_id) ? [req.snapshot_id] : []) : await allIds(signal);
      const { entries, nextToken } = await pageAfter(ids, req.starting_token, req.max_entries, parseSnapshotId, async (id) => {
        const found = await backends.findSnapshot(id, signal).catch((err: unknown) => void log.warn({ snapshot: id, err: (err as Error).message }, 'snapshot left out of the list: its record cannot be read'));
        if (!found || (req.source_volume_id && found.record.sourceVolumeId !== req.source_volume_id)) return undefined;
        return { snapshot: snapshotInfo(id, found.record) };
      });
      return { entries, next_token: nextToken };
    },
  };
}
