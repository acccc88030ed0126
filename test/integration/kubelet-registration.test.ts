// tether as its own node-driver-registrar and livenessprobe: the real driver (dist/src/main.js, node
// mode, a real sshd as its backend) serves the kubelet's plugin registration in a temporary
// "plugins_registry" directory and /healthz. This test acts as the kubelet: it dials
// <dir>/tether.csi.dev-reg.sock with grpc-js (sending the :authority the kubelet's grpc-go sends),
// calls GetInfo and NotifyRegistrationStatus, kills and restarts tether (the stale socket is replaced),
// and checks the socket goes on SIGTERM — while a file that is not a socket at that path is never
// removed and stops the start. /healthz: 200 while the storage server hangs (a health check must never
// touch a backend), 503 with the reason when the CSI socket is gone or does not answer, within the
// probe's timeout.
import { lstat, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import { startDriver, waitForLog, logLines, type RunningDriver } from '../support/driver.js';
import { kubeletClient } from '../support/kubelet.js';
import { startSshServer, type SshServer } from '../support/sshd.js';

const DRIVER = 'tether.csi.dev';
const HOST_ENDPOINT = `/var/lib/kubelet/plugins/${DRIVER}/csi.sock`;
/** tether's probe timeout (src/grpc/health.ts), and what the test allows on top of it. */
const PROBE_TIMEOUT_MS = 3000;
const SLACK_MS = 1500;

let server: SshServer | undefined;
let registry: string;
let regSocket: string;
const drivers: RunningDriver[] = [];

/** tether in node mode, registering in `registry`, serving /healthz on a port of its choosing. */
async function startNode(extra: string[] = []): Promise<{ driver: RunningDriver; healthUrl: string }> {
  const driver = await startDriver(server!, { mode: 'node', nodeId: 'node-a', extraArgs: ['--kubelet-registration-dir', registry, '--health-address', '127.0.0.1:0', ...extra] });
  drivers.push(driver);
  const serving = await waitForLog(driver, (l) => l.msg === 'tether is serving');
  expect(serving.registration).toBe(regSocket);
  return { driver, healthUrl: serving.health as string };
}

const get = async (url: string) => {
  const started = performance.now();
  const res = await fetch(url);
  return { code: res.status, body: await res.text(), ms: performance.now() - started };
};
const isSocket = (p: string) => lstat(p).then((s) => s.isSocket(), () => false);

beforeAll(async () => {
  server = await startSshServer();
  registry = await mkdtemp(path.join(os.tmpdir(), 'tether-plugins-registry-'));
  regSocket = path.join(registry, `${DRIVER}-reg.sock`);
}, 30_000);

afterAll(async () => {
  for (const d of drivers) await d.stop().catch(() => undefined);
  await server?.stop().catch(() => undefined);
  if (registry) await rm(registry, { recursive: true, force: true });
}, 30_000);

describe('the kubelet registers tether through <plugins_registry>/tether.csi.dev-reg.sock', () => {
  let driver: RunningDriver;
  let healthUrl: string;

  beforeAll(async () => {
    ({ driver, healthUrl } = await startNode(['--kubelet-registration-path', HOST_ENDPOINT]));
  }, 60_000);

  test('the socket is in the directory, alone (no temporary name left behind)', async () => {
    expect(await readdir(registry)).toEqual([`${DRIVER}-reg.sock`]);
    expect(await isSocket(regSocket)).toBe(true);
  });

  test.each<[string, boolean]>([
    ['the kubelet\'s :authority (the percent-encoded socket path)', true],
    ['grpc-js\' default :authority (localhost)', false],
  ])('GetInfo, dialled with %s: a CSIPlugin named tether.csi.dev, at the host\'s endpoint, speaking 1.0.0', async (_, asKubelet) => {
    const client = kubeletClient(regSocket, asKubelet ? encodeURIComponent(regSocket) : undefined);
    try {
      expect(await client.getInfo()).toEqual({ type: 'CSIPlugin', name: DRIVER, endpoint: HOST_ENDPOINT, supported_versions: ['1.0.0'] });
    } finally {
      client.close();
    }
  });

  test('NotifyRegistrationStatus: "registered" is logged at info, a refusal at error with the kubelet\'s reason', async () => {
    const client = kubeletClient(regSocket);
    try {
      await client.notify({ plugin_registered: true });
      const reason = 'RegisterPlugin error -- plugin registration failed with err: error updating CSINode: timed out';
      await client.notify({ plugin_registered: false, error: reason });
      const registered = await waitForLog(driver, (l) => l.event === 'kubelet-registration' && l.registered === true);
      expect(registered).toMatchObject({ level: 30, msg: `registered with the kubelet as ${DRIVER}` });
      const refused = await waitForLog(driver, (l) => l.event === 'kubelet-registration' && l.registered === false);
      expect(refused).toMatchObject({ level: 50, error: reason, msg: 'the kubelet did not register the driver' });
    } finally {
      client.close();
    }
  });

  test('/healthz is 200 "ok", also while the storage server hangs; other paths are 404', async () => {
    expect(await get(healthUrl)).toMatchObject({ code: 200, body: 'ok' });
    await server!.freeze();
    try {
      expect(await get(healthUrl)).toMatchObject({ code: 200, body: 'ok' });
    } finally {
      await server!.thaw();
    }
    expect(await get(healthUrl.replace(/\/healthz$/, '/metrics'))).toMatchObject({ code: 404 });
  }, 30_000);

  test('/healthz is 503 with the reason when the CSI socket does not answer within the probe timeout, or is gone', async () => {
    // A listener that accepts and never answers takes the CSI socket's place: the probe times out.
    await rm(driver.socket);
    const held: Socket[] = [];
    const silent: Server = createServer((c) => void held.push(c));
    await new Promise<void>((resolve) => silent.listen(driver.socket, resolve));
    try {
      const hung = await get(healthUrl);
      expect(hung.code).toBe(503);
      expect(hung.body).toMatch(new RegExp(`^Probe on ${driver.socket} failed: DEADLINE_EXCEEDED`));
      expect(hung.ms).toBeGreaterThanOrEqual(PROBE_TIMEOUT_MS - 100);
      expect(hung.ms).toBeLessThan(PROBE_TIMEOUT_MS + SLACK_MS);
    } finally {
      held.forEach((c) => c.destroy());
      await new Promise<void>((resolve) => silent.close(() => resolve())); // and the socket file goes with it
    }
    const gone = await get(healthUrl);
    expect(gone).toMatchObject({ code: 503, body: `the CSI socket ${driver.socket} is missing` });
    expect(gone.ms).toBeLessThan(PROBE_TIMEOUT_MS);
    // Each change of health is logged once, with its reason (the lines come through a pipe: wait for them).
    await waitForLog(driver, (l) => l.event === 'health' && l.reason === `the CSI socket ${driver.socket} is missing`);
    const reasons = logLines(driver).filter((l) => l.event === 'health').map((l) => String(l.reason).replace(/ failed: DEADLINE_EXCEEDED.*/, ' failed: DEADLINE_EXCEEDED'));
    expect(reasons).toEqual([`Probe on ${driver.socket} failed: DEADLINE_EXCEEDED`, `the CSI socket ${driver.socket} is missing`]);
  }, 30_000);
});

describe('restarts and shutdown', () => {
  test('killed, tether leaves a stale socket; restarted, it replaces it and answers; on SIGTERM the socket goes', async () => {
    for (const d of drivers.splice(0)) await d.stop();
    expect(await readdir(registry)).toEqual([]); // the first driver's SIGTERM removed it

    const first = await startNode();
    first.driver.process.kill('SIGKILL');
    await first.driver.process;
    expect(await isSocket(regSocket)).toBe(true); // left behind
    const stale = kubeletClient(regSocket);
    const err = await stale.getInfo().then(() => undefined, (e: ServiceError) => e);
    stale.close();
    expect(err?.code).toBe(status.UNAVAILABLE);

    const { driver: second } = await startNode();
    expect(await readdir(registry)).toEqual([`${DRIVER}-reg.sock`]);
    const client = kubeletClient(regSocket);
    try {
      // Without --kubelet-registration-path the kubelet is told the endpoint's own socket path.
      expect(await client.getInfo()).toEqual({ type: 'CSIPlugin', name: DRIVER, endpoint: second.socket, supported_versions: ['1.0.0'] });
    } finally {
      client.close();
    }

    second.process.kill('SIGTERM');
    const done = await second.process;
    expect(done.exitCode).toBe(0);
    expect(await readdir(registry)).toEqual([]);
    await first.driver.stop();
    await second.stop();
    drivers.splice(0);
  }, 90_000);

  test('a file that is not a socket at the socket\'s path is never removed: tether refuses to start, saying why', async () => {
    for (const d of drivers.splice(0)) await d.stop();
    await rm(regSocket, { force: true });
    await writeFile(regSocket, 'not tether\'s');
    try {
      const start = startDriver(server!, { mode: 'node', extraArgs: ['--kubelet-registration-dir', registry] });
      await expect(start).rejects.toThrow(/exit code 2[\s\S]*tether-csi: --kubelet-registration-dir \S+: \S+tether\.csi\.dev-reg\.sock exists and is a regular file, not a socket: tether replaces only a stale socket there and leaves anything else alone; move it away/);
      expect(await readFile(regSocket, 'utf8')).toBe('not tether\'s');
    } finally {
      await rm(regSocket, { force: true });
    }
  }, 60_000);

  test('a registration directory that does not exist is refused, naming it', async () => {
    const missing = path.join(registry, 'no-such-dir');
    await expect(startDriver(server!, { mode: 'node', extraArgs: ['--kubelet-registration-dir', missing] })).rejects.toThrow(
      new RegExp(`exit code 2[\\s\\S]*tether-csi: --kubelet-registration-dir ${missing}: no such directory`),
    );
  }, 60_000);
});
