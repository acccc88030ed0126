// src/grpc/kubelet-registration.ts: what tether tells the kubelet (GetInfo), what it logs of the
// kubelet's answer (NotifyRegistrationStatus), and which files at the socket's path it may replace —
// only a stale socket, never anything else.
import { link, lstat, mkdir, mkdtemp, readFile, readdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { sendUnaryData, ServerUnaryCall } from '@grpc/grpc-js';
import { execa } from 'execa';
import { pino } from 'pino';
import { pluginInfo, registrationHandlers, registrationSocketPath, registrationSocketProblem, serveRegistration } from '../../src/grpc/kubelet-registration.js';
import { bindingPath, MAX_SOCKET_PATH_BYTES } from '../../src/util/unix-socket.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tether-reg-unit-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A unix socket file at `at` that nobody listens on any more (a killed tether's): a hard link to a bound socket, kept after the server closes. */
async function staleSocket(at: string): Promise<void> {
  const live = path.join(dir, `live-${Math.random().toString(36).slice(2, 8)}.sock`);
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(live, resolve));
  await link(live, at);
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

describe('GetInfo: what the kubelet is told', () => {
  test('a CSI plugin, named as the driver, at the endpoint the kubelet sees, speaking registration 1.0.0', () => {
    expect(pluginInfo('tether.csi.dev', '/var/lib/kubelet/plugins/tether.csi.dev/csi.sock')).toEqual({
      type: 'CSIPlugin',
      name: 'tether.csi.dev',
      endpoint: '/var/lib/kubelet/plugins/tether.csi.dev/csi.sock',
      supported_versions: ['1.0.0'],
    });
  });

  test('the socket is named as node-driver-registrar names it: <dir>/<driver>-reg.sock', () => {
    expect(registrationSocketPath('/registration', 'tether.csi.dev')).toBe('/registration/tether.csi.dev-reg.sock');
    expect(registrationSocketPath('/registration/', 'a.b')).toBe('/registration/a.b-reg.sock');
  });
});

describe('registrationSocketProblem: only a stale socket may be replaced', () => {
  test.each<[string, (at: string) => Promise<void>, RegExp | undefined]>([
    ['nothing there', async () => undefined, undefined],
    ['a stale socket (a killed tether\'s)', staleSocket, undefined],
    ['a regular file', (at) => writeFile(at, 'precious'), /exists and is a regular file, not a socket: .*leaves anything else alone/],
    ['a directory', (at) => mkdir(at), /exists and is a directory, not a socket/],
    ['a symbolic link to a socket (never followed)', async (at) => {
      await staleSocket(`${at}.target`);
      await symlink(`${at}.target`, at);
    }, /exists and is a symbolic link, not a socket/],
    ['a dangling symbolic link', (at) => symlink(path.join(dir, 'nowhere'), at), /exists and is a symbolic link, not a socket/],
    ['a FIFO', async (at) => void (await execa('mkfifo', [at])), /exists and is a FIFO, not a socket/],
  ])('%s', async (_, make, expected) => {
    const at = path.join(dir, `${Math.random().toString(36).slice(2, 8)}-reg.sock`);
    await make(at);
    const problem = await registrationSocketProblem(at);
    if (expected === undefined) expect(problem).toBeUndefined();
    else expect(problem).toMatch(expected);
    if (problem) expect(problem).toContain(at);
  });

  test(`a path longer than a unix socket holds (${MAX_SOCKET_PATH_BYTES} bytes) is refused, one that just fits is not`, async () => {
    const fits = path.join(dir, 'x'.repeat(MAX_SOCKET_PATH_BYTES - dir.length - 1));
    expect(Buffer.byteLength(fits)).toBe(MAX_SOCKET_PATH_BYTES);
    expect(await registrationSocketProblem(fits)).toBeUndefined();
    expect(await registrationSocketProblem(`${fits}y`)).toMatch(new RegExp(`is ${MAX_SOCKET_PATH_BYTES + 1} bytes; a unix socket path holds at most ${MAX_SOCKET_PATH_BYTES}`));
  });
});

