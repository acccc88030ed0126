import type { handleUnaryCall } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { ControllerHandlers } from '../csi/generated/csi/v1/Controller.js';
import type { GroupControllerHandlers } from '../csi/generated/csi/v1/GroupController.js';
import type { IdentityHandlers } from '../csi/generated/csi/v1/Identity.js';
import type { NodeHandlers } from '../csi/generated/csi/v1/Node.js';

/** What a handler gets besides its request. */
export interface CallContext {
  /** Aborted when the client cancels or the call's deadline passes: pass it on to external commands. */
  signal: AbortSignal;
  log: Logger;
}

/**
 * One RPC: `validate` checks the request's own fields (before any lookup, so random IDs with missing
 * fields get INVALID_ARGUMENT), `lockKey` names the volume or snapshot it works on, `handle` does it.
 * Requests are typed as grpc-js hands them over (generated from proto/csi.proto: defaults filled in,
 * int64 as strings, enums as names); responses as the permissive message type.
 */
export interface Rpc<Req, Res> {
  validate?(req: Req): void;
  lockKey?(req: Req): string | undefined;
  handle(req: Req, ctx: CallContext): Promise<Res>;
  /** Quiet calls (Probe, capability queries) log at debug level: probes come every few seconds. */
  quiet?: boolean;
}

/** The method names of a generated handlers interface, without grpc-js' catch-all index signature. */
export type MethodsOf<H> = keyof { [K in keyof H as string extends K ? never : K]: H[K] } & string;
type RequestOf<F> = F extends handleUnaryCall<infer Req, infer _Res> ? Req : never;
type ResponseOf<F> = F extends handleUnaryCall<infer _Req, infer Res> ? Res : never;

/**
 * A service's RPCs keyed by its method names: a missing or misspelled method is a compile error,
 * never a silent UNIMPLEMENTED, and each request and response is typed from the proto.
 */
export type RpcTable<H> = { [M in MethodsOf<H>]: Rpc<RequestOf<H[M]>, ResponseOf<H[M]>> };

export type IdentityRpcs = RpcTable<IdentityHandlers>;
export type ControllerRpcs = RpcTable<ControllerHandlers>;
export type GroupControllerRpcs = RpcTable<GroupControllerHandlers>;
export type NodeRpcs = RpcTable<NodeHandlers>;

/** The services one tether process serves: Identity always, the others by mode. */
export interface ServiceSet {
  Identity: IdentityRpcs;
  Controller?: ControllerRpcs;
  GroupController?: GroupControllerRpcs;
  Node?: NodeRpcs;
}

/** The request type of an RPC from a table: `RequestOfRpc<ControllerRpcs['CreateVolume']>`. */
export type RequestOfRpc<R> = R extends Rpc<infer Req, infer _Res> ? Req : never;
