import { chmod, mkdir, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import path from 'node:path';
import { Server, ServerCredentials, status, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { toCsiError } from '../csi/errors.js';
import { boundMessage } from '../grpc/limits.js';
import { loadKeeperService, type MountKeeperHandlers } from './protocol.js';
import type { KeeperService } from './service.js';

/** No keeper call runs longer than this, whatever deadline its client set (a mount is bounded at 30 s by the mounter). */
const MAX_CALL_MS = 120_000;

/**
 * Serves the keeper on a unix socket only its owner (root) may use: the socket's directory is made
 * 0700 (the flag names a directory of the keeper's own) and the socket 0600. A socket that another
 * keeper still answers on is never taken over; a stale one (a crashed keeper's) is replaced.
 */
export async function serveKeeper(socketPath: string, service: KeeperService, log: Logger): Promise<Server> {
  const dir = path.dirname(socketPath);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  if (await answers(socketPath)) throw new Error(`another mount keeper serves at ${socketPath} already; stop it first`);
  await rm(socketPath, { force: true });
  const server = new Server({ 'grpc.max_receive_message_length': 1024 * 1024 });
  server.addService(loadKeeperService().service, handlers(service, log));
  await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${socketPath}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  await chmod(socketPath, 0o600);
  return server;
}

function handlers(service: KeeperService, log: Logger): MountKeeperHandlers {
  return {
    Mount: unary('Mount', log, (req) => ({ volume: req.volume_id, target: req.target, readonly: req.readonly, flags: req.mount_flags }), (req, signal, l) => service.mount(req, signal, l)),
    Unmount: unary('Unmount', log, (req) => ({ target: req.target }), (req, signal, l) => service.unmount(req.target, signal, l)),
    Fence: unary('Fence', log, (req) => ({ target: req.target }), (req, signal, l) => service.fence(req.target, signal, l)),
    List: unary('List', log, (req) => ({ probe: req.probe }), async (req, signal) => ({ mounts: await service.list(req.probe, signal) }), true),
    Health: unary('Health', log, () => ({}), () => service.health(), true),
  };
}

/**
 * One call: bounded by the client's cancel and MAX_CALL_MS (the signal stops the programs the work
 * runs), errors answered as gRPC statuses with a bounded one-line message, one log line — requests
 * carry no secret, so they are logged as they are (cut). `quiet` calls (List, Health: the node plugin
 * asks every few seconds) log at debug level when they succeed.
 */
function unary<Req, Res>(method: string, log: Logger, fields: (req: Req) => object, work: (req: Req, signal: AbortSignal, log: Logger) => Promise<Res>, quiet = false) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
    const controller = new AbortController();
    const abort = () => controller.abort();
    call.once('cancelled', abort);
    const timer = setTimeout(abort, MAX_CALL_MS);
    const started = performance.now();
    const line = { method, ...clip(fields(call.request)) };
    work(call.request, controller.signal, log.child({ method }))
      .then(
        (res) => {
          callback(null, res);
          (quiet ? log.debug : log.info).call(log, { ...line, code: 'OK', ms: Math.round(performance.now() - started) }, method);
        },
        (err: unknown) => {
          const e = toCsiError(err);
          const details = boundMessage(e.message);
          callback({ code: e.code, details });
          log.warn({ ...line, code: status[e.code], ms: Math.round(performance.now() - started), error: details }, `${method} failed`);
        },
      )
      .finally(() => {
        clearTimeout(timer);
        call.removeListener('cancelled', abort);
      });
  };
}

/** Request fields for a log line: strings cut at 256 characters, lists at 32 items. */
function clip(fields: object): Record<string, unknown> {
  const cut = (v: unknown): unknown => (typeof v === 'string' && v.length > 256 ? `${v.slice(0, 256)}…` : Array.isArray(v) ? v.slice(0, 32).map(cut) : v);
  return Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, cut(v)]));
}

/** True if something accepts connections on the socket now. */
function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection(socketPath);
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.setTimeout(1000, () => done(false));
  });
}
