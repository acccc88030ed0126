// The ":authority" trap: a second real gRPC client besides csi-sanity. csi-probe (test/clients/csi-probe)
// is grpc-go dialing through kubernetes-csi csi-lib-utils exactly as the sidecars do; it relays its bytes
// through a private socket and reports the :authority that really went over the wire. Node's HTTP/2
// layer (nghttp2) accepts "localhost" and a percent-encoded path, and resets a raw path or an empty
// value: the last two are documented known limitations (README, "gRPC clients and the :authority trap").
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { startSshServer, type SshServer } from '../support/sshd.js';
import { startDriver, type RunningDriver } from '../support/driver.js';
import { exists } from '../support/helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const CSI_PROBE = path.join(ROOT, '.tools/bin/csi-probe');
const PROBE_TIMEOUT_MS = 20_000;

let server: SshServer | undefined;
let driver: RunningDriver | undefined;

/** Runs csi-probe against the driver; its own deadline is 5 s, ours 20 s. */
async function probe(extra: string[]) {
  const result = await execa(CSI_PROBE, ['--endpoint', driver!.endpoint, '--timeout', '5s', ...extra], { timeout: PROBE_TIMEOUT_MS, reject: false, stdin: 'ignore' });
  return { exitCode: result.exitCode, stdout: String(result.stdout).trim(), stderr: String(result.stderr).trim(), timedOut: result.timedOut };
}

beforeAll(async () => {
  if (!(await exists(CSI_PROBE))) {
    // Builds the pinned Go tools (csi-probe among them) into .tools/bin.
    await execa('bash', [path.join(ROOT, 'test/tools/install.sh')], { cwd: ROOT, timeout: 600_000, stdio: 'inherit' });
  }
  server = await startSshServer();
  driver = await startDriver(server, { mode: 'all' });
}, 660_000);

afterAll(async () => {
  await driver?.stop().catch(() => undefined);
  await server?.stop().catch(() => undefined);
}, 30_000);

describe('a second real gRPC client (grpc-go + csi-lib-utils) and the :authority it sends', () => {
  it('sidecar default (csi-lib-utils connection.Connect sends "localhost") works', async () => {
    const result = await probe([]);
    expect(result).toMatchObject({ exitCode: 0, stderr: '', timedOut: false });
    expect(result.stdout).toBe('ok driver=tether.csi.dev ready=true authority=localhost');
  }, 30_000);

  it('percent-encoded socket path (what grpc-go >= 1.57 sends for a bare path) works', async () => {
    const encoded = encodeURIComponent(driver!.socket);
    expect(encoded).toMatch(/^%2F.*%2Fcsi\.sock$/);
    const result = await probe(['--authority', encoded]);
    expect(result).toMatchObject({ exitCode: 0, stderr: '', timedOut: false });
    expect(result.stdout).toBe(`ok driver=tether.csi.dev ready=true authority=${encoded}`);
  }, 30_000);

  it('legacy raw-path :authority is rejected (known limitation, see README)', async () => {
    // What kubelet < 1.26 and grpc-go 1.26–1.56 sent for a bare socket path. nghttp2 resets the stream
    // before tether sees the request. If this starts passing, the limitation is fixed: update the README.
    const result = await probe(['--authority', driver!.socket]);
    expect(result.timedOut).toBe(false);
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^FAIL: Identity\.GetPluginInfo: /);
    expect(result.stderr).toMatch(/RST_STREAM|PROTOCOL_ERROR/);
    expect(result.stderr).toContain(`(authority sent: ${driver!.socket})`); // it really went over the wire
  }, 30_000);

  it('empty :authority is rejected as well (known limitation, see README)', async () => {
    const result = await probe(['--authority', '']);
    expect(result.timedOut).toBe(false);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/^FAIL: Identity\.GetPluginInfo: .*(RST_STREAM|PROTOCOL_ERROR)/);
    expect(result.stderr).toContain('(authority sent: "")');
  }, 30_000);

  it('the driver keeps serving after rejected requests', async () => {
    const result = await probe([]);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toMatch(/^ok driver=tether\.csi\.dev ready=true /);
  }, 30_000);
});
