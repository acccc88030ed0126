// src/grpc/health.ts: /healthz answers from a Probe over a fresh connection to tether's own CSI socket —
// 200 "ok", or 503 and why, within the probe's timeout; one probe at a time however many ask.
import { link, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Server } from '@grpc/grpc-js';
import { pino } from 'pino';
import { healthHandler, probeCsiSocket, serveHealth, shared, type HealthResult } from '../../src/grpc/health.js';
import { buildRequestLimits } from '../../src/grpc/limits.js';
import { KeyedLocks } from '../../src/grpc/locks.js';
import { Metrics } from '../../src/grpc/metrics.js';
import { loadCsiRoot, loadIdentityClient } from '../../src/grpc/proto.js';
import { buildRedactor } from '../../src/grpc/redact.js';
import { serve } from '../../src/grpc/server.js';
import { identityService } from '../../src/identity.js';
import { httpUrl, listenOn } from '../../src/util/listen.js';

const quiet = pino({ level: 'silent' });
const root = loadCsiRoot();
const Identity = loadIdentityClient();

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tether-health-unit-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const socketIn = (name: string) => path.join(dir, `${name}-${Math.random().toString(36).slice(2, 8)}.sock`);

/** tether's real CSI server (Identity only) on a new socket; `probe` replaces the Probe answer. */
async function csiServer(probe?: () => Promise<{ ready?: { value: boolean } }>): Promise<{ socket: string; server: Server }> {
  const socket = socketIn('csi');
  const identity = identityService('tether.csi.dev', false);
  if (probe) identity.Probe = { quiet: true, handle: probe };
  const server = await serve(socket, { Identity: identity }, { log: quiet, metrics: new Metrics(), locks: new KeyedLocks(), redact: buildRedactor(root).redact, checkLimits: buildRequestLimits(root), maxCallMs: 60_000 });
  return { socket, server };
}

/** A listener that accepts connections and never says a word (a server whose event loop is stuck, as far as a client can tell). */
async function silentListener(): Promise<{ socket: string; close(): Promise<void> }> {
  const socket = socketIn('silent');
  const held: Socket[] = [];
  const server: NetServer = createServer((c) => void held.push(c));
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return { socket, close: () => new Promise<void>((resolve) => (held.forEach((c) => c.destroy()), server.close(() => resolve()))) };
}

describe('probeCsiSocket', () => {
  test('a live tether answers ready: ok', async () => {
    const { socket, server } = await csiServer();
    try {
      expect(await probeCsiSocket(socket, 3000, Identity)).toEqual({ ok: true });
    } finally {
      server.forceShutdown();
    }
  });

  test.each<[string, () => Promise<{ socket: string; done(): Promise<void> }>, RegExp]>([
    ['the socket file is gone', async () => ({ socket: socketIn('gone'), done: async () => undefined }), /^the CSI socket \S+gone-\w+\.sock is missing$/],
    ['a regular file where the socket was', async () => {
      const socket = socketIn('file');
      await writeFile(socket, '');
      return { socket, done: async () => undefined };
    }, /^\S+file-\w+\.sock is not a socket$/],
    ['a socket nobody listens on (a dead process\'s)', async () => {
      const live = await silentListener();
      const socket = socketIn('stale');
      await link(live.socket, socket);
      await live.close();
      return { socket, done: async () => undefined };
    }, /^Probe on \S+stale-\w+\.sock failed: UNAVAILABLE: .*ECONNREFUSED/],
    ['Probe answers not ready', async () => {
      const { socket, server } = await csiServer(async () => ({ ready: { value: false } }));
      return { socket, done: async () => server.forceShutdown() };
    }, /^Probe answered not ready$/],
  ])('%s: fails, saying so in one line', async (_, make, reason) => {
    const { socket, done } = await make();
    try {
      const result = await probeCsiSocket(socket, 3000, Identity);
      expect(result.ok).toBe(false);
      expect(!result.ok && result.reason).toMatch(reason);
    } finally {
      await done();
    }
  });

  test('a server that accepts but never answers fails with DEADLINE_EXCEEDED once the timeout has passed, not later', async () => {
    const silent = await silentListener();
    try {
      const started = performance.now();
      const result = await probeCsiSocket(silent.socket, 500, Identity);
      const ms = performance.now() - started;
      expect(!result.ok && result.reason).toMatch(/failed: DEADLINE_EXCEEDED/);
      expect(ms).toBeGreaterThanOrEqual(450);
      expect(ms).toBeLessThan(2000);
    } finally {
      await silent.close();
    }
  });
});

