// The request pipeline every RPC goes through (src/grpc/pipeline.ts): validate → lock → handle bounded
// by deadline and cancel → map errors → one log line → metrics. Exercised against the real driver, a
// real sshd and real sshfs; a hung backend is a real sshd frozen with SIGSTOP.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { credentials, loadPackageDefinition, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { CSI_PROTO, LOADER_OPTIONS } from '../../src/grpc/proto.js';
import { freePort, startSshServer, type SshServer } from '../support/sshd.js';
import { startDriver, type RunningDriver } from '../support/driver.js';
import { CSI_METHODS, csiClient, type CsiClient } from '../support/csi-client.js';
import { failure, mountCap, tearDown, timed, uniq } from '../support/helpers.js';

const CAPABILITY = mountCap('SINGLE_NODE_WRITER');
const SECRET = 'hunter2-SECRET';

let server: SshServer | undefined;
let driver: RunningDriver | undefined;
let client: CsiClient | undefined;
let metricsUrl: string;
let work: string;

function api(): CsiClient {
  if (!client) throw new Error('driver not started');
  return client;
}

const createRequest = (name: string, extra: object = {}) => ({ name, volume_capabilities: [CAPABILITY], capacity_range: { required_bytes: '1048576' }, ...extra });

/** The driver's JSON log lines from character offset `from` on. */
function logLines(from = 0): Record<string, any>[] {
  return driver!
    .logs()
    .slice(from)
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, any>);
}

/** Waits (bounded) until `predicate` holds for the log lines from `from` on: lines travel through a pipe. */
async function waitForLogs(from: number, predicate: (lines: Record<string, any>[]) => boolean, ms = 3000): Promise<Record<string, any>[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const lines = logLines(from);
    if (predicate(lines) || Date.now() > deadline) return lines;
    await sleep(25);
  }
}

/**
 * Where this test's log lines will start: the driver's output arrives through a pipe, so lines of the
 * previous test's last calls may still be on their way. Waits until the output has been quiet for 200 ms.
 */
async function logOffset(): Promise<number> {
  for (;;) {
    const length = driver!.logs().length;
    await sleep(200);
    if (driver!.logs().length === length) return length;
  }
}

/** Calls `fn` until it is not ABORTED (a lock still held by work that is stopping), for at most 20 s. */
async function retryWhileAborted<T>(fn: () => Promise<T>): Promise<{ value?: T; error?: ServiceError; ms: number }> {
  const t0 = performance.now();
  for (;;) {
    const result = await timed(fn);
    if (result.error?.code !== status.ABORTED || performance.now() - t0 > 20_000) return { ...result, ms: Math.round(performance.now() - t0) };
    await sleep(200);
  }
}

/** Freezes the server for the duration of `fn`, and always thaws it. */
async function whileFrozen<T>(fn: () => Promise<T>): Promise<T> {
  await server!.freeze();
  try {
    return await fn();
  } finally {
    await server!.thaw();
  }
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tether-pipeline-'));
  server = await startSshServer();
  const port = await freePort();
  metricsUrl = `http://127.0.0.1:${port}/metrics`;
  driver = await startDriver(server, { mode: 'all', metricsAddress: `127.0.0.1:${port}` });
  client = csiClient(driver.endpoint);
  // Warm up the controller's SFTP session, so a later freeze hangs an established connection.
  await api().CreateVolume(createRequest('warm-up'));
}, 60_000);

afterAll(async () => {
  await server?.thaw().catch(() => undefined);
  await tearDown({ work, drivers: [{ driver, csi: client }], servers: [server] });
}, 60_000);

