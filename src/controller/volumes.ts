import { invalid, outOfRange, precondition } from '../csi/errors.js';
import { live } from '../volumes/registry.js';
import type { VolumeRecord } from '../volumes/records.js';
import type { ControllerRpcs } from '../grpc/rpc.js';
import { checkMaxEntries, requireFields } from '../grpc/validate.js';
import { checkCapability } from '../volumes/access.js';
import { chooseCapacity, toBytes } from '../volumes/capacity.js';
import { parseVolumeId, volumeId } from '../volumes/ids.js';
import { parseMutableParameters, parseVolumeParameters } from '../volumes/params.js';
import { checkMountFlags } from './capabilities.js';
import { volumeInfo, volumeStatus } from './messages.js';
import { pageAfter } from './pages.js';
import type { ControllerDeps } from './deps.js';

/**
 * DeleteVolume: what onDelete says (remove, archive or retain). Refused while the volume is published
 * or staged anywhere (a node claim, or a writer lease not yet watched lapse for a full term). The decision is a compare-and-swap of the record — retained, or
 * marked as being deleted — so that a publish racing from another controller either lands before it
 * (and the delete is refused) or finds the volume gone; only then is anything removed. A half-made
 * volume (CreateVolume stopped before data/ was complete) is removed whatever onDelete says: no
 * one ever had it; a directory without a record is removed only if it holds nothing but what a
 * stopped CreateVolume leaves (see VolumeStore.isHalfMade).
 */
export function deleteVolume({ backends, now, watch }: ControllerDeps): ControllerRpcs['DeleteVolume'] {
  return {
    validate: (req) => requireFields(req, 'volume_id'),
    lockKey: (req) => req.volume_id,
    async handle(req, { signal, log }) {
      const ref = parseVolumeId(req.volume_id);
      const store = ref && backends.get(ref.backend);
      if (!ref || !store) return {}; // not an ID tether made: nothing to delete
      const read = { record: await store.readVolume(ref.dir, signal) };
      const halfMade = !read.record || (read.record.creatingAt && !read.record.deletingAt);
      if (halfMade && (await store.discardHalfMade(ref.dir, now(), signal))) return {};
      const after = await store.updateVolume(ref.dir, (current) => {
        if (!current || current.retainedAt || current.deletingAt || current.creatingAt) return current; // a create that began since: its retry or a later delete
        refuseWhileHeld(current, req.volume_id, watch);
        return current.onDelete === 'retain' ? { ...current, retainedAt: now().toISOString() } : { ...current, deletingAt: now().toISOString() };
      }, signal, halfMade ? undefined : read);
      if (!after && (await store.dirExists(ref.dir, signal))) log.info({ volume: req.volume_id, at: store.where(ref.dir) }, 'a directory of this name holds no tether volume, and more than a half-made one: left as it is');
      if (!after?.deletingAt) return {}; // gone already, retained, or not tether's
      if (after.onDelete === 'archive') await store.archiveVolume(ref.dir, now(), signal);
      else await store.removeVolume(ref.dir, signal, after);
      return {};
    },
  };
}

/** Refuses to delete a volume that is published, claimed, or leased (a lease not yet watched lapse for a full term). */
function refuseWhileHeld(current: VolumeRecord, id: string, watch: ControllerDeps['watch']): void {
  // A lease this controller watched lapse for a full term holds nothing any more: its node has fenced itself.
  const leased = current.leases.filter((l) => watch.remainingMs(id, l) > 0 && !current.claims.some((c) => c.nodeId === l.nodeId));
  const holders = [
    ...current.publications.map((p) => `published to node ${p.nodeId}`),
    ...current.claims.map((c) => `staged on node ${c.nodeId}`),
    ...leased.map((l) => `staged on node ${l.nodeId} (its writer lease is live; a node that is gone loses it a full term after its last renewal)`),
  ];
  if (holders.length) throw precondition(`volume in use: it is ${holders.join(', ')}; unpublish and unstage it first`);
}

