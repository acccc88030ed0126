import { alreadyExists, invalid, notFound } from '../csi/errors.js';
import type { GroupControllerRpcs, RequestOfRpc } from '../grpc/rpc.js';
import { requireFields } from '../grpc/validate.js';
import { dirForName, groupSnapshotId, parseVolumeId, snapshotId, type VolumeRef } from '../volumes/ids.js';
import { checkSnapshotParameters } from '../volumes/params.js';
import type { GroupRecord, SnapshotRecord } from '../volumes/records.js';
import type { VolumeStore } from '../volumes/store.js';
import { snapshotInfo, timestamp } from './messages.js';
import type { ControllerDeps } from './deps.js';

/**
 * The GroupController service: a volume group snapshot is one snapshot per source volume (all on one
 * backend), each an ordinary snapshot that names its group, plus a group record written last. The
 * members are copied one after another, not at one instant: quiesce the application first when the
 * volumes must agree with each other.
 */
export function groupControllerService(deps: ControllerDeps): GroupControllerRpcs {
  return {
    GroupControllerGetCapabilities: {
      quiet: true,
      handle: async () => ({ capabilities: [{ rpc: { type: 'CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT' } }] }),
    },
    CreateVolumeGroupSnapshot: createGroupSnapshot(deps),
    DeleteVolumeGroupSnapshot: deleteGroupSnapshot(deps),
    GetVolumeGroupSnapshot: getGroupSnapshot(deps),
  };
}

type CreateGroupRequest = RequestOfRpc<GroupControllerRpcs['CreateVolumeGroupSnapshot']>;

/** The group's place: the first source volume's backend, a directory for its name. */
const groupRef = (req: CreateGroupRequest): VolumeRef | undefined => {
  const backend = parseVolumeId(req.source_volume_ids[0] ?? '')?.backend;
  return backend ? { backend, dir: dirForName(req.name) } : undefined;
};

function createGroupSnapshot({ backends, now }: ControllerDeps): GroupControllerRpcs['CreateVolumeGroupSnapshot'] {
  /** The sources' backend, or NOT_FOUND for a volume tether cannot have made, INVALID_ARGUMENT for mixed backends. */
  const storeOf = (req: CreateGroupRequest): VolumeStore => {
    const refs = req.source_volume_ids.map((id) => ({ id, ref: parseVolumeId(id) }));
    const missing = refs.find((r) => !r.ref || !backends.get(r.ref.backend));
    if (missing) throw notFound(`source volume ${missing.id} does not exist`);
    const backend = refs[0]!.ref!.backend;
    if (refs.some((r) => r.ref!.backend !== backend)) throw invalid('all volumes of a group snapshot must be on one backend');
    return backends.get(backend)!;
  };

  /** Snapshots every source volume (skipping members an earlier try made); returns their IDs. */
  const snapshotMembers = async (req: CreateGroupRequest, store: VolumeStore, groupId: string, createdAt: string, signal: AbortSignal): Promise<string[]> => {
    const snapshotIds: string[] = [];
    for (const volumeId of req.source_volume_ids) {
      const { ref, record: volume } = await backends.resolveVolume(volumeId, 'source volume', signal);
      const name = `${req.name}/${volumeId}`;
      const dir = dirForName(name);
      const member: SnapshotRecord = { kind: 'tether.snapshot/v1', name, sourceVolumeId: volumeId, sizeBytes: volume.capacityBytes, createdAt, groupSnapshotId: groupId };
      if (!(await store.readSnapshot(dir, signal))) await store.createSnapshot(dir, ref.dir, member, signal);
      snapshotIds.push(snapshotId({ backend: store.backend.name, dir }));
    }
    return snapshotIds;
  };

  return {
    validate(req) {
      if (!req.name) throw invalid('name is required');
      if (!req.source_volume_ids?.length) throw invalid('source_volume_ids must list at least one volume');
      if (new Set(req.source_volume_ids).size !== req.source_volume_ids.length) throw invalid('source_volume_ids lists a volume twice');
      checkSnapshotParameters(req.parameters);
    },
    lockKey: (req) => {
      const ref = groupRef(req);
      return ref ? groupSnapshotId(ref) : `group snapshot name ${req.name}`;
    },
    async handle(req, { signal }) {
      const store = storeOf(req);
      const ref = { backend: store.backend.name, dir: dirForName(req.name) };
      const id = groupSnapshotId(ref);
      const existing = await store.readGroup(ref.dir, signal);
      if (existing) {
        if (existing.name !== req.name || [...existing.sourceVolumeIds].sort().join() !== [...req.source_volume_ids].sort().join()) {
          throw alreadyExists(`group snapshot "${req.name}" already exists for volumes ${existing.sourceVolumeIds.join(', ')}`);
        }
        return { group_snapshot: await groupInfo(id, store, existing, signal) };
      }
      const createdAt = now().toISOString();
      const snapshotIds = await snapshotMembers(req, store, id, createdAt, signal);
      const record: GroupRecord = { kind: 'tether.group-snapshot/v1', name: req.name, sourceVolumeIds: req.source_volume_ids, snapshotIds, createdAt };
      await store.writeGroup(ref.dir, record, signal);
      return { group_snapshot: await groupInfo(id, store, record, signal) };
    },
  };
}

function deleteGroupSnapshot({ backends }: ControllerDeps): GroupControllerRpcs['DeleteVolumeGroupSnapshot'] {
  return {
    validate: (req) => requireFields(req, 'group_snapshot_id'),
    lockKey: (req) => req.group_snapshot_id,
    async handle(req, { signal }) {
      const found = await backends.findGroup(req.group_snapshot_id, signal);
      if (!found) return {}; // already gone
      checkMembers(found.record, req.snapshot_ids);
      for (const sid of found.record.snapshotIds) await found.store.removeSnapshot(sid.split('/').at(-1)!, signal);
      await found.store.removeGroup(found.ref.dir, signal);
      return {};
    },
  };
}

function getGroupSnapshot({ backends }: ControllerDeps): GroupControllerRpcs['GetVolumeGroupSnapshot'] {
  return {
    validate: (req) => requireFields(req, 'group_snapshot_id'),
    async handle(req, { signal }) {
      const { store, record } = await backends.resolveGroup(req.group_snapshot_id, signal);
      checkMembers(record, req.snapshot_ids);
      return { group_snapshot: await groupInfo(req.group_snapshot_id, store, record, signal) };
    },
  };
}

/** A VolumeGroupSnapshot message: the group and each member snapshot, read from its record. */
async function groupInfo(id: string, store: VolumeStore, record: GroupRecord, signal: AbortSignal) {
  const members = await Promise.all(
    record.snapshotIds.map(async (sid) => {
      const member = await store.readSnapshot(sid.split('/').at(-1)!, signal);
      if (!member) throw notFound(`snapshot ${sid} of group snapshot ${id} is missing on the backend`);
      return snapshotInfo(sid, member);
    }),
  );
  return { group_snapshot_id: id, snapshots: members, creation_time: timestamp(record.createdAt), ready_to_use: true };
}

/** The snapshot IDs a CO sends with Get/Delete must be the group's, if it sends any. */
function checkMembers(record: GroupRecord, ids: string[] | undefined): void {
  if (ids?.length && [...ids].sort().join('\n') !== [...record.snapshotIds].sort().join('\n')) {
    throw invalid(`snapshot_ids do not match the group's snapshots (${record.snapshotIds.join(', ')})`);
  }
}