describe('request pipeline', () => {
  it('(a) validates a request before looking anything up: random IDs with missing fields get INVALID_ARGUMENT', async () => {
    const randomId = uniq('no-such-volume');
    const publish = await failure(api().NodePublishVolume({ volume_id: randomId, staging_target_path: join(work, 'st'), volume_capability: CAPABILITY }));
    expect(publish.code).toBe(status.INVALID_ARGUMENT);
    expect(publish.details).toMatch(/target_path/);

    const stage = await failure(api().NodeStageVolume({ volume_id: randomId, staging_target_path: join(work, 'st') }));
    expect(stage.code).toBe(status.INVALID_ARGUMENT);
    expect(stage.details).toMatch(/volume_capability/);

    const unpublish = await failure(api().NodeUnpublishVolume({ volume_id: randomId }));
    expect(unpublish.code).toBe(status.INVALID_ARGUMENT);
    expect(unpublish.details).toMatch(/target_path/);

    const stats = await failure(api().NodeGetVolumeStats({ volume_id: randomId }));
    expect(stats.code).toBe(status.INVALID_ARGUMENT);

    const create = await failure(api().CreateVolume({ volume_capabilities: [CAPABILITY] }));
    expect(create.code).toBe(status.INVALID_ARGUMENT);
    expect(create.details).toMatch(/name/);

    // The same random ID with every field present passes validation and is then not found.
    const complete = await failure(api().NodePublishVolume({ volume_id: randomId, staging_target_path: join(work, 'st'), target_path: join(work, 'tg'), volume_capability: CAPABILITY }));
    expect(complete.code).toBe(status.NOT_FOUND);
  }, 30_000);

  it('(b) a second call on a volume while the first hangs gets ABORTED naming the operation in progress', async () => {
    const name = uniq('stuck-b');
    await whileFrozen(async () => {
      const first = timed(() => api().CreateVolume(createRequest(name), { deadlineMs: 5_000 }));
      await sleep(500);
      const second = await timed(() => api().CreateVolume(createRequest(name), { deadlineMs: 5_000 }));
      expect(second.error?.code).toBe(status.ABORTED);
      expect(second.error?.details).toMatch(/CreateVolume is already in progress/);
      expect(second.ms).toBeLessThan(1_000);

      // Any operation on the same volume is turned away the same way.
      const del = await failure(api().DeleteVolume({ volume_id: `box/${name}` }, { deadlineMs: 5_000 }));
      expect(del.code).toBe(status.ABORTED);
      expect(del.details).toMatch(/CreateVolume is already in progress/);

      // Validation still comes first, and needs no backend: instant even on a hung server.
      const invalid = await timed(() => api().CreateVolume({ name, volume_capabilities: [] }, { deadlineMs: 5_000 }));
      expect(invalid.error?.code).toBe(status.INVALID_ARGUMENT);
      expect(invalid.ms).toBeLessThan(1_000);

      const hung = await first;
      expect(hung.error?.code).toBe(status.DEADLINE_EXCEEDED);
    });
    // Thawed: once the first call's work has stopped, the volume can be made.
    const done = await retryWhileAborted(() => api().CreateVolume(createRequest(name), { deadlineMs: 30_000 }));
    expect(done.value?.volume.volume_id).toBe(`box/${name}`);
  }, 60_000);

  it('(c) a call past its deadline keeps its lock until its work has stopped: the retry hears so at once (ABORTED), and succeeds after thaw', async () => {
    const name = uniq('stuck-c');
    const t: number[] = [];
    await whileFrozen(async () => {
      const first = await timed(() => api().CreateVolume(createRequest(name), { deadlineMs: 2_000 }));
      expect(first.error?.code).toBe(status.DEADLINE_EXCEEDED);
      t.push(first.ms);
      // Its SFTP request is still out on the frozen server: a retry now would run beside it.
      const again = await timed(() => api().CreateVolume(createRequest(name), { deadlineMs: 2_000 }));
      expect(again.error?.code).toBe(status.ABORTED);
      expect(again.error?.details).toMatch(/CreateVolume for box\/stuck-c-\w+ ended [\d.]+ s ago but is still stopping its work; retry shortly/);
      expect(again.ms).toBeLessThan(1_000);
      t.push(again.ms);
    });
    // Thawed: the stalled request answers, the first call's handler sees its call ended and stops; the lock is free.
    const done = await retryWhileAborted(() => api().CreateVolume(createRequest(name), { deadlineMs: 30_000 }));
    expect(done.error).toBeUndefined();
    expect(done.value.volume.volume_id).toBe(`box/${name}`);
    console.log(`pipeline (c): deadline-bounded call on a frozen server ${t[0]} ms, the retry ABORTED in ${t[1]} ms; after thaw it succeeded in ${done.ms} ms`);
  }, 60_000);

  it('(d) a call the client cancelled keeps its lock until its work has stopped, then the retry succeeds', async () => {
    const name = uniq('stuck-d');
    const from = await logOffset();
    await whileFrozen(async () => {
      const cancel = new AbortController();
      const call = timed(() => api().CreateVolume(createRequest(name), { deadlineMs: 30_000, signal: cancel.signal }));
      await sleep(1_000);
      cancel.abort();
      const cancelled = await call;
      expect(cancelled.error?.code).toBe(status.CANCELLED);
      expect(cancelled.ms).toBeLessThan(2_000);
      // The server saw the cancellation: its log line for the call says so.
      const lines = await waitForLogs(from, (ls) => ls.some((l) => l.method === 'CreateVolume' && l.code === 'CANCELLED'));
      expect(lines.filter((l) => l.method === 'CreateVolume' && l.code === 'CANCELLED' && l.req?.name === name)).toHaveLength(1);

      const again = await timed(() => api().CreateVolume(createRequest(name), { deadlineMs: 2_000 }));
      expect(again.error?.code).toBe(status.ABORTED);
      expect(again.error?.details).toContain('still stopping its work');
    });
    const done = await retryWhileAborted(() => api().CreateVolume(createRequest(name), { deadlineMs: 30_000 }));
    expect(done.error).toBeUndefined();
    expect(done.value.volume.volume_id).toBe(`box/${name}`);
  }, 60_000);

  it('(e) secrets are never logged: values become [redacted]', async () => {
    const from = await logOffset();
    const secrets = { password: SECRET, token: `${SECRET}-2` };
    const name = uniq('secret-e');
    const created = await api().CreateVolume(createRequest(name, { secrets }));
    const id = created.volume.volume_id as string;
    const staging = join(work, `staging-${name}`);
    const target = join(work, `target-${name}`);
    try {
      await api().NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: CAPABILITY, secrets });
      await api().NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: CAPABILITY, secrets });
      // Failing calls log at warn, with the request: redacted too.
      const missing = await failure(api().NodeStageVolume({ volume_id: `box/${uniq('missing')}`, staging_target_path: join(work, uniq('staging-missing')), volume_capability: CAPABILITY, secrets }));
      expect(missing.code).toBe(status.NOT_FOUND);
      const bad = await failure(api().CreateVolume({ name: uniq('bad'), volume_capabilities: [CAPABILITY], parameters: { nope: 'x' }, secrets }));
      expect(bad.code).toBe(status.INVALID_ARGUMENT);
    } finally {
      await api().NodeUnpublishVolume({ volume_id: id, target_path: target }).catch(() => undefined);
      await api().NodeUnstageVolume({ volume_id: id, staging_target_path: staging }).catch(() => undefined);
    }
    await api().DeleteVolume({ volume_id: id, secrets });
    const lines = await waitForLogs(from, (ls) => ls.some((l) => l.method === 'DeleteVolume' && l.req?.volume_id === id));
    const withSecrets = lines.filter((l) => Object.keys(l.req?.secrets ?? {}).length > 0);
    expect(withSecrets.length).toBeGreaterThanOrEqual(6);
    for (const line of withSecrets) expect(line.req.secrets).toEqual({ password: '[redacted]', token: '[redacted]' });
    expect(driver!.logs().slice(from)).toContain('[redacted]');
    expect(driver!.logs()).not.toContain(SECRET);
    expect(driver!.logs()).not.toContain('hunter2');
  }, 60_000);

  it('(f) every call logs exactly one JSON line with its method and status code', async () => {
    const from = await logOffset();
    const name = uniq('log-f');
    const calls: [string, () => Promise<unknown>, string][] = [
      ['Probe', () => api().Probe(), 'OK'],
      ['GetPluginInfo', () => api().GetPluginInfo(), 'OK'],
      ['CreateVolume', () => api().CreateVolume(createRequest(name)), 'OK'],
      ['CreateVolume', () => api().CreateVolume(createRequest(name, { capacity_range: { required_bytes: '2097152', limit_bytes: '2097152' } })), 'ALREADY_EXISTS'],
      ['NodeGetVolumeStats', () => api().NodeGetVolumeStats({ volume_id: `box/${name}`, volume_path: join(work, 'nowhere') }), 'NOT_FOUND'],
      ['NodeUnstageVolume', () => api().NodeUnstageVolume({ volume_id: `box/${name}` }), 'INVALID_ARGUMENT'],
      ['ListVolumes', () => api().ListVolumes(), 'OK'],
      ['DeleteVolume', () => api().DeleteVolume({ volume_id: `box/${name}` }), 'OK'],
    ];
    for (const [, call] of calls) await call().catch(() => undefined);
    const lines = await waitForLogs(from, (ls) => ls.some((l) => l.method === 'DeleteVolume' && l.req?.volume_id === `box/${name}`));
    const callLines = lines.filter((l) => l.code !== undefined);
    expect(callLines.map((l) => [l.method, l.code])).toEqual(calls.map(([method, , code]) => [method, code]));
    for (const line of callLines) {
      expect(typeof line.ms).toBe('number');
      expect(typeof line.msg).toBe('string');
      expect(line.req).toBeDefined();
      if (line.code !== 'OK') expect(line.error).toMatch(/\S/);
    }
  }, 30_000);

  it('(g) serves Prometheus metrics: calls by method and code, errors by code, latency buckets', async () => {
    const name = uniq('metrics-g');
    await api().CreateVolume(createRequest(name));
    await api().CreateVolume(createRequest(name));
    await failure(api().CreateVolume({ name: uniq('bad'), volume_capabilities: [CAPABILITY], parameters: { nope: 'x' } }));
    await failure(api().NodeGetVolumeStats({ volume_id: `box/${name}`, volume_path: join(work, 'nowhere') }));
    await api().DeleteVolume({ volume_id: `box/${name}` });

    const res = await fetch(metricsUrl, { signal: AbortSignal.timeout(5_000) });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    const text = await res.text();
    const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
    expect(value(/^tether_csi_calls_total\{method="CreateVolume",code="OK"\} (\d+)$/m)).toBeGreaterThanOrEqual(2);
    expect(value(/^tether_csi_calls_total\{method="CreateVolume",code="INVALID_ARGUMENT"\} (\d+)$/m)).toBeGreaterThanOrEqual(1);
    expect(value(/^tether_csi_errors_total\{method="CreateVolume",code="INVALID_ARGUMENT"\} (\d+)$/m)).toBeGreaterThanOrEqual(1);
    expect(value(/^tether_csi_errors_total\{method="NodeGetVolumeStats",code="NOT_FOUND"\} (\d+)$/m)).toBeGreaterThanOrEqual(1);
    expect(text).not.toMatch(/^tether_csi_errors_total\{[^}]*code="OK"\}/m);
    // Earlier tests' hung calls are counted too.
    expect(value(/^tether_csi_errors_total\{method="CreateVolume",code="ABORTED"\} (\d+)$/m)).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(/^tether_csi_call_duration_seconds_bucket\{le="0\.005",method="CreateVolume"\} \d+$/m);
    expect(text).toMatch(/^tether_csi_call_duration_seconds_bucket\{le="\+Inf",method="CreateVolume"\} \d+$/m);
    expect(value(/^tether_csi_call_duration_seconds_count\{method="CreateVolume"\} (\d+)$/m)).toBeGreaterThanOrEqual(3);
    expect(text).toMatch(/^tether_csi_call_duration_seconds_sum\{method="CreateVolume"\} [\d.e+-]+$/m);
    expect(text).toMatch(/^tether_process_cpu_seconds_total /m);

    const notFound = await fetch(metricsUrl.replace(/\/metrics$/, '/other'), { signal: AbortSignal.timeout(5_000) });
    expect(notFound.status).toBe(404);
  }, 30_000);

  it('(h) every Identity, Controller, Node and GroupController RPC is implemented; services tether does not serve answer UNIMPLEMENTED', async () => {
    // Empty requests: each answers through its own handler (OK or a validation error), never UNIMPLEMENTED.
    for (const method of CSI_METHODS) {
      const code = await api()[method]({}, { deadlineMs: 10_000 }).then(
        () => status.OK,
        (err: ServiceError) => err.code,
      );
      expect([method, code]).not.toEqual([method, status.UNIMPLEMENTED]);
    }
    const pkg = loadPackageDefinition(loadSync(CSI_PROTO, LOADER_OPTIONS)) as any;
    const unary = (service: string, method: string, endpoint = driver!.endpoint) =>
      new Promise<{ code: number; details?: string; res?: any }>((resolve) => {
        const c = new pkg.csi.v1[service](endpoint, credentials.createInsecure());
        c[method]({}, new Metadata(), { deadline: Date.now() + 10_000 }, (err: ServiceError | null, res: unknown) => {
          c.close();
          resolve(err ? { code: err.code, details: err.details } : { code: status.OK, res });
        });
      });
    const groupCaps = await unary('GroupController', 'GroupControllerGetCapabilities');
    expect(groupCaps.code).toBe(status.OK);
    expect(groupCaps.res.capabilities.map((c: any) => c.rpc.type)).toContain('CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT');

    // SnapshotMetadata (server-streaming) is not served at all: grpc-js answers UNIMPLEMENTED itself.
    const metadata = await new Promise<number>((resolve) => {
      const c = new pkg.csi.v1.SnapshotMetadata(driver!.endpoint, credentials.createInsecure());
      const stream = c.GetMetadataAllocated({}, new Metadata(), { deadline: Date.now() + 10_000 });
      stream.on('data', () => undefined);
      stream.on('error', (err: ServiceError) => {
        c.close();
        resolve(err.code);
      });
      stream.on('end', () => {
        c.close();
        resolve(status.OK);
      });
    });
    expect(metadata).toBe(status.UNIMPLEMENTED);

    // A node-only plugin serves neither Controller nor GroupController.
    const nodeOnly = await startDriver(server!, { mode: 'node', nodeId: 'node-h' });
    try {
      expect((await unary('Controller', 'CreateVolume', nodeOnly.endpoint)).code).toBe(status.UNIMPLEMENTED);
      expect((await unary('GroupController', 'GroupControllerGetCapabilities', nodeOnly.endpoint)).code).toBe(status.UNIMPLEMENTED);
      expect((await unary('Node', 'NodeGetCapabilities', nodeOnly.endpoint)).code).toBe(status.OK);
      const caps = await unary('Identity', 'GetPluginCapabilities', nodeOnly.endpoint);
      expect(caps.res.capabilities.some((c: any) => c.service?.type === 'CONTROLLER_SERVICE')).toBe(false);
    } finally {
      await nodeOnly.stop();
    }
  }, 60_000);
});
