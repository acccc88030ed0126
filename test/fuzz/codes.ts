// Which gRPC status codes a fuzzed call may end with: the ones the CSI spec (v1.12, spec.md) names
// for its method, plus the few answers grpc-js itself gives to a request it cannot take.
import { status } from '@grpc/grpc-js';

const { OK, INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, ABORTED, OUT_OF_RANGE, RESOURCE_EXHAUSTED, UNAVAILABLE, DEADLINE_EXCEEDED } = status;

/**
 * Every method: OK; INVALID_ARGUMENT (the spec's general "missing or invalid field"); UNAVAILABLE
 * (gRPC's "transient, retry": a backend that does not answer); DEADLINE_EXCEEDED (allowed here, but
 * counted and bounded by a check of its own).
 */
const GENERAL = [OK, INVALID_ARGUMENT, UNAVAILABLE, DEADLINE_EXCEEDED];

/**
 * The spec's error table of each method ("<Method> Errors"), plus ABORTED, its general "operation
 * pending for volume", for every method that names a volume or snapshot. Methods whose table is
 * empty (the capability and info calls, GetCapacity) get GENERAL only.
 */
const SPEC_TABLE: Record<string, readonly status[]> = {
  GetPluginInfo: [],
  GetPluginCapabilities: [],
  Probe: [FAILED_PRECONDITION],
  CreateVolume: [NOT_FOUND, ALREADY_EXISTS, RESOURCE_EXHAUSTED, OUT_OF_RANGE, ABORTED],
  DeleteVolume: [FAILED_PRECONDITION, ABORTED],
  ControllerPublishVolume: [NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, RESOURCE_EXHAUSTED, ABORTED],
  ControllerUnpublishVolume: [NOT_FOUND, ABORTED],
  ValidateVolumeCapabilities: [NOT_FOUND, ABORTED],
  ListVolumes: [ABORTED],
  GetCapacity: [],
  ControllerGetCapabilities: [],
  CreateSnapshot: [ALREADY_EXISTS, RESOURCE_EXHAUSTED, ABORTED],
  DeleteSnapshot: [FAILED_PRECONDITION, ABORTED],
  ListSnapshots: [ABORTED],
  GetSnapshot: [NOT_FOUND, ABORTED],
  ControllerExpandVolume: [NOT_FOUND, FAILED_PRECONDITION, OUT_OF_RANGE, ABORTED],
  ControllerGetVolume: [NOT_FOUND, ABORTED],
  ControllerModifyVolume: [NOT_FOUND, ABORTED],
  GroupControllerGetCapabilities: [],
  CreateVolumeGroupSnapshot: [ALREADY_EXISTS, RESOURCE_EXHAUSTED, FAILED_PRECONDITION, ABORTED],
  DeleteVolumeGroupSnapshot: [FAILED_PRECONDITION, ABORTED],
  GetVolumeGroupSnapshot: [NOT_FOUND, ABORTED],
  NodeStageVolume: [NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, ABORTED],
  NodeUnstageVolume: [NOT_FOUND, ABORTED],
  NodePublishVolume: [NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, ABORTED],
  NodeUnpublishVolume: [NOT_FOUND, ABORTED],
  NodeGetVolumeStats: [NOT_FOUND, ABORTED],
  NodeExpandVolume: [NOT_FOUND, FAILED_PRECONDITION, OUT_OF_RANGE, ABORTED],
  NodeGetCapabilities: [],
  NodeGetInfo: [],
};

/**
 * Where the spec's table is silent but gRPC's own meaning of a code fits and a CO can act on it;
 * kept short and said out loud:
 * - NOT_FOUND when a snapshot's source volume does not exist (the spec names it for every other
 *   call that takes a volume ID);
 * - FAILED_PRECONDITION from NodeUnstage/NodeUnpublish when the path holds another volume's mount
 *   or is still published (the CO broke the spec's call order; refusing touches nothing).
 */
const EXTENSIONS: Record<string, readonly status[]> = {
  CreateSnapshot: [NOT_FOUND],
  CreateVolumeGroupSnapshot: [NOT_FOUND],
  NodeUnstageVolume: [FAILED_PRECONDITION],
  NodeUnpublishVolume: [FAILED_PRECONDITION],
};

/** grpc-js's own answer to a body that does not decode as the method's request (server-interceptors.js). */
const UNDECODABLE = /^Error deserializing request/;
/** grpc-js's own answer to a request over the server's grpc.max_receive_message_length. */
const OVERSIZE = /^Received message larger than max/;
/**
 * What the grpc-js client reports as UNAVAILABLE when the connection itself broke (or the server
 * refused the stream): not an answer of the driver, which may say UNAVAILABLE for a backend that
 * does not answer.
 */
const CONNECTION_BROKE = /^(Connection dropped|No connection established|Failed to connect|Stream refused|.*ECONNRESET)/;

export const connectionBroke = (code: status, details: string) => code === status.UNAVAILABLE && CONNECTION_BROKE.test(details);

function allowedCodes(method: string): readonly status[] {
  const table = SPEC_TABLE[method];
  if (!table) throw new Error(`no CSI error table for ${method}`);
  return [...GENERAL, ...table, ...(EXTENSIONS[method] ?? [])];
}

/**
 * Whether `code` (with `details`) is an answer the spec allows `method` — or grpc-js's own answer to
 * a request it could not take: INTERNAL for a body that does not decode (random bytes or another
 * type's fields only; a proper request never gets it), RESOURCE_EXHAUSTED for one over the size cap.
 * A connection that broke under the call is no answer at all.
 */
export function isAllowed(method: string, code: status, details: string, body: 'structured' | 'foreign'): boolean {
  if (code === status.INTERNAL && body === 'foreign' && UNDECODABLE.test(details)) return true;
  if (code === status.RESOURCE_EXHAUSTED && OVERSIZE.test(details)) return true;
  if (connectionBroke(code, details)) return false;
  return allowedCodes(method).includes(code);
}

export const codeName = (code: number) => status[code] ?? `code ${code}`;
