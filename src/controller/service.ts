import type { Rpc } from '../grpc/pipeline.js';
import { checkMaxEntries, requireField } from '../grpc/validate.js';
import { alreadyExists, invalid, notFound, outOfRange, precondition, resourceExhausted } from '../grpc/errors.js';
import type { Backends } from '../backends/registry.js';
import { checkCapability, decidePublish, requireCapability, type VolumeCapability } from '../volumes/access.js';
import { chooseCapacity, fitsRange, toBytes, type CapacityRange } from '../volumes/capacity.js';
import { dirForName, dirForTemplate, parseSnapshotId, parseVolumeId, volumeId, type VolumeRef } from '../volumes/ids.js';
import { parseMutableParameters, parseVolumeParameters } from '../volumes/params.js';
import type { VolumeRecord } from '../volumes/records.js';
import type { VolumeStore } from '../volumes/store.js';
import { pageAfter } from './pages.js';
import { snapshotRpcs } from './snapshots.js';

type Params = Record<string, string>;
interface ContentSource {
  snapshot?: { snapshot_id?: string } | null;
  volume?: { volume_id?: string } | null;
}

const CAPABILITIES = [
  'CREATE_DELETE_VOLUME',
  'PUBLISH_UNPUBLISH_VOLUME',
  'LIST_VOLUMES',
  'GET_CAPACITY',
  'CREATE_DELETE_SNAPSHOT',
  'LIST_SNAPSHOTS',
  'CLONE_VOLUME',
  'PUBLISH_READONLY',
  'EXPAND_VOLUME',
  'LIST_VOLUMES_PUBLISHED_NODES',
  'VOLUME_CONDITION',
  'GET_VOLUME',
  'SINGLE_NODE_MULTI_WRITER',
  'MODIFY_VOLUME',
  'GET_SNAPSHOT',
];