describe('the handlers: answers from memory, and one log line for what the kubelet says', () => {
  /** Handlers logging into an array of parsed JSON lines. */
  function handlers() {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    const log = pino({ level: 'info' }, sink);
    return { lines, h: registrationHandlers(pluginInfo('tether.csi.dev', '/k/csi.sock'), log) };
  }
  const call = <Req>(request: Req) => ({ request }) as unknown as ServerUnaryCall<Req, never>;
  const answer = <Res>(invoke: (cb: sendUnaryData<Res>) => void) =>
    new Promise<Res>((resolve, reject) => invoke((err, value) => (err ? reject(err) : resolve(value as Res))));

  test('GetInfo answers the plugin info', async () => {
    const { h, lines } = handlers();
    expect(await answer((cb) => h.GetInfo(call({}), cb))).toEqual({ type: 'CSIPlugin', name: 'tether.csi.dev', endpoint: '/k/csi.sock', supported_versions: ['1.0.0'] });
    expect(lines).toEqual([expect.objectContaining({ level: 30, event: 'kubelet-registration', msg: 'the kubelet asked for the plugin info' })]);
  });

  test.each<[string, { plugin_registered: boolean; error: string }, object]>([
    ['registered: info', { plugin_registered: true, error: '' }, { level: 30, registered: true, msg: 'registered with the kubelet as tether.csi.dev' }],
    [
      'refused: error, with the kubelet\'s reason',
      { plugin_registered: false, error: 'RegisterPlugin error -- plugin registration failed with err: no NodeGetInfo' },
      { level: 50, registered: false, error: 'RegisterPlugin error -- plugin registration failed with err: no NodeGetInfo', msg: 'the kubelet did not register the driver' },
    ],
    ['refused without a reason: still an error line', { plugin_registered: false, error: '' }, { level: 50, error: '(the kubelet gave no reason)' }],
  ])('NotifyRegistrationStatus %s', async (_, status, expected) => {
    const { h, lines } = handlers();
    expect(await answer((cb) => h.NotifyRegistrationStatus(call(status), cb))).toEqual({});
    expect(lines).toEqual([expect.objectContaining({ event: 'kubelet-registration', ...expected })]);
  });

  test('a hostile reason is logged as one bounded line', async () => {
    const { h, lines } = handlers();
    await answer((cb) => h.NotifyRegistrationStatus(call({ plugin_registered: false, error: `forged\n{"level":30}${'x'.repeat(10_000)}` }), cb));
    const logged = lines[0]!.error as string;
    expect(logged).not.toContain('\n');
    expect(logged).toMatch(/^forged\\n\{"level":30\}x+… \[\d+ more bytes cut\]$/);
    expect(Buffer.byteLength(logged)).toBeLessThanOrEqual(1024);
  });
});

describe('serveRegistration: the socket appears whole, and close() removes only its own', () => {
  const quiet = pino({ level: 'silent' });
  const exists = (p: string) => lstat(p).then(() => true, () => false);

  test('it binds under a dot name the kubelet ignores and renames the socket into place; close() removes it', async () => {
    const sub = await mkdtemp(path.join(dir, 'serve-'));
    const socketPath = registrationSocketPath(sub, 'tether.csi.dev');
    await staleSocket(socketPath);
    const server = await serveRegistration({ socketPath, driverName: 'tether.csi.dev', endpoint: '/k/csi.sock', log: quiet });
    expect(bindingPath(socketPath)).toBe(path.join(sub, `.tether-${process.pid}.sock`));
    expect(await readdir(sub)).toEqual(['tether.csi.dev-reg.sock']);
    expect((await lstat(socketPath)).isSocket()).toBe(true);
    server.close();
    expect(await readdir(sub)).toEqual([]);
  });

  test('a file that took the socket\'s place while tether ran is left alone at close()', async () => {
    const sub = await mkdtemp(path.join(dir, 'serve-'));
    const socketPath = registrationSocketPath(sub, 'tether.csi.dev');
    const server = await serveRegistration({ socketPath, driverName: 'tether.csi.dev', endpoint: '/k/csi.sock', log: quiet });
    await rename(socketPath, path.join(sub, 'moved.sock'));
    await writeFile(socketPath, 'someone else\'s');
    server.close();
    expect(await readFile(socketPath, 'utf8')).toBe('someone else\'s');
    expect(await exists(path.join(sub, 'moved.sock'))).toBe(true);
  });

  test('anything but a stale socket at the path is refused and left as it was', async () => {
    const sub = await mkdtemp(path.join(dir, 'serve-'));
    const socketPath = registrationSocketPath(sub, 'tether.csi.dev');
    await writeFile(socketPath, 'precious');
    await expect(serveRegistration({ socketPath, driverName: 'tether.csi.dev', endpoint: '/k/csi.sock', log: quiet })).rejects.toThrow(/exists and is a regular file, not a socket/);
    expect(await readFile(socketPath, 'utf8')).toBe('precious');
    expect(await readdir(sub)).toEqual(['tether.csi.dev-reg.sock']);
  });
});