/** ListVolumes: every backend's volumes in ID order, a page at a time (the token is the next ID). */
export function listVolumes({ backends }: ControllerDeps): ControllerRpcs['ListVolumes'] {
  return {
    validate: (req) => checkMaxEntries(req.max_entries),
    async handle(req, { signal, log }) {
      const ids = (await Promise.all(backends.all().map(async (s) => (await s.volumeDirs(signal)).map((dir) => volumeId({ backend: s.backend.name, dir }))))).flat();
      const { entries, nextToken } = await pageAfter(ids, req.starting_token, req.max_entries, parseVolumeId, async (id) => {
        // One damaged record must not hide every other volume: it is left out, and said so.
        const found = await backends.findVolume(id, signal).catch((err: unknown) => void log.warn({ volume: id, err: (err as Error).message }, 'volume left out of the list: its record cannot be read'));
        if (!found) return undefined;
        return { volume: volumeInfo(id, found.record), status: volumeStatus(found.store, found.ref.dir, found.record, found.hasData) };
      });
      return { entries, next_token: nextToken };
    },
  };
}

export function getVolume({ backends }: ControllerDeps): ControllerRpcs['ControllerGetVolume'] {
  return {
    validate: (req) => requireFields(req, 'volume_id'),
    async handle(req, { signal }) {
      const { ref, store, record, hasData } = await backends.resolveVolume(req.volume_id, 'volume', signal);
      return { volume: volumeInfo(req.volume_id, record), status: volumeStatus(store, ref.dir, record, hasData) };
    },
  };
}

/** ControllerExpandVolume: records the larger size (a directory has no size of its own to grow). */
export function expandVolume({ backends }: ControllerDeps): ControllerRpcs['ControllerExpandVolume'] {
  return {
    validate(req) {
      requireFields(req, 'volume_id');
      if (!req.capacity_range) throw invalid('capacity_range is required');
      chooseCapacity(req.capacity_range);
    },
    lockKey: (req) => req.volume_id,
    async handle(req, { signal }) {
      const required = toBytes(req.capacity_range?.required_bytes, 'capacity_range.required_bytes');
      const limit = toBytes(req.capacity_range?.limit_bytes, 'capacity_range.limit_bytes');
      const { ref, store } = await backends.resolveVolume(req.volume_id, 'volume', signal);
      const after = await store.updateVolume(ref.dir, (current) => {
        const record = live(current, req.volume_id);
        if (limit && limit < record.capacityBytes) throw outOfRange(`volume has ${record.capacityBytes} bytes; shrinking to ${limit} is not supported`);
        return required > record.capacityBytes ? { ...record, capacityBytes: required } : record;
      }, signal);
      return { capacity_bytes: String(after!.capacityBytes), node_expansion_required: false };
    },
  };
}

/** ControllerModifyVolume: onDelete is the one mutable parameter. */
export function modifyVolume({ backends }: ControllerDeps): ControllerRpcs['ControllerModifyVolume'] {
  return {
    validate(req) {
      requireFields(req, 'volume_id');
      parseMutableParameters(req.mutable_parameters);
    },
    lockKey: (req) => req.volume_id,
    async handle(req, { signal }) {
      const { ref, store } = await backends.resolveVolume(req.volume_id, 'volume', signal);
      const { onDelete } = parseMutableParameters(req.mutable_parameters);
      await store.updateVolume(ref.dir, (current) => {
        const record = live(current, req.volume_id);
        return onDelete && onDelete !== record.onDelete ? { ...record, onDelete } : record;
      }, signal);
      return {};
    },
  };
}

/** ValidateVolumeCapabilities: confirms what tether can serve for this volume, or says why not. */
export function validateVolumeCapabilities({ backends }: ControllerDeps): ControllerRpcs['ValidateVolumeCapabilities'] {
  return {
    validate(req) {
      requireFields(req, 'volume_id');
      if (!req.volume_capabilities?.length) throw invalid('volume_capabilities must list at least one capability');
    },
    async handle(req, { signal }) {
      const { store, record } = await backends.resolveVolume(req.volume_id, 'volume', signal);
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
      const { volume_context, volume_capabilities, parameters, mutable_parameters } = req;
      return { confirmed: { volume_context, volume_capabilities, parameters, mutable_parameters } };
    },
  };
}

/** GetCapacity: the free space of the backend a StorageClass names (0 for capabilities tether cannot serve). */
export function getCapacity({ backends }: ControllerDeps): ControllerRpcs['GetCapacity'] {
  return {
    validate: (req) => void parseVolumeParameters(req.parameters, undefined),
    async handle(req, { signal }) {
      const store = backends.choose(parseVolumeParameters(req.parameters, undefined).backend);
      const servable = (req.volume_capabilities ?? []).every((c) => !('unsupported' in checkCapability(c, 'volume_capabilities')));
      const { availableBytes } = await store.backend.fs.usage(signal);
      return { available_capacity: String(servable ? availableBytes : 0) };
    },
  };
}
