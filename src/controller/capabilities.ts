import type { VolumeStore } from '../volumes/store.js';
import type { VolumeCapability } from '../volumes/access.js';

/** What the Controller service offers (ControllerGetCapabilities). */
export const CONTROLLER_CAPABILITIES = [
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
] as const;

/** The mount flags of every capability pass the backend's allowlist, or INVALID_ARGUMENT. */
export function checkMountFlags(store: VolumeStore, caps: readonly VolumeCapability[]): void {
  for (const cap of caps) store.backend.checkMountOptions(cap.mount?.mount_flags ?? []);
}
