import type { ControllerRpcs } from '../grpc/rpc.js';
import { CONTROLLER_CAPABILITIES } from './capabilities.js';
import { createVolume } from './create-volume.js';
import type { ControllerDeps } from './deps.js';
import { publishVolume, unpublishVolume } from './publish.js';
import { createSnapshot, deleteSnapshot, getSnapshot, listSnapshots } from './snapshots.js';
import { deleteVolume, expandVolume, getCapacity, getVolume, listVolumes, modifyVolume, validateVolumeCapabilities } from './volumes.js';

/**
 * The Controller service, one RPC per method of the proto's Controller service (a missing or
 * misspelled one does not compile). Each lives in the file named for what it works on.
 */
export function controllerService(deps: ControllerDeps): ControllerRpcs {
  return {
    ControllerGetCapabilities: {
      quiet: true,
      handle: async () => ({ capabilities: CONTROLLER_CAPABILITIES.map((type) => ({ rpc: { type } })) }),
    },
    CreateVolume: createVolume(deps),
    DeleteVolume: deleteVolume(deps),
    ControllerPublishVolume: publishVolume(deps),
    ControllerUnpublishVolume: unpublishVolume(deps),
    ValidateVolumeCapabilities: validateVolumeCapabilities(deps),
    ListVolumes: listVolumes(deps),
    ControllerGetVolume: getVolume(deps),
    GetCapacity: getCapacity(deps),
    ControllerExpandVolume: expandVolume(deps),
    ControllerModifyVolume: modifyVolume(deps),
    CreateSnapshot: createSnapshot(deps),
    DeleteSnapshot: deleteSnapshot(deps),
    ListSnapshots: listSnapshots(deps),
    GetSnapshot: getSnapshot(deps),
  };
}
