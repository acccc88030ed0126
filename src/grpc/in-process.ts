import { loadCsiServices } from './proto.js';
import { runCall, type PipelineDeps } from './pipeline.js';
import type { ControllerRpcs, GroupControllerRpcs, NodeRpcs, ServiceSet } from './rpc.js';

type Services = ReturnType<typeof loadCsiServices>;
type ControllerMethod = keyof ControllerRpcs;
type GroupMethod = keyof GroupControllerRpcs;
type NodeMethod = keyof NodeRpcs;
/** A request as a client writes it (the generated message type: fields may be left out). */
export type ControllerInput<M extends ControllerMethod> = Parameters<Services['Controller'][M]['requestSerialize']>[0];
export type GroupInput<M extends GroupMethod> = Parameters<Services['GroupController'][M]['requestSerialize']>[0];
export type NodeInput<M extends NodeMethod> = Parameters<Services['Node'][M]['requestSerialize']>[0];
type ControllerOutput<M extends ControllerMethod> = Awaited<ReturnType<ControllerRpcs[M]['handle']>>;
type GroupOutput<M extends GroupMethod> = Awaited<ReturnType<GroupControllerRpcs[M]['handle']>>;
type NodeOutput<M extends NodeMethod> = Awaited<ReturnType<NodeRpcs[M]['handle']>>;

/** CSI calls made inside this process, as a CO's would arrive over the socket. */
export interface InProcessCsi {
  controller<M extends ControllerMethod>(method: M, request: ControllerInput<M>, timeoutMs: number): Promise<ControllerOutput<M>>;
  groupController<M extends GroupMethod>(method: M, request: GroupInput<M>, timeoutMs: number): Promise<GroupOutput<M>>;
  node<M extends NodeMethod>(method: M, request: NodeInput<M>, timeoutMs: number): Promise<NodeOutput<M>>;
}

/**
 * Calls tether's own CSI services without a socket, for a front end that speaks another CO's
 * protocol (Docker's volume plugin API) and for the handler tests: each request is encoded and
 * decoded with the proto's codec — the handler sees exactly what grpc-js would hand it (defaults
 * filled in, int64 as strings, enums as names) — and goes through the one request pipeline (limits,
 * validation, locks, its log line and metrics, error mapping). Failures are CsiErrors with the code
 * the spec names.
 */
export function inProcessCsi(services: Omit<ServiceSet, 'Identity'>, deps: PipelineDeps): InProcessCsi {
  const defs = loadCsiServices();
  const call = (service: 'Controller' | 'GroupController' | 'Node', method: string, request: unknown, timeoutMs: number): Promise<never> => {
    const rpcs = services[service] as Record<string, unknown> | undefined;
    if (!rpcs) throw new Error(`this process serves no ${service} service`);
    const def = (defs[service] as Record<string, { requestSerialize(r: never): Buffer; requestDeserialize(b: Buffer): unknown }>)[method]!;
    const bounds = { remainingMs: timeoutMs, onCancel: () => () => undefined };
    return runCall(method, rpcs[method] as never, def.requestDeserialize(def.requestSerialize(request as never)), bounds, deps) as Promise<never>;
  };
  return {
    controller: (method, request, timeoutMs) => call('Controller', method, request, timeoutMs),
    groupController: (method, request, timeoutMs) => call('GroupController', method, request, timeoutMs),
    node: (method, request, timeoutMs) => call('Node', method, request, timeoutMs),
  };
}
