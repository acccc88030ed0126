import { invalid } from '../csi/errors.js';
import { isSharing, SHARING_MODES, SHARING_PARAMETER } from './sharing.js';

export type OnDelete = 'delete' | 'retain' | 'archive';
const ON_DELETE: readonly OnDelete[] = ['delete', 'retain', 'archive'];

/** Keys Kubernetes' external-provisioner adds on its own (--extra-create-metadata): accepted, kept, unused. */
const CO_PREFIX = 'csi.storage.k8s.io/';

export interface VolumeParameters {
  backend?: string;
  onDelete: OnDelete;
  /** The directory name rendered from volumeNameTemplate, if the StorageClass sets one. */
  directory?: string;
}

/** volumeNameTemplate variables and the parameters Kubernetes' provisioner fills them from (--extra-create-metadata). */
const TEMPLATE_VARS: Record<string, string> = {
  'pvc.metadata.name': 'csi.storage.k8s.io/pvc/name',
  'pvc.metadata.namespace': 'csi.storage.k8s.io/pvc/namespace',
  'pv.metadata.name': 'csi.storage.k8s.io/pv/name',
};

/** Renders a volumeNameTemplate such as "${pvc.metadata.namespace}-${pvc.metadata.name}". */
export function renderNameTemplate(template: string, params: Record<string, string>): string {
  const rendered = template.replace(/\$\{([^}]*)\}/g, (_, name: string) => {
    const key = TEMPLATE_VARS[name];
    if (!key) throw invalid(`volumeNameTemplate: unknown variable \${${name}}; use ${Object.keys(TEMPLATE_VARS).map((v) => `\${${v}}`).join(', ')}`);
    const value = params[key];
    if (!value) throw invalid(`volumeNameTemplate uses \${${name}} but the request has no ${key}: run csi-provisioner with --extra-create-metadata`);
    return value;
  });
  if (rendered.includes('${')) throw invalid(`volumeNameTemplate "${template}" has an unclosed \${`);
  return rendered;
}

/**
 * StorageClass parameters of CreateVolume. Anything unknown is INVALID_ARGUMENT, so a typo does not
 * silently give a volume other than the one asked for.
 */
export function parseVolumeParameters(params: Record<string, string> | undefined, mutable: Record<string, string> | undefined): VolumeParameters {
  const all = { ...params, ...mutable };
  for (const key of Object.keys(params ?? {})) {
    if (!['backend', 'onDelete', 'volumeNameTemplate', SHARING_PARAMETER].includes(key) && !key.startsWith(CO_PREFIX)) {
      throw invalid(`unknown parameter "${key}": tether accepts backend, onDelete, volumeNameTemplate and ${SHARING_PARAMETER}`);
    }
  }
  for (const key of Object.keys(mutable ?? {})) {
    if (key !== 'onDelete') throw invalid(`parameter "${key}" cannot be changed after creation: only onDelete is mutable`);
  }
  const onDelete = all.onDelete ?? 'delete';
  if (!ON_DELETE.includes(onDelete as OnDelete)) throw invalid(`onDelete must be one of ${ON_DELETE.join(', ')}, got "${onDelete}"`);
  const sharing = params?.[SHARING_PARAMETER];
  if (sharing !== undefined && !isSharing(sharing)) throw invalid(`${SHARING_PARAMETER} must be one of ${SHARING_MODES.join(', ')}, got "${sharing}"`);
  const template = params?.volumeNameTemplate;
  return {
    backend: all.backend || undefined,
    onDelete: onDelete as OnDelete,
    directory: template ? renderNameTemplate(template, params ?? {}) : undefined,
  };
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
