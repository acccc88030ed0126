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

/** One node's publication of a volume, as kept in the volume's record (a node claim has the same shape). */
export interface Publication {
  nodeId: string;
  accessMode: AccessMode;
  readonly: boolean;
}

/** Another node's lease as the caller sees it: how long until the caller may take it over (LeaseWatch); 0: now. */
export interface WatchedLease extends Publication {
  takeoverInMs: number;
}

/**
 * Those who hold a volume: the nodes it is published to (ControllerPublish), those that claimed it
 * (NodeStage without one), and those that hold its lease (staged exclusively: see lease.ts).
 */
export interface Holders {
  publications: readonly Publication[];
  claims: readonly Publication[];
  leases?: readonly WatchedLease[];
}

const writes = (p: Publication) => !p.readonly && !isReadOnlyMode(p.accessMode);

/** True if `request` would write a volume that only one node may write at a time. */
const isSingleWriter = (request: Publication) => writes(request) && (isSingleNode(request.accessMode) || request.accessMode === 'MULTI_NODE_SINGLE_WRITER');

/** True if `p` holds the volume exclusively — a single-node mode, or the one writer of MULTI_NODE_SINGLE_WRITER: it takes a lease. */
export const isExclusive = (p: Publication) => isSingleNode(p.accessMode) || isSingleWriter(p);

/** True if the holder must fence itself when it cannot renew its lease: it writes, and another node could take over. */
export const fencesOnLoss = (p: Publication) => isExclusive(p) && writes(p);

/** Other nodes whose leases stand in `request`'s way and were watched unrenewed for a full term: `request` takes them over. */
export function leasesToTakeOver(holders: Holders, request: Publication): string[] {
  return (holders.leases ?? []).filter((l) => l.nodeId !== request.nodeId && l.takeoverInMs === 0 && conflict([l], request)).map((l) => l.nodeId);
}

/** `holders` without these nodes' claims and leases (taken over); their publications are the CO's and stay. */
export function withoutNodes<H extends Holders>(holders: H, nodes: readonly string[]): H {
  if (!nodes.length) return holders;
  const kept = <T extends Publication>(list: readonly T[]) => list.filter((p) => !nodes.includes(p.nodeId));
  return { ...holders, claims: kept(holders.claims), leases: kept(holders.leases ?? []) };
}

/** FAILED_PRECONDITION if another node's lease forbids `request`, naming the node and when it could be taken over at the earliest. */
function refuseLeased(holders: Holders, request: Publication): void {
  const others = (holders.leases ?? []).filter((l) => l.nodeId !== request.nodeId);
  const found = conflict(others, request);
  if (!found) return;
  const lease = others.find((l) => l.nodeId === found.holder.nodeId)!;
  const node = lease.nodeId;
  const seconds = Math.max(1, Math.ceil(lease.takeoverInMs / 1000));
  throw precondition(
    `volume is held by node ${node} (${describe(lease)}), whose writer lease is live: ${found.why}; it can be taken over in ${seconds} s at the earliest, and only if node ${node} stops renewing it (it unstages the volume, or it is cut off and fences itself)`,
  );
}

/**
 * The first holder on another node that `request` cannot share the volume with, and why: a
 * single-node access mode on either side, or a second writer of a MULTI_NODE_SINGLE_WRITER volume.
 */
function conflict(others: readonly Publication[], request: Publication): { holder: Publication; why: string } | undefined {
  const singleNode = [request, ...others].find((p) => isSingleNode(p.accessMode));
  if (singleNode && others[0]) return { holder: others[0], why: `its access mode ${singleNode.accessMode} allows one node at a time` };
  const writer = others.find(writes);
  if (writer && writes(request) && [request, ...others].some((p) => p.accessMode === 'MULTI_NODE_SINGLE_WRITER')) {
    return { holder: writer, why: 'MULTI_NODE_SINGLE_WRITER allows one writer' };
  }
  return undefined;
}

/**
 * ControllerPublish: may `request` be added to those who hold the volume?
 * Returns 'exists' for an identical repeat (idempotent OK), 'add' to record it, or throws:
 * - ALREADY_EXISTS: the same node holds a publication with another capability or readonly flag;
 * - FAILED_PRECONDITION: another node holds it — published, or staged there with no publication (a
 *   node claim) — and the modes forbid sharing; the message names the holder.
 */
export function decidePublish(holders: Holders, request: Publication): 'exists' | 'add' {
  const same = holders.publications.find((p) => p.nodeId === request.nodeId);
  if (same) {
    if (same.accessMode === request.accessMode && same.readonly === request.readonly) return 'exists';
    throw alreadyExists(`volume is already published to node ${same.nodeId} as ${describe(same)}; unpublish it before publishing it as ${describe(request)}`);
  }
  const published = conflict(holders.publications, request);
  if (published) {
    const node = published.holder.nodeId;
    throw precondition(`volume is published to node ${node} and ${published.why}; unpublish it there first (a workload still using it on ${node} must stop)`);
  }
  const claimed = conflict(holders.claims.filter((c) => c.nodeId !== request.nodeId), request);
  if (claimed) {
    const node = claimed.holder.nodeId;
    throw precondition(`volume is staged on node ${node} (no ControllerPublish there) and ${claimed.why}; it must be unstaged there first`);
  }
  refuseLeased(holders, request);
  return 'add';
}

/**
 * NodeStage on `request.nodeId`: may this node stage the volume, and must it claim it?
 * - The volume has publications (the CO calls ControllerPublish): a node that would write a
 *   single-writer volume, or use a single-node one, must be among them — else FAILED_PRECONDITION
 *   naming the node it is published to. No claim is needed.
 * - It has none (a CO that skips ControllerPublish): the node claims it, unless another node's claim
 *   forbids sharing (FAILED_PRECONDITION naming the claimant). Claims also keep DeleteVolume off.
 * Returns the claim to record, or undefined if there is nothing to record.
 */
export function decideNodeStage(holders: Holders, request: Publication): Publication | undefined {
  if (holders.publications.length) {
    const here = holders.publications.some((p) => p.nodeId === request.nodeId);
    if (!here && (isSingleWriter(request) || isSingleNode(request.accessMode))) {
      const nodes = holders.publications.map((p) => p.nodeId).join(', ');
      throw precondition(`volume is published to node ${nodes} (ControllerPublishVolume), not to node ${request.nodeId}; as ${describe(request)} it can be staged only there`);
    }
    refuseLeased(holders, request);
    return undefined;
  }
  const own = holders.claims.find((c) => c.nodeId === request.nodeId);
  const claimed = conflict(holders.claims.filter((c) => c.nodeId !== request.nodeId), request);
  if (claimed) {
    const node = claimed.holder.nodeId;
    throw precondition(`volume is staged on node ${node} and ${claimed.why}; it can be staged on node ${request.nodeId} once node ${node} has unstaged it`);
  }
  refuseLeased(holders, request);
  if (own && own.accessMode === request.accessMode && own.readonly === request.readonly) return undefined;
  return { nodeId: request.nodeId, accessMode: request.accessMode, readonly: request.readonly };
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
