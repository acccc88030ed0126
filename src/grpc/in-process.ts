import { loadCsiServices } from './proto.js';
import { runCall, type PipelineDeps } from './pipeline.js';
import type { ControllerRpcs, NodeRpcs, ServiceSet } from './rpc.js';

type Services = ReturnType<typeof loadCsiServices>;
type ControllerMethod = keyof ControllerRpcs;
type NodeMethod = keyof NodeRpcs;
/** A request as a client writes it (the generated message type: fields may be left out). */
export type ControllerInput<M extends ControllerMethod> = Parameters<Services['Controller'][M]['requestSerialize']>[0];
export type NodeInput<M extends NodeMethod> = Parameters<Services['Node'][M]['requestSerialize']>[0];
type ControllerOutput<M extends ControllerMethod> = Awaited<ReturnType<ControllerRpcs[M]['handle']>>;
type NodeOutput<M extends NodeMethod> = Awaited<ReturnType<NodeRpcs[M]['handle']>>;

/** CSI calls made inside this process, as a CO's would arrive over the socket. */
export interface InProcessCsi {
  controller<M extends ControllerMethod>(method: M, request: ControllerInput<M>, timeoutMs: number): Promise<ControllerOutput<M>>;
  node<M extends NodeMethod>(method: M, request: NodeInput<M>, timeoutMs: number): Promise<NodeOutput<M>>;
}

/**
 * Calls tether's own CSI services without a socket, for a front end that speaks another CO's
 * protocol (Docker's volume plugin API): each request is encoded and decoded with the proto's codec —
 * the handler sees exactly what grpc-js would hand it (defaults filled in, int64 as strings, enums
 * as names) — and goes through the one request pipeline (limits, validation, locks, its log line
 * and metrics, error mapping). Failures are CsiErrors with the code the spec names.
 */
export function inProcessCsi(services: ServiceSet, deps: PipelineDeps): InProcessCsi {
  const defs = loadCsiServices();
  const bounds = (timeoutMs: number) => ({ remainingMs: timeoutMs, onCancel: () => () => undefined });
  return {
    controller(method, request, timeoutMs) {
      const rpcs = services.Controller;
      if (!rpcs) throw new Error('this process serves no Controller service');
      const def = defs.Controller[method];
      return runCall(method, rpcs[method] as never, def.requestDeserialize(def.requestSerialize(request as never)), bounds(timeoutMs), deps);
    },
    node(method, request, timeoutMs) {
      const rpcs = services.Node;
      if (!rpcs) throw new Error('this process serves no Node service');
      const def = defs.Node[method];
      return runCall(method, rpcs[method] as never, def.requestDeserialize(def.requestSerialize(request as never)), bounds(timeoutMs), deps);
    },
  };
}
