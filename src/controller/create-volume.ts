import { aborted, alreadyExists, invalid } from '../csi/errors.js';
import type { ControllerRpcs, RequestOfRpc } from '../grpc/rpc.js';
import { requireCapability } from '../volumes/access.js';
import { chooseCapacity, fitsRange } from '../volumes/capacity.js';
import { dirForName, dirForTemplate, volumeId } from '../volumes/ids.js';
import { parseVolumeParameters } from '../volumes/params.js';
import { SHARING_PARAMETER } from '../volumes/sharing.js';
import type { NewVolumeRecord, VolumeRecord } from '../volumes/records.js';
import type { Backends } from '../volumes/registry.js';
import type { CopySource, VolumeStore } from '../volumes/store.js';
import { checkMountFlags } from './capabilities.js';
import { volumeInfo } from './messages.js';
import type { ControllerDeps } from './deps.js';

type CreateRequest = RequestOfRpc<ControllerRpcs['CreateVolume']>;

/** Where a new volume's data comes from: a snapshot or another volume on the same backend. */
interface Source extends CopySource {
  type: 'snapshot' | 'volume';
  id: string;
  size: number;
}

/** The backend, parameters and directory a request leads to (no I/O). */
function targetOf(backends: Backends, req: CreateRequest) {
  const params = parseVolumeParameters(req.parameters, req.mutable_parameters);
  const store = backends.choose(params.backend);
  const dir = params.directory ? dirForTemplate(params.directory, req.name) : dirForName(req.name);
  return { params, store, ref: { backend: store.backend.name, dir } };
}

/** The content source of a new volume: where its data comes from and how big it is. */
async function resolveSource(backends: Backends, req: CreateRequest, store: VolumeStore, signal: AbortSignal): Promise<Source | undefined> {
  const snapshotId = req.volume_content_source?.snapshot?.snapshot_id;
  const sourceVolumeId = req.volume_content_source?.volume?.volume_id;
  if (snapshotId !== undefined) {
    const { ref, record } = await backends.resolveSnapshot(snapshotId, signal);
    if (ref.backend !== store.backend.name) throw invalid(`snapshot ${snapshotId} is on backend ${ref.backend}; restore it to a volume on that backend`);
    const stands = async (s?: AbortSignal) => (await backends.findSnapshot(snapshotId, s)) !== undefined;
    return { type: 'snapshot', id: snapshotId, what: `snapshot ${snapshotId}`, size: record.sizeBytes, dataPath: store.dataPath(store.snapshotPath(ref.dir)), stands };
  }
  if (sourceVolumeId !== undefined) {
    const { ref, record } = await backends.resolveVolume(sourceVolumeId, 'source volume', signal);
    if (ref.backend !== store.backend.name) throw invalid(`volume ${sourceVolumeId} is on backend ${ref.backend}; clone it to a volume on that backend`);
    const stands = async (s?: AbortSignal) => (await backends.findVolume(sourceVolumeId, s)) !== undefined;
    return { type: 'volume', id: sourceVolumeId, what: `volume ${sourceVolumeId}`, size: record.capacityBytes, dataPath: store.dataPath(ref.dir), stands };
  }
  return undefined;
}

/**
 * CreateVolume: a directory on the chosen backend with data/ (empty, or a server-side copy of the
 * source, made under a record marked as being created) and its record, written last. A repeat with the same arguments answers the same volume;
 * a repeat that asks for something else is ALREADY_EXISTS, saying what differs.
 */
export function createVolume({ backends, now }: ControllerDeps): ControllerRpcs['CreateVolume'] {
  return {
    validate(req) {
      if (!req.name) throw invalid('name is required');
      if (!req.volume_capabilities?.length) throw invalid('volume_capabilities must list at least one capability');
      req.volume_capabilities.forEach((c, i) => requireCapability(c, `volume_capabilities[${i}]`));
      chooseCapacity(req.capacity_range);
      targetOf(backends, req);
    },
    lockKey: (req) => volumeId(targetOf(backends, req).ref),
    async handle(req, { signal }) {
      const { params, store, ref } = targetOf(backends, req);
      checkMountFlags(store, req.volume_capabilities);
      const source = await resolveSource(backends, req, store, signal);
      const record: NewVolumeRecord = {
        kind: 'tether.volume/v1',
        name: req.name,
        capacityBytes: chooseCapacity(req.capacity_range, source?.size ?? 0),
        parameters: req.parameters ?? {},
        onDelete: params.onDelete,
        contentSource: source ? { type: source.type, id: source.id } : null,
        createdAt: now().toISOString(),
        publications: [],
        claims: [],
        leases: [],
        takeovers: [],
      };
      // Another controller may make the same volume at the same time: the record that stands is checked like any existing one.
      const read = { record: await store.readVolume(ref.dir, signal) };
      let standing = read.record ?? (source ? await store.beginVolume(ref.dir, record, now(), signal) : await store.createEmptyVolume(ref.dir, record, signal, read));
      refuseUnlessAnswers(standing, req, store.where(ref.dir), source?.id);
      // Begun here or by an earlier try that stopped halfway (deadline, crash): finish it.
      if (standing.creatingAt) standing = (await store.finishVolume(ref.dir, source, signal)) ?? standing;
      refuseUnlessAnswers(standing, req, store.where(ref.dir), source?.id);
      return { volume: volumeInfo(volumeId(ref), standing) };
    },
  };
}

/** Throws unless the volume that stands in the directory answers the request (see createConflict), or is being deleted. */
function refuseUnlessAnswers(standing: VolumeRecord, req: CreateRequest, where: string, sourceId: string | undefined): void {
  if (standing.retainedAt) throw alreadyExists(`a volume named "${req.name}" was deleted with onDelete=retain and its data is still at ${where}; remove or rename that directory to reuse the name`);
  if (standing.deletingAt) throw aborted(`a volume named "${req.name}" is being deleted; retry when DeleteVolume has finished`);
  const conflict = createConflict(standing, req, where, sourceId);
  if (conflict) throw alreadyExists(`volume "${req.name}" cannot be created as asked: ${conflict}`);
}

/**
 * Why an existing volume does not answer a repeated CreateVolume, or undefined if it does: another
 * name in its directory, a size outside the range, another backend, another content source.
 * onDelete may differ: it is mutable.
 */
function createConflict(existing: VolumeRecord, req: Pick<CreateRequest, 'name' | 'capacity_range' | 'parameters'>, dir: string, sourceId: string | undefined): string | undefined {
  if (existing.name !== req.name) return `its directory ${dir} belongs to volume "${existing.name}"`;
  if (!fitsRange(existing.capacityBytes, req.capacity_range)) return `it exists with ${existing.capacityBytes} bytes, outside the requested capacity range`;
  for (const key of ['backend', SHARING_PARAMETER]) if ((existing.parameters[key] ?? '') !== (req.parameters?.[key] ?? '')) return `it exists with another ${key} parameter`;
  if ((existing.contentSource?.id ?? '') !== (sourceId ?? '')) return 'it exists with another content source';
  return undefined;
}
