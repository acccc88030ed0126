import { lstat } from 'node:fs/promises';
import http from 'node:http';
import { credentials, status, type ServiceError } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { httpUrl, listenOn } from '../util/listen.js';
import { boundMessage } from './limits.js';
import { loadIdentityClient } from './proto.js';

/**
 * tether's own /healthz (what the livenessprobe sidecar does otherwise): a fresh gRPC connection to
 * tether's CSI socket and an Identity Probe. That proves the socket file is in place and that the
 * server and the event loop answer — and nothing more: Probe never touches a backend or a mount, so a
 * hung storage server cannot make the kubelet restart a healthy plugin.
 */

/** How long a Probe may take before the check fails. */
export const PROBE_TIMEOUT_MS = 3000;

export type HealthResult = { ok: true } | { ok: false; reason: string };

const failed = (reason: string): HealthResult => ({ ok: false, reason: boundMessage(reason) });

type IdentityClientConstructor = ReturnType<typeof loadIdentityClient>;

/**
 * One check of the CSI socket: it must be a socket, accept a new connection and answer Probe within
 * `timeoutMs` with ready (or no readiness: the spec reads that as ready).
 */
export async function probeCsiSocket(socketPath: string, timeoutMs: number, Identity: IdentityClientConstructor): Promise<HealthResult> {
  const stats = await lstat(socketPath).catch((err: NodeJS.ErrnoException) => err.code ?? 'unreadable');
  if (typeof stats === 'string') return failed(stats === 'ENOENT' ? `the CSI socket ${socketPath} is missing` : `the CSI socket ${socketPath} cannot be inspected: ${stats}`);
  if (!stats.isSocket()) return failed(`${socketPath} is not a socket`);
  // A new channel each time (no reuse of a connection made before the socket file went away).
  const client = new Identity(`unix://${socketPath}`, credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 * 1024, 'grpc.enable_retries': 0 });
  try {
    const res = await new Promise<{ ready?: { value?: boolean } | null }>((resolve, reject) =>
      client.Probe({}, { deadline: Date.now() + timeoutMs }, (err: ServiceError | null, value) => (err || !value ? reject(err ?? new Error('no response')) : resolve(value))),
    );
    if (res.ready && res.ready.value === false) return failed('Probe answered not ready');
    return { ok: true };
  } catch (err) {
    const e = err as Partial<ServiceError>;
    const code = e.code === undefined ? '' : `${status[e.code] ?? e.code}: `;
    return failed(`Probe on ${socketPath} failed: ${code}${e.details ?? e.message ?? String(err)}`);
  } finally {
    client.close();
  }
}

/** `fn`, but at most one run at a time: callers while one runs share its result. */
export function shared<T>(fn: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | undefined;
  return () =>
    (running ??= fn().finally(() => {
      running = undefined;
    }));
}

/** The HTTP side: GET (or HEAD) /healthz → 200 "ok" or 503 and the reason; any other path 404. */
export function healthHandler(check: () => Promise<HealthResult>): http.RequestListener {
  return (req, res) => {
    const pathname = (req.url ?? '').split('?')[0];
    if (pathname !== '/healthz') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try GET /healthz');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD' }).end('only GET and HEAD');
      return;
    }
    check().then(
      (result) => (result.ok ? res.writeHead(200, { 'content-type': 'text/plain' }).end('ok') : res.writeHead(503, { 'content-type': 'text/plain' }).end(result.reason)),
      (err: Error) => res.writeHead(503, { 'content-type': 'text/plain' }).end(boundMessage(`the health check failed: ${err.message}`)),
    );
  };
}

/** Logs when health changes (not every probe): a warning with the reason when it fails, info when it is back. */
function logChanges(check: () => Promise<HealthResult>, log: Logger): () => Promise<HealthResult> {
  let last: HealthResult = { ok: true };
  return async () => {
    const result = await check();
    if (!result.ok && (last.ok || last.reason !== result.reason)) log.warn({ event: 'health', reason: result.reason }, 'the health check fails');
    if (result.ok && !last.ok) log.info({ event: 'health' }, 'the health check passes again');
    last = result;
    return result;
  };
}

/**
 * Serves /healthz on a HOST:PORT address for the CSI socket at `socketPath`. Bounded: one probe in
 * flight at a time (shared by concurrent requests), few connections, short request timeouts.
 */
export async function serveHealth(address: string, socketPath: string, log: Logger, timeoutMs = PROBE_TIMEOUT_MS): Promise<{ server: http.Server; url: string }> {
  const Identity = loadIdentityClient();
  const check = shared(logChanges(() => probeCsiSocket(socketPath, timeoutMs, Identity), log));
  const server = http.createServer({ maxHeaderSize: 8192, requestTimeout: 10_000, headersTimeout: 5000, keepAliveTimeout: 5000 }, healthHandler(check));
  server.maxConnections = 32;
  const { host, port } = await listenOn(server, address);
  return { server, url: httpUrl(host, port, '/healthz') };
}
