import { status, type sendUnaryData, type ServerUnaryCall, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { CsiError, deadline, toCsiError } from './errors.js';
import type { KeyedLocks } from './locks.js';
import type { Metrics } from '../metrics.js';

/** What a handler gets besides its request. */
export interface CallContext {
  /** Aborted when the client cancels or the call's deadline passes: pass it on to external commands. */
  signal: AbortSignal;
  log: Logger;
}

/**
 * One RPC: `validate` checks the request's own fields (before any lookup, so random IDs with missing
 * fields get INVALID_ARGUMENT), `lockKey` names the volume or snapshot it works on, `handle` does it.
 */
export interface Rpc<Req = any, Res = any> {
  validate?(req: Req): void;
  lockKey?(req: Req): string | undefined;
  handle(req: Req, ctx: CallContext): Promise<Res>;
  /** Quiet calls (Probe, capability queries) log at debug level: probes come every few seconds. */
  quiet?: boolean;
}

export interface PipelineDeps {
  log: Logger;
  metrics: Metrics;
  locks: KeyedLocks;
  redact: (typeName: string, message: unknown) => unknown;
  /** Upper bound for a call without a deadline of its own. */
  maxCallMs: number;
}

/**
 * Wraps every RPC of a service in the one request pipeline:
 * validate → lock → handle (bounded by deadline and cancel) → map errors → one log line → metrics.
 * Methods the service does not implement answer UNIMPLEMENTED through the same pipeline.
 */
export function implementService(
  definition: ServiceDefinition,
  rpcs: Record<string, Rpc>,
  deps: PipelineDeps,
): UntypedServiceImplementation {
  const impl: UntypedServiceImplementation = {};
  for (const method of Object.keys(definition)) {
    const rpc = rpcs[method] ?? unimplemented(method);
    impl[method] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
      void runCall(method, rpc, call, deps).then(
        (res) => callback(null, res),
        (err: CsiError) => callback({ code: err.code, details: err.message }),
      );
    };
  }
  return impl;
}

async function runCall(method: string, rpc: Rpc, call: ServerUnaryCall<unknown, unknown>, deps: PipelineDeps): Promise<unknown> {
  const started = process.hrtime.bigint();
  const req = call.request;
  const controller = new AbortController();
  let key: string | undefined;
  let release: (() => void) | undefined;
  let code = status.OK;
  let failure: CsiError | undefined;
  try {
    rpc.validate?.(req);
    key = rpc.lockKey?.(req);
    if (key !== undefined) release = deps.locks.acquire(key, method);
    return await bounded(rpc.handle(req, { signal: controller.signal, log: deps.log.child({ method, key }) }), call, controller, deps.maxCallMs);
  } catch (err) {
    failure = toCsiError(err);
    code = failure.code;
    if (failure.code === status.INTERNAL) deps.log.error({ method, key, err }, 'unexpected error');
    throw failure;
  } finally {
    release?.();
    controller.abort();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const codeName = status[code] ?? String(code);
    deps.metrics.calls.inc({ method, code: codeName });
    if (code !== status.OK) deps.metrics.errors.inc({ method, code: codeName });
    deps.metrics.latency.observe({ method }, seconds);
    const line = { method, key, code: codeName, ms: Math.round(seconds * 1000), req: deps.redact(`csi.v1.${method}Request`, req), error: failure?.message };
    if (code !== status.OK) deps.log.warn(line, `${method} failed`);
    else if (rpc.quiet) deps.log.debug(line, method);
    else deps.log.info(line, method);
  }
}

/** Settles with the handler, or rejects when the client cancels or the deadline (or maxCallMs) passes. */
function bounded<T>(work: Promise<T>, call: ServerUnaryCall<unknown, unknown>, controller: AbortController, maxCallMs: number): Promise<T> {
  const callDeadline = call.getDeadline();
  const deadlineMs = callDeadline instanceof Date ? callDeadline.getTime() : callDeadline;
  const budget = Math.max(0, Math.min(maxCallMs, Number.isFinite(deadlineMs) ? deadlineMs - Date.now() : maxCallMs));
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      controller.abort();
      reject(deadline(`the call did not finish within ${budget} ms; it was stopped and can be retried`));
    }, budget);
    const onCancel = () => {
      controller.abort();
      reject(new CsiError(status.CANCELLED, 'the client cancelled the call'));
    };
    call.once('cancelled', onCancel);
    work.then(resolve, reject).finally(() => {
      clearTimeout(timer);
      call.removeListener('cancelled', onCancel);
    });
  });
}

function unimplemented(method: string): Rpc {
  return {
    quiet: true,
    handle: async () => {
      throw new CsiError(status.UNIMPLEMENTED, `${method} is not supported by tether`);
    },
  };
}
