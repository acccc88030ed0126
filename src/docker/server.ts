import { chmod, mkdir } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import path from 'node:path';
import type { Logger } from 'pino';
import type { MetricsSink } from '../grpc/metrics-sink.js';
import { bindSocket, removeIfSame, socketAnswers } from '../util/unix-socket.js';
import type { DockerVolumeDriver } from './driver.js';
import { toCsiError } from '../csi/errors.js';
import { asDockerError, DockerError } from './messages.js';
import { DockerOptionError } from './options.js';

/** Docker's requests are a name and a few options; anything near this is not Docker. */
const MAX_BODY_BYTES = 64 * 1024;
const CONTENT_TYPE = 'application/vnd.docker.plugins.v1+json';

type Body = Record<string, unknown>;
type Call = (body: Body) => Promise<Body>;

/** The calls of Docker's volume plugin protocol (HTTP POST, JSON in and out). Errors go back as `Err`, with HTTP 200, as the protocol asks. */
function routes(driver: DockerVolumeDriver, onActivate: () => void): Record<string, Call> {
  const name = (b: Body) => b.Name as string;
  return {
    '/Plugin.Activate': async () => {
      onActivate();
      return { Implements: ['VolumeDriver'] };
    },
    '/VolumeDriver.Capabilities': async () => ({ Capabilities: { Scope: 'global' } }),
    '/VolumeDriver.Create': async (b) => (await driver.create(name(b), b.Opts as Body | undefined), {}),
    '/VolumeDriver.Remove': async (b) => (await driver.remove(name(b)), {}),
    '/VolumeDriver.Mount': async (b) => ({ Mountpoint: await driver.mount(name(b), b.ID as string) }),
    '/VolumeDriver.Unmount': async (b) => (await driver.unmount(name(b), b.ID as string), {}),
    '/VolumeDriver.Path': async (b) => ({ Mountpoint: await driver.path(name(b)) }),
    '/VolumeDriver.Get': async (b) => ({ Volume: await driver.get(name(b)) }),
    '/VolumeDriver.List': async () => ({ Volumes: await driver.list() }),
  };
}

/** Calls Docker makes all the time (every `docker volume ls`, inspect, run): logged at debug level. */
const QUIET = new Set(['/VolumeDriver.Get', '/VolumeDriver.List', '/VolumeDriver.Path', '/VolumeDriver.Capabilities']);

export interface DockerServer {
  socketPath: string;
  /** Stops serving and removes the socket (if it is still this process's). Synchronous: it runs on the way out. */
  close(): void;
}

export interface DockerServerOptions {
  socketPath: string;
  driver: DockerVolumeDriver;
  /** Docker activated the plugin: it (re)started, and may have left mounts it will never unmount. */
  onActivate(): void;
  metrics: MetricsSink;
  log: Logger;
}

/**
 * Serves Docker's volume plugin protocol on a unix socket in /run/docker/plugins/, where every
 * dockerd on the host looks for plugins by name. A socket a killed plugin left there is replaced; one
 * that answers is another plugin's, and this one does not start.
 */
export async function serveDocker(options: DockerServerOptions): Promise<DockerServer> {
  const { socketPath, log } = options;
  if (await socketAnswers(socketPath)) throw new Error(`another process serves ${socketPath}: one tether Docker plugin per host (stop the other, or give this one another --docker-plugin-name)`);
  await mkdir(path.dirname(socketPath), { recursive: true, mode: 0o755 });
  const table = routes(options.driver, options.onActivate);
  const server = createServer({ requestTimeout: 150_000, headersTimeout: 10_000 }, (req, res) => void answer(req, res, table, options));
  const ours = await bindSocket(
    socketPath,
    'Docker plugin socket',
    async (at) => {
      await listen(server, at);
      await chmod(at, 0o600); // root's, as dockerd is
    },
    () => server.close(),
  );
  log.info({ socket: socketPath }, 'serving the Docker volume plugin protocol');
  return {
    socketPath,
    close() {
      server.close();
      server.closeAllConnections();
      const problem = removeIfSame(socketPath, ours);
      if (problem) log.warn({ socket: socketPath, err: problem }, 'could not remove the Docker plugin socket');
    },
  };
}

function listen(server: Server, at: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(at, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
}

/** One call: its body read (bounded) and parsed, routed, answered; one log line and the metrics. */
async function answer(req: IncomingMessage, res: ServerResponse, table: Record<string, Call>, { metrics, log }: DockerServerOptions): Promise<void> {
  const started = process.hrtime.bigint();
  const route = req.url ?? '';
  let code = 'OK';
  let httpStatus = 200;
  let reply: Body;
  let body: Body = {};
  const call = req.method === 'POST' ? table[route] : undefined;
  const method = call ? route.slice(1) : 'unknown'; // a metrics label: never the caller's text
  if (!call) {
    code = 'UNIMPLEMENTED';
    httpStatus = 404;
    reply = { Err: `tether's Docker plugin has no ${String(req.method).slice(0, 16)} ${route.slice(0, 100)}: it answers POST ${Object.keys(table).join(', ')}` };
  } else {
    try {
      body = await readBody(req);
      reply = { ...(await call(body)), Err: '' };
    } catch (err) {
      // Anything else (a backend that does not answer, say) goes through the CSI side's mapping: UNAVAILABLE, never a stack.
      const known = err instanceof DockerError || err instanceof DockerOptionError ? err : asDockerError(toCsiError(err));
      code = known instanceof DockerError ? known.code : 'INVALID_ARGUMENT';
      if (code === 'INTERNAL') log.error({ call: method, err: known.message }, 'unexpected error');
      reply = { Err: firstLine(known) };
    }
  }
  send(res, httpStatus, reply);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  metrics.calls.inc({ method, code });
  if (code !== 'OK') metrics.errors.inc({ method, code });
  metrics.latency.observe({ method }, seconds);
  const level = code !== 'OK' ? 'warn' : QUIET.has(route) ? 'debug' : 'info';
  if (log.isLevelEnabled(level)) log[level]({ call: method, volume: body.Name, mountId: body.ID, code, ms: Math.round(seconds * 1000), error: reply.Err || undefined }, method);
}

async function readBody(req: IncomingMessage): Promise<Body> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new DockerOptionError(`the request body is over ${MAX_BODY_BYTES} bytes: not a Docker volume plugin call`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (!text) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new DockerOptionError('the request body is not JSON');
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new DockerOptionError('the request body must be a JSON object');
  return parsed as Body;
}

function send(res: ServerResponse, status: number, body: Body): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': CONTENT_TYPE, 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

const firstLine = (err: unknown) => String((err as Error)?.message ?? err).split('\n', 1)[0]!.slice(0, 1000);