export function controllerRpcs(backends: Backends, now = () => new Date()): Record<string, Rpc> {
  /** A node that has registered with any backend, or undefined. */
  const findNode = async (nodeId: string) => {
    const records = await Promise.all(backends.all().map((s) => s.readNode(nodeId).catch(() => undefined)));
    return records.find((r) => r !== undefined);
  };

  /** How many volumes, other than `except`, are published to `nodeId` (for the node's attach limit). */
  const publishedTo = async (nodeId: string, except: string) => {
    let count = 0;
    for (const store of backends.all()) {
      for (const dir of await store.volumeDirs()) {
        const id = volumeId({ backend: store.backend.name, dir });
        if (id === except) continue;
        const record = await store.readVolume(dir).catch(() => undefined);
        if (record?.publications.some((p) => p.nodeId === nodeId)) count++;
      }
    }
    return count;
  };

  /** The volume an ID names and its live record, or NOT_FOUND. */
  const lookup = async (id: string): Promise<{ ref: VolumeRef; store: VolumeStore; record: VolumeRecord }> => {
    const ref = parseVolumeId(id);
    const store = ref && backends.get(ref.backend);
    const record = ref && store ? await store.readVolume(ref.dir) : undefined;
    if (!ref || !store || !record || record.retainedAt) throw notFound(`volume ${id} does not exist`);
    return { ref, store, record };
  };

  const volumeInfo = (id: string, record: VolumeRecord) => ({
    volume_id: id,
    capacity_bytes: String(record.capacityBytes),
    volume_context: {},
    content_source: record.contentSource
      ? record.contentSource.type === 'snapshot'
        ? { snapshot: { snapshot_id: record.contentSource.id } }
        : { volume: { volume_id: record.contentSource.id } }
      : null,
  });

  const condition = async (store: VolumeStore, dir: string) =>
    (await store.dataExists(dir))
      ? { abnormal: false, message: 'volume directory and data are present' }
      : { abnormal: true, message: `the data directory ${store.where(store.dataPath(dir))} is missing` };

  const targetOf = (req: { name: string; parameters?: Params; mutable_parameters?: Params }) => {
    const params = parseVolumeParameters(req.parameters, req.mutable_parameters);
    const store = backends.choose(params.backend);
    return { params, store, ref: { backend: store.backend.name, dir: params.directory ? dirForTemplate(params.directory, req.name) : dirForName(req.name) } };
  };

  const checkMountFlags = (store: VolumeStore, caps: VolumeCapability[]) => {
    for (const cap of caps) store.backend.checkMountOptions(cap.mount?.mount_flags ?? []);
  };

  const rpcs: Record<string, Rpc> = {
    ControllerGetCapabilities: {
      quiet: true,
      handle: async () => ({ capabilities: CAPABILITIES.map((type) => ({ rpc: { type } })) }),
    },

    CreateVolume: {
      validate(req: { name: string; volume_capabilities: VolumeCapability[]; parameters?: Params; mutable_parameters?: Params; capacity_range?: CapacityRange }) {
        if (!req.name) throw invalid('name is required');
        if (!req.volume_capabilities?.length) throw invalid('volume_capabilities must list at least one capability');
        req.volume_capabilities.forEach((c, i) => requireCapability(c, `volume_capabilities[${i}]`));
        chooseCapacity(req.capacity_range);
        targetOf(req);
      },
      lockKey: (req) => volumeId(targetOf(req).ref),
      async handle(req: { name: string; volume_capabilities: VolumeCapability[]; parameters?: Params; mutable_parameters?: Params; capacity_range?: CapacityRange; volume_content_source?: ContentSource }) {
        const { params, store, ref } = targetOf(req);
        checkMountFlags(store, req.volume_capabilities);
        const id = volumeId(ref);
        const source = await resolveSource(req.volume_content_source, store);
        const existing = await store.readVolume(ref.dir);
        if (existing) {
          if (existing.retainedAt) throw alreadyExists(`a volume named "${req.name}" was deleted with onDelete=retain and its data is still at ${store.where(ref.dir)}; remove or rename that directory to reuse the name`);
          const conflict =
            existing.name !== req.name
              ? `its directory ${ref.dir} belongs to volume "${existing.name}"`
              : !fitsRange(existing.capacityBytes, req.capacity_range)
                ? `it exists with ${existing.capacityBytes} bytes, outside the requested capacity range`
                : (existing.parameters.backend ?? '') !== (req.parameters?.backend ?? '') // onDelete is mutable: no conflict
                  ? 'it exists with other parameters'
                  : (existing.contentSource?.id ?? '') !== (source?.id ?? '')
                    ? 'it exists with another content source'
                    : undefined;
          if (conflict) throw alreadyExists(`volume "${req.name}" cannot be created as asked: ${conflict}`);
          return { volume: volumeInfo(id, existing) };
        }
        const record: VolumeRecord = {
          kind: 'tether.volume/v1',
          name: req.name,
          capacityBytes: chooseCapacity(req.capacity_range, source?.size ?? 0),
          parameters: req.parameters ?? {},
          onDelete: params.onDelete,
          contentSource: source ? { type: source.type, id: source.id } : null,
          createdAt: now().toISOString(),
          publications: [],
        };
        await store.createVolume(ref.dir, record, source?.dataPath);
        return { volume: volumeInfo(id, record) };
      },
    },

    DeleteVolume: {
      validate: (req: { volume_id: string }) => requireField(req.volume_id, 'volume_id'),
      lockKey: (req) => req.volume_id,
      async handle(req: { volume_id: string }) {
        const ref = parseVolumeId(req.volume_id);
        const store = ref && backends.get(ref.backend);
        const record = ref && store ? await store.readVolume(ref.dir) : undefined;
        if (!ref || !store || !record || record.retainedAt) return {}; // already gone: deleting again is OK
        if (record.publications.length) {
          throw precondition(`volume in use: it is published to node ${record.publications.map((p) => p.nodeId).join(', ')}; unpublish it first`);
        }
        if (record.onDelete === 'archive') await store.archiveVolume(ref.dir, now());
        else if (record.onDelete === 'retain') await store.writeVolume(ref.dir, { ...record, retainedAt: now().toISOString() });
        else await store.removeVolume(ref.dir);
        return {};
      },
    },

    ControllerPublishVolume: {
      validate(req: { volume_id: string; node_id: string; volume_capability: VolumeCapability }) {
        requireField(req.volume_id, 'volume_id');
        requireField(req.node_id, 'node_id');
        requireCapability(req.volume_capability, 'volume_capability');
      },
      lockKey: (req) => req.volume_id,
      async handle(req: { volume_id: string; node_id: string; volume_capability: VolumeCapability; readonly: boolean }) {
        const { ref, store, record } = await lookup(req.volume_id);
        const node = await findNode(req.node_id);
        if (!node) throw notFound(`node ${req.node_id} is not known to tether: no tether node plugin with this ID has registered`);
        checkMountFlags(store, [req.volume_capability]);
        const publication = { nodeId: req.node_id, accessMode: requireCapability(req.volume_capability, 'volume_capability'), readonly: Boolean(req.readonly) };
        if (decidePublish(record.publications, publication) === 'add') {
          if (node.maxVolumes && (await publishedTo(req.node_id, req.volume_id)) >= node.maxVolumes) {
            throw resourceExhausted(`node ${req.node_id} already has ${node.maxVolumes} tether volumes published, its limit (maxVolumesPerNode)`);
          }
          await store.writeVolume(ref.dir, { ...record, publications: [...record.publications, publication] });
        }
        return { publish_context: {} };
      },
    },

    ControllerUnpublishVolume: {
      validate: (req: { volume_id: string }) => requireField(req.volume_id, 'volume_id'),
      lockKey: (req) => req.volume_id,
      async handle(req: { volume_id: string; node_id: string }) {
        const ref = parseVolumeId(req.volume_id);
        const store = ref && backends.get(ref.backend);
        const record = ref && store ? await store.readVolume(ref.dir) : undefined;
        if (!ref || !store || !record) return {}; // nothing is published anywhere
        const kept = record.publications.filter((p) => req.node_id && p.nodeId !== req.node_id);
        if (kept.length !== record.publications.length) await store.writeVolume(ref.dir, { ...record, publications: kept });
        return {};
      },
    },

    ValidateVolumeCapabilities: {
      validate(req: { volume_id: string; volume_capabilities: VolumeCapability[] }) {
        requireField(req.volume_id, 'volume_id');
        if (!req.volume_capabilities?.length) throw invalid('volume_capabilities must list at least one capability');
      },
      async handle(req: { volume_id: string; volume_capabilities: VolumeCapability[]; volume_context: Params; parameters: Params; mutable_parameters: Params }) {
        const { store, record } = await lookup(req.volume_id);
        for (const [i, cap] of req.volume_capabilities.entries()) {
          const result = checkCapability(cap, `volume_capabilities[${i}]`);
          if ('unsupported' in result) return { message: result.unsupported };
          try {
            checkMountFlags(store, [cap]);
          } catch (err) {
            return { message: (err as Error).message };
          }
        }
        if (Object.keys(req.parameters ?? {}).length) {
          const asked = parseVolumeParameters(req.parameters, undefined);
          if (asked.onDelete !== record.onDelete || (asked.backend ?? store.backend.name) !== store.backend.name) {
            return { message: 'the parameters differ from those the volume was created with' };
          }
        }
        return {
          confirmed: {
            volume_context: req.volume_context,
            volume_capabilities: req.volume_capabilities,
            parameters: req.parameters,
            mutable_parameters: req.mutable_parameters,
          },
        };
      },
    },

    ListVolumes: {
      validate: (req: { max_entries: number }) => checkMaxEntries(req.max_entries),
      async handle(req: { max_entries: number; starting_token: string }) {
        const ids = (await Promise.all(backends.all().map(async (s) => (await s.volumeDirs()).map((dir) => volumeId({ backend: s.backend.name, dir }))))).flat();
        const { entries, nextToken } = await pageAfter(ids, req.starting_token, req.max_entries, parseVolumeId, async (id) => {
          const ref = parseVolumeId(id)!;
          const store = backends.get(ref.backend)!;
          const record = await store.readVolume(ref.dir).catch(() => undefined);
          if (!record || record.retainedAt) return undefined;
          return {
            volume: volumeInfo(id, record),
            status: { published_node_ids: record.publications.map((p) => p.nodeId), volume_condition: await condition(store, ref.dir) },
          };
        });
        return { entries, next_token: nextToken };
      },
    },

    ControllerGetVolume: {
      validate: (req: { volume_id: string }) => requireField(req.volume_id, 'volume_id'),
      async handle(req: { volume_id: string }) {
        const { ref, store, record } = await lookup(req.volume_id);
        return {
          volume: volumeInfo(req.volume_id, record),
          status: { published_node_ids: record.publications.map((p) => p.nodeId), volume_condition: await condition(store, ref.dir) },
        };
      },
    },

    GetCapacity: {
      validate(req: { parameters?: Params }) {
        parseVolumeParameters(req.parameters, undefined);
      },
      async handle(req: { volume_capabilities: VolumeCapability[]; parameters?: Params }) {
        const store = backends.choose(parseVolumeParameters(req.parameters, undefined).backend);
        const servable = (req.volume_capabilities ?? []).every((c) => !('unsupported' in checkCapability(c, 'volume_capabilities')));
        const { availableBytes } = await store.backend.fs.usage();
        return { available_capacity: String(servable ? availableBytes : 0) };
      },
    },

    ControllerExpandVolume: {
      validate(req: { volume_id: string; capacity_range?: CapacityRange }) {
        requireField(req.volume_id, 'volume_id');
        if (!req.capacity_range) throw invalid('capacity_range is required');
        chooseCapacity(req.capacity_range);
      },
      lockKey: (req) => req.volume_id,
      async handle(req: { volume_id: string; capacity_range: CapacityRange }) {
        const { ref, store, record } = await lookup(req.volume_id);
        const required = toBytes(req.capacity_range.required_bytes, 'capacity_range.required_bytes');
        const limit = toBytes(req.capacity_range.limit_bytes, 'capacity_range.limit_bytes');
        if (limit && limit < record.capacityBytes) throw outOfRange(`volume has ${record.capacityBytes} bytes; shrinking to ${limit} is not supported`);
        const capacityBytes = Math.max(record.capacityBytes, required);
        if (capacityBytes !== record.capacityBytes) await store.writeVolume(ref.dir, { ...record, capacityBytes });
        return { capacity_bytes: String(capacityBytes), node_expansion_required: false };
      },
    },

    ControllerModifyVolume: {
      validate(req: { volume_id: string; mutable_parameters?: Params }) {
        requireField(req.volume_id, 'volume_id');
        parseMutableParameters(req.mutable_parameters);
      },
      lockKey: (req) => req.volume_id,
      async handle(req: { volume_id: string; mutable_parameters?: Params }) {
        const { ref, store, record } = await lookup(req.volume_id);
        const { onDelete } = parseMutableParameters(req.mutable_parameters);
        if (onDelete && onDelete !== record.onDelete) await store.writeVolume(ref.dir, { ...record, onDelete });
        return {};
      },
    },

    ...snapshotRpcs(backends, now),
  };
  return rpcs;

  /** The content source of a new volume: where its data comes from and how big it is. */
  async function resolveSource(source: ContentSource | undefined, store: VolumeStore) {
    const snapshotId = source?.snapshot?.snapshot_id;
    const sourceVolumeId = source?.volume?.volume_id;
    if (snapshotId !== undefined) {
      const ref = parseSnapshotId(snapshotId);
      const snap = ref && backends.get(ref.backend) ? await backends.get(ref.backend)!.readSnapshot(ref.dir) : undefined;
      if (!ref || !snap) throw notFound(`snapshot ${snapshotId} does not exist`);
      if (ref.backend !== store.backend.name) throw invalid(`snapshot ${snapshotId} is on backend ${ref.backend}; restore it to a volume on that backend`);
      return { type: 'snapshot' as const, id: snapshotId, size: snap.sizeBytes, dataPath: store.dataPath(store.snapshotPath(ref.dir)) };
    }
    if (sourceVolumeId !== undefined) {
      const ref = parseVolumeId(sourceVolumeId);
      const vol = ref && backends.get(ref.backend) ? await backends.get(ref.backend)!.readVolume(ref.dir) : undefined;
      if (!ref || !vol || vol.retainedAt) throw notFound(`source volume ${sourceVolumeId} does not exist`);
      if (ref.backend !== store.backend.name) throw invalid(`volume ${sourceVolumeId} is on backend ${ref.backend}; clone it to a volume on that backend`);
      return { type: 'volume' as const, id: sourceVolumeId, size: vol.capacityBytes, dataPath: store.dataPath(ref.dir) };
    }
    return undefined;
  }
}
