import { alreadyExists, invalid, precondition } from '../csi/errors.js';
import { _csi_v1_VolumeCapability_AccessMode_Mode as PROTO_MODES } from '../csi/generated/csi/v1/VolumeCapability.js';

/**
 * The access-mode rules of tether, as pure functions: what a capability may be, who may publish a
 * volume where. The controller and the node both decide with these.
 */

/** The access modes of the proto (UNKNOWN aside), in its order. */
export type AccessMode = Exclude<(typeof PROTO_MODES)[keyof typeof PROTO_MODES], 'UNKNOWN'>;
export const ACCESS_MODES: readonly AccessMode[] = Object.values(PROTO_MODES).filter((m): m is AccessMode => m !== 'UNKNOWN');

/**
 * A VolumeCapability as a rule accepts it: the generated VolumeCapability__Output, or less — a CO may
 * leave anything out, and an enum value the proto does not know arrives as a bare name or number.
 */
export interface VolumeCapability {
  access_mode?: { mode?: string | number } | null;
  mount?: { fs_type?: string; mount_flags?: string[]; volume_mount_group?: string } | null;
  block?: object | null;
  access_type?: string;
}

export const isSingleNode = (mode: AccessMode) => mode.startsWith('SINGLE_NODE_');
export const isReadOnlyMode = (mode: AccessMode) => mode.endsWith('_READER_ONLY');

/** Filesystem types a tether volume can be asked for: it is a network directory, not a block device. */
const FS_TYPES = new Set(['', 'sshfs', 'fuse.sshfs', 'nfs', 'nfs4']);

/**
 * Checks one capability and returns its access mode, or the reason tether cannot serve it.
 * `field` names the request field for the message.
 */
export function checkCapability(cap: VolumeCapability | null | undefined, field: string): { mode: AccessMode } | { unsupported: string } {
  const mode = cap?.access_mode?.mode;
  if (!cap || !mode || mode === 'UNKNOWN') throw invalid(`${field}.access_mode is required`);
  if (!ACCESS_MODES.includes(mode as AccessMode)) throw invalid(`${field}.access_mode ${String(mode)} is not a CSI access mode`);
  if (cap.block || cap.access_type === 'block') return { unsupported: 'block access is not supported: tether volumes are filesystems (use access type mount)' };
  if (!cap.mount && cap.access_type !== 'mount') throw invalid(`${field} must set an access type (mount)`);
  const fsType = cap.mount?.fs_type ?? '';
  if (!FS_TYPES.has(fsType)) return { unsupported: `fs_type "${fsType}" is not supported: leave it empty (the backend decides)` };
  return { mode: mode as AccessMode };
}

/** Like checkCapability, but an unsupported capability is an INVALID_ARGUMENT (CreateVolume, publish, stage). */
export function requireCapability(cap: VolumeCapability | null | undefined, field: string): AccessMode {
  const result = checkCapability(cap, field);
  if ('unsupported' in result) throw invalid(`${field}: ${result.unsupported}`);
  return result.mode;
}

/** One node's publication of a volume, as kept in the volume's record. */
export interface Publication {
  nodeId: string;
  accessMode: AccessMode;
  readonly: boolean;
}

/**
 * ControllerPublish: may `request` be added to the publications a volume already has?
 * Returns 'exists' for an identical repeat (idempotent OK), 'add' to record it, or throws:
 * - ALREADY_EXISTS: the same node holds it with another capability or readonly flag;
 * - FAILED_PRECONDITION: another node holds it and the modes forbid sharing (names the holder).
 */
export function decidePublish(existing: readonly Publication[], request: Publication): 'exists' | 'add' {
  const same = existing.find((p) => p.nodeId === request.nodeId);
  if (same) {
    if (same.accessMode === request.accessMode && same.readonly === request.readonly) return 'exists';
    throw alreadyExists(
      `volume is already published to node ${same.nodeId} as ${describe(same)}; ` +
        `unpublish it before publishing it as ${describe(request)}`,
    );
  }
  const others = existing.filter((p) => p.nodeId !== request.nodeId);
  if (others.length === 0) return 'add';
  const holders = others.map((p) => p.nodeId).join(', ');
  const singleNode = [request, ...others].find((p) => isSingleNode(p.accessMode));
  if (singleNode) {
    throw precondition(
      `volume is published to node ${holders} and its access mode ${singleNode.accessMode} allows one node at a time; ` +
        `unpublish it there first (a pod still using it on ${holders} must stop)`,
    );
  }
  const writes = (p: Publication) => !p.readonly && !isReadOnlyMode(p.accessMode);
  const singleWriter = [request, ...others].some((p) => p.accessMode === 'MULTI_NODE_SINGLE_WRITER');
  const writer = others.find(writes);
  if (singleWriter && writes(request) && writer) {
    throw precondition(
      `volume already has a writer on node ${writer.nodeId} and MULTI_NODE_SINGLE_WRITER allows one; ` +
        `publish this node read-only or unpublish the writer first`,
    );
  }
  return 'add';
}

/**
 * NodePublish: may the volume be published at one more target path on this node, given the targets it
 * already has here? SINGLE_NODE_SINGLE_WRITER, SINGLE_NODE_WRITER and SINGLE_NODE_READER_ONLY allow one
 * target; SINGLE_NODE_MULTI_WRITER and MULTI_NODE_* allow many (CSI spec, NodePublishVolume errors).
 */
export function decideNodePublish(otherTargets: readonly string[], mode: AccessMode): void {
  if (otherTargets.length === 0 || mode === 'SINGLE_NODE_MULTI_WRITER' || !isSingleNode(mode)) return;
  throw precondition(`volume is already published on this node at ${otherTargets.join(', ')} and access mode ${mode} allows one target path`);
}

const describe = (p: Publication) => `${p.accessMode}${p.readonly ? ' read-only' : ''}`;
