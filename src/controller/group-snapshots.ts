import type { Rpc } from '../grpc/pipeline.js';
import { alreadyExists, invalid, notFound } from '../grpc/errors.js';
import { requireField } from '../grpc/validate.js';
import type { Backends } from '../backends/registry.js';
import { dirForName, groupSnapshotId, parseGroupSnapshotId, parseVolumeId, snapshotId } from '../volumes/ids.js';
import { checkSnapshotParameters } from '../volumes/params.js';
import type { GroupRecord, SnapshotRecord } from '../volumes/records.js';
import type { VolumeStore } from '../volumes/store.js';
import { snapshotInfo, timestamp } from './snapshots.js';

/**
 * The GroupController service: a volume group snapshot is one snapshot per source volume (all on one
 * backend), each an ordinary snapshot that names its group, plus a group record written last. The
 * members are copied one after another, not at one instant: quiesce the application first when the
 * volumes must agree with each other.
 */
export function groupControllerRpcs(backends: Backends, now = () => new Date()): Record<string, Rpc> {
  const read = async (id: string) => {
    const ref = parseGroupSnapshotId(id);
    const store = ref && backends.get(ref.backend);
    const record = ref && store ? await store.readGroup(ref.dir) : undefined;
    return record && { ref: ref!, store: store!, record };
  };

  const info = async (id: string, store: VolumeStore, record: GroupRecord) => {
    const members = await Promise.all(
      record.snapshotIds.map(async (sid) => {
        const member = await store.readSnapshot(sid.split('/').at(-1)!);
        if (!member) throw notFound(`snapshot ${sid} of group snapshot ${id} is missing on the backend`);
        return snapshotInfo(sid, member);
      }),
    );
    return { group_snapshot_id: id, snapshots: members, creation_time: timestamp(record.createdAt), ready_to_use: true };
  };

  /** The snapshot IDs a CO sends with Get/Delete must be the group's, if it sends any. */
  const checkMembers = (record: GroupRecord, ids: string[] | undefined) => {
    if (ids?.length && [...ids].sort().join('\n') !== [...record.snapshotIds].sort().join('\n')) {
      throw invalid(`snapshot_ids do not match the group's snapshots (${record.snapshotIds.join(', ')})`);
    }
  };

  const groupRef = (req: { name: string; source_volume_ids: string[] }) => {
    const backend = parseVolumeId(req.source_volume_ids[0] ?? '')?.backend;
    return backend ? { backend, dir: dirForName(req.name) } : undefined;
  };

  return {
    GroupControllerGetCapabilities: {
      quiet: true,
      handle: async () => ({ capabilities: [{ rpc: { type: 'CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT' } }] }),
    },

    CreateVolumeGroupSnapshot: {
      validate(req: { name: string; source_volume_ids: string[]; parameters?: Record<string, string> }) {
        if (!req.name) throw invalid('name is required');
        if (!req.source_volume_ids?.length) throw invalid('source_volume_ids must list at least one volume');
        if (new Set(req.source_volume_ids).size !== req.source_volume_ids.length) throw invalid('source_volume_ids lists a volume twice');
        checkSnapshotParameters(req.parameters);
      },
      lockKey: (req) => {
        const ref = groupRef(req);
        return ref ? groupSnapshotId(ref) : `group snapshot name ${req.name}`;
      },
      async handle(req: { name: string; source_volume_ids: string[] }) {
        const refs = req.source_volume_ids.map((id) => ({ id, ref: parseVolumeId(id) }));
        const missing = refs.find((r) => !r.ref || !backends.get(r.ref.backend));
        if (missing) throw notFound(`source volume ${missing.id} does not exist`);
        const backend = refs[0]!.ref!.backend;
        if (refs.some((r) => r.ref!.backend !== backend)) throw invalid('all volumes of a group snapshot must be on one backend');
        const store = backends.get(backend)!;
        const ref = { backend, dir: dirForName(req.name) };
        const id = groupSnapshotId(ref);
        const existing = await store.readGroup(ref.dir);
        if (existing) {
          if (existing.name !== req.name || [...existing.sourceVolumeIds].sort().join() !== [...req.source_volume_ids].sort().join()) {
            throw alreadyExists(`group snapshot "${req.name}" already exists for volumes ${existing.sourceVolumeIds.join(', ')}`);
          }
          return { group_snapshot: await info(id, store, existing) };
        }
        const createdAt = now().toISOString();
        const snapshotIds: string[] = [];
        for (const { id: volumeId, ref: vref } of refs) {
          const volume = await store.readVolume(vref!.dir);
          if (!volume || volume.retainedAt) throw notFound(`source volume ${volumeId} does not exist`);
          const dir = dirForName(`${req.name}/${volumeId}`);
          const member: SnapshotRecord = {
            kind: 'tether.snapshot/v1',
            name: `${req.name}/${volumeId}`,
            sourceVolumeId: volumeId,
            sizeBytes: volume.capacityBytes,
            createdAt,
            groupSnapshotId: id,
          };
          if (!(await store.readSnapshot(dir))) await store.createSnapshot(dir, vref!.dir, member);
          snapshotIds.push(snapshotId({ backend, dir }));
        }
        const record: GroupRecord = { kind: 'tether.group-snapshot/v1', name: req.name, sourceVolumeIds: req.source_volume_ids, snapshotIds, createdAt };
        await store.writeGroup(ref.dir, record);
        return { group_snapshot: await info(id, store, record) };
      },
    },

    DeleteVolumeGroupSnapshot: {
      validate: (req: { group_snapshot_id: string }) => requireField(req.group_snapshot_id, 'group_snapshot_id'),
      lockKey: (req) => req.group_snapshot_id,
      async handle(req: { group_snapshot_id: string; snapshot_ids: string[] }) {
        const found = await read(req.group_snapshot_id);
        if (!found) return {}; // already gone
        checkMembers(found.record, req.snapshot_ids);
        for (const sid of found.record.snapshotIds) await found.store.removeSnapshot(sid.split('/').at(-1)!);
        await found.store.removeGroup(found.ref.dir);
        return {};
      },
    },

    GetVolumeGroupSnapshot: {
      validate: (req: { group_snapshot_id: string }) => requireField(req.group_snapshot_id, 'group_snapshot_id'),
      async handle(req: { group_snapshot_id: string; snapshot_ids: string[] }) {
        const found = await read(req.group_snapshot_id);
        if (!found) throw notFound(`group snapshot ${req.group_snapshot_id} does not exist`);
        checkMembers(found.record, req.snapshot_ids);
        return { group_snapshot: await info(req.group_snapshot_id, found.store, found.record) };
      },
    },
  };
}