describe('shared: at most one run in flight', () => {
  test('concurrent callers share one run; the next call after it settles runs again', async () => {
    let runs = 0;
    let release!: () => void;
    const check = shared(() => {
      runs += 1;
      return new Promise<number>((resolve) => (release = () => resolve(runs)));
    });
    const waiting = Array.from({ length: 10 }, () => check());
    expect(runs).toBe(1);
    release();
    expect(await Promise.all(waiting)).toEqual(Array(10).fill(1));
    const next = check();
    expect(runs).toBe(2);
    release();
    expect(await next).toBe(2);
  });

  test('a failure is shared too, and does not stick', async () => {
    let runs = 0;
    const check = shared(async () => {
      runs += 1;
      if (runs === 1) throw new Error('boom');
      return 'fine';
    });
    await expect(Promise.all([check(), check()])).rejects.toThrow('boom');
    expect(await check()).toBe('fine');
    expect(runs).toBe(2);
  });
});

describe('healthHandler: the HTTP answers', () => {
  let server: http.Server;
  let base: string;
  let result: HealthResult = { ok: true };
  beforeAll(async () => {
    server = http.createServer(healthHandler(async () => result));
    const { host, port } = await listenOn(server, '127.0.0.1:0');
    base = httpUrl(host, port, '');
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  test.each<[string, string, HealthResult, number, string]>([
    ['GET /healthz, healthy', 'GET /healthz', { ok: true }, 200, 'ok'],
    ['GET /healthz with a query', 'GET /healthz?verbose=1', { ok: true }, 200, 'ok'],
    ['GET /healthz, failing', 'GET /healthz', { ok: false, reason: 'the CSI socket /csi/csi.sock is missing' }, 503, 'the CSI socket /csi/csi.sock is missing'],
    ['another path', 'GET /metrics', { ok: true }, 404, 'not found: try GET /healthz'],
    ['a path below it', 'GET /healthz/x', { ok: true }, 404, 'not found: try GET /healthz'],
    ['the root', 'GET /', { ok: true }, 404, 'not found: try GET /healthz'],
    ['POST /healthz', 'POST /healthz', { ok: true }, 405, 'only GET and HEAD'],
  ])('%s', async (_, request, health, code, body) => {
    result = health;
    const [method, url] = request.split(' ');
    const res = await fetch(`${base}${url}`, { method });
    expect({ code: res.status, body: await res.text() }).toEqual({ code, body });
  });
});

describe('serveHealth: the whole thing on a real socket', () => {
  test('ten concurrent requests share one Probe; the socket gone is a 503 at once, with the reason', async () => {
    let probes = 0;
    const { socket, server } = await csiServer(async () => {
      probes += 1;
      await new Promise((r) => setTimeout(r, 300));
      return { ready: { value: true } };
    });
    const health = await serveHealth('127.0.0.1:0', socket, quiet);
    try {
      const answers = await Promise.all(Array.from({ length: 10 }, () => fetch(health.url).then(async (r) => [r.status, await r.text()])));
      expect(answers).toEqual(Array(10).fill([200, 'ok']));
      expect(probes).toBe(1);
      await rm(socket);
      const started = performance.now();
      const res = await fetch(health.url);
      expect({ code: res.status, body: await res.text() }).toEqual({ code: 503, body: `the CSI socket ${socket} is missing` });
      expect(performance.now() - started).toBeLessThan(1000);
      expect(probes).toBe(1);
    } finally {
      server.forceShutdown();
      await new Promise<void>((resolve) => health.server.close(() => resolve()));
    }
  });
});
