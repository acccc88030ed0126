import { status, type sendUnaryData, type ServerUnaryCall, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { CsiError, deadline, toCsiError } from '../csi/errors.js';
import { boundMessage, clipForLog } from './limits.js';
import type { KeyedLocks, Lock } from './locks.js';
import type { MetricsSink } from './metrics-sink.js';
import type { CallContext, Rpc, ServiceSet } from './rpc.js';

export interface PipelineDeps {
  log: Logger;
  metrics: MetricsSink;
  locks: KeyedLocks;
  redact: (typeName: string, message: unknown) => unknown;
  /** Throws INVALID_ARGUMENT for a request field over its size limit (see limits.ts). */
  checkLimits: (typeName: string, message: unknown) => void;
  /** Upper bound for a call without a deadline of its own. */
  maxCallMs: number;
}

/** How a call can end before its handler settles: its time budget, and the client cancelling it. */
export interface CallBounds {
  /** The call's deadline, as ms from now (Infinity when the client set none). */
  remainingMs: number;
  /** Registers `cancel` for a client cancel; returns the function that unregisters it. */
  onCancel(cancel: () => void): () => void;
}

type AnyRpc = Rpc<unknown, unknown>;

/**
 * Wraps every RPC of a service in the one request pipeline (`runCall`). The table is typed from
 * the proto (see RpcTable), so every method of `definition` has its RPC.
 */
export function implementService(definition: ServiceDefinition, rpcs: NonNullable<ServiceSet[keyof ServiceSet]>, deps: PipelineDeps): UntypedServiceImplementation {
  const table = rpcs as unknown as Record<string, AnyRpc>;
  const impl: UntypedServiceImplementation = {};
  for (const method of Object.keys(definition)) {
    const rpc = table[method];
    if (!rpc) throw new Error(`no RPC for ${method}`); // unreachable while the tables are typed from the proto
    impl[method] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
      void runCall(method, rpc, call.request, boundsOf(call), deps).then(
        (res) => callback(null, res),
        (err: CsiError) => callback({ code: err.code, details: err.message }),
      );
    };
  }
  return impl;
}

/**
 * The request pipeline: size limits → validate → lock → handle (bounded by deadline and cancel) → map errors →
 * one log line → metrics. Exported so that handler tests go through exactly this path.
 */
export async function runCall<Req, Res>(method: string, rpc: Rpc<Req, Res>, req: Req, bounds: CallBounds, deps: PipelineDeps): Promise<Res> {
  const started = process.hrtime.bigint();
  const ending = new CallEnding();
  let key: string | undefined;
  let lock: Lock | undefined;
  let work: Promise<Res> | undefined;
  let failure: CsiError | undefined;
  try {
    deps.checkLimits(requestType(method), req);
    rpc.validate?.(req);
    key = rpc.lockKey?.(req);
    if (key !== undefined) lock = deps.locks.acquire(key, method);
    work = rpc.handle(req, new LazyCallContext(ending, deps.log, method, key));
    return await bounded(work, bounds, ending, deps.maxCallMs);
  } catch (err) {
    const known = toCsiError(err);
    failure = new CsiError(known.code, boundMessage(known.message));
    if (failure.code === status.INTERNAL) deps.log.error({ method, key, err }, 'unexpected error');
    throw failure;
  } finally {
    ending.end();
    if (lock) releaseWhenStopped(lock, work, method, key, started, deps.log);
    record(method, rpc.quiet, req, key, failure, Number(process.hrtime.bigint() - started) / 1e9, deps);
  }
}

/**
 * The end of a call as an AbortSignal, made only when a handler asks for it: most quiet calls
 * (Probe, capabilities) never do, and need no AbortController (nor the DOMException abort() makes).
 */
