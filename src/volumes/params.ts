import { invalid } from '../grpc/errors.js';

export type OnDelete = 'delete' | 'retain' | 'archive';
const ON_DELETE: readonly OnDelete[] = ['delete', 'retain', 'archive'];

/** Keys Kubernetes' external-provisioner adds on its own (--extra-create-metadata): accepted, kept, unused. */
const CO_PREFIX = 'csi.storage.k8s.io/';

export interface VolumeParameters {
  backend?: string;
  onDelete: OnDelete;
}

/**
 * StorageClass parameters of CreateVolume. Anything unknown is INVALID_ARGUMENT, so a typo does not
 * silently give a volume other than the one asked for.
 */
export function parseVolumeParameters(params: Record<string, string> | undefined, mutable: Record<string, string> | undefined): VolumeParameters {
  const all = { ...params, ...mutable };
  for (const key of Object.keys(params ?? {})) {
    if (key !== 'backend' && key !== 'onDelete' && !key.startsWith(CO_PREFIX)) {
      throw invalid(`unknown parameter "${key}": tether accepts backend and onDelete`);
    }
  }
  for (const key of Object.keys(mutable ?? {})) {
    if (key !== 'onDelete') throw invalid(`parameter "${key}" cannot be changed after creation: only onDelete is mutable`);
  }
  const onDelete = all.onDelete ?? 'delete';
  if (!ON_DELETE.includes(onDelete as OnDelete)) throw invalid(`onDelete must be one of ${ON_DELETE.join(', ')}, got "${onDelete}"`);
  return { backend: all.backend || undefined, onDelete: onDelete as OnDelete };
}

/** ControllerModifyVolume: only onDelete may change. */
export function parseMutableParameters(mutable: Record<string, string> | undefined): { onDelete?: OnDelete } {
  if (!mutable || Object.keys(mutable).length === 0) return {};
  return { onDelete: parseVolumeParameters({}, mutable).onDelete };
}

/** CreateSnapshot accepts no parameters of its own. */
export function checkSnapshotParameters(params: Record<string, string> | undefined): void {
  for (const key of Object.keys(params ?? {})) {
    if (!key.startsWith(CO_PREFIX)) throw invalid(`unknown snapshot parameter "${key}": tether snapshots take none`);
  }
}