export class CallEnding {
  private controller: AbortController | undefined;
  private ended = false;

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.ended) this.controller.abort();
    }
    return this.controller.signal;
  }

  /** The call has ended (answered, failed, cancelled, out of time): the signal aborts, now or when made. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.controller?.abort();
  }
}

/** The handler's context: the signal and the call's child logger are made on first use (prototype getters: no closures per call). */
class LazyCallContext implements CallContext {
  private child: Logger | undefined;

  constructor(
    private readonly ending: CallEnding,
    private readonly parent: Logger,
    private readonly method: string,
    private readonly key: string | undefined,
  ) {}

  get signal(): AbortSignal {
    return this.ending.signal;
  }

  get log(): Logger {
    return (this.child ??= this.parent.child({ method: this.method, key: this.key }));
  }
}

/**
 * Releases a call's lock once its handler has settled: at once if it has, else when it does (the
 * call ended first: deadline or cancel), with a log line saying how long it ran on.
 */
function releaseWhenStopped(lock: Lock, work: Promise<unknown> | undefined, method: string, key: string | undefined, started: bigint, log: Logger): void {
  if (!work) return lock.release();
  let settled = false;
  const done = () => {
    settled = true;
    lock.release();
  };
  void work.then(done, done);
  queueMicrotask(() => {
    if (settled) return;
    lock.callEnded();
    const ended = process.hrtime.bigint();
    void work.then(
      () => undefined,
      () => undefined,
    ).then(() => log.warn({ method, key, msAfterEnd: Math.round(Number(process.hrtime.bigint() - ended) / 1e6), ms: Math.round(Number(process.hrtime.bigint() - started) / 1e6) }, `${method} stopped its work after its call had ended; its lock is free`));
  });
}

/** The call's log line and metrics. The line (its request redacted and clipped) is built only at a level that is logged. */
function record(method: string, quiet: boolean | undefined, req: unknown, key: string | undefined, failure: CsiError | undefined, seconds: number, deps: PipelineDeps): void {
  const code = failure?.code ?? status.OK;
  const codeName = status[code] ?? String(code);
  deps.metrics.calls.inc({ method, code: codeName });
  if (failure) deps.metrics.errors.inc({ method, code: codeName });
  deps.metrics.latency.observe({ method }, seconds);
  const level = failure ? 'warn' : quiet ? 'debug' : 'info';
  if (!deps.log.isLevelEnabled(level)) return;
  const line = { method, key, code: codeName, ms: Math.round(seconds * 1000), req: clipForLog(deps.redact(requestType(method), req)), error: failure?.message };
  deps.log[level](line, failure ? `${method} failed` : method);
}

const requestTypes = new Map<string, string>();
/** `csi.v1.<method>Request`, made once per method. */
function requestType(method: string): string {
  let name = requestTypes.get(method);
  if (name === undefined) requestTypes.set(method, (name = `csi.v1.${method}Request`));
  return name;
}

function boundsOf(call: ServerUnaryCall<unknown, unknown>): CallBounds {
  const callDeadline = call.getDeadline();
  const deadlineMs = callDeadline instanceof Date ? callDeadline.getTime() : callDeadline;
  return {
    remainingMs: Number.isFinite(deadlineMs) ? deadlineMs - Date.now() : Infinity,
    onCancel(cancel) {
      call.once('cancelled', cancel);
      return () => call.removeListener('cancelled', cancel);
    },
  };
}

/** Settles with the handler, or rejects when the client cancels or the deadline (or maxCallMs) passes. */
function bounded<T>(work: Promise<T>, bounds: CallBounds, ending: CallEnding, maxCallMs: number): Promise<T> {
  const budget = Math.max(0, Math.min(maxCallMs, bounds.remainingMs));
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      ending.end();
      reject(deadline(`the call did not finish within ${budget} ms; it was stopped and can be retried`));
    }, budget);
    const unregister = bounds.onCancel(() => {
      ending.end();
      reject(new CsiError(status.CANCELLED, 'the client cancelled the call'));
    });
    work.then(resolve, reject).finally(() => {
      clearTimeout(timer);
      unregister();
    });
  });
}
