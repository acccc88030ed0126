// src/mounts/mounter.ts: a mount that fails is reported with the status a CO can act on. The
// Mounter is real; the mount program is `sh`, printing what mount.nfs, sshfs or ssh print.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { Mounter } from '../../src/mounts/mounter.js';
import type { MountSpec } from '../../src/mounts/spec.js';
import { codeName, csiErrorAsync } from './csi-error.js';

let dir: string;
beforeEach(async () => (dir = await mkdtemp(path.join(tmpdir(), 'tether-mounter-'))));
afterEach(() => rm(dir, { recursive: true, force: true }));

/** A mount whose program runs `script`. */
const spec = (script: string): MountSpec => ({
  fstypes: ['nfs4'],
  source: 'nfs.example.com:/export/pvc-1',
  command: 'sh',
  args: () => ['-c', script],
  secretFiles: {},
  cutoff: 'force-if-unresponsive',
});

const mounter = (mountTimeoutMs?: number) => new Mounter(path.join(dir, 'run'), pino({ level: 'silent' }), mountTimeoutMs);

describe('Mounter.mount, when the mount fails', () => {
  test.each<[string, string]>([
    ['mount.nfs: No route to host', 'UNAVAILABLE'],
    ['mount.nfs: Host is down', 'UNAVAILABLE'],
    ['ssh: connect to host 10.0.0.5 port 22: No route to host', 'UNAVAILABLE'],
  ])('%s → %s', async (stderr, code) => {
    const err = await csiErrorAsync(mounter().mount(spec(`echo '${stderr}' >&2; exit 32`), path.join(dir, 'target'), new AbortController().signal));
    expect(codeName(err)).toBe(code);
    expect(err.message).toBe(`sh could not mount nfs.example.com:/export/pvc-1: ${stderr}`);
  });

  test('a mount that does not finish in time is UNAVAILABLE: its server does not answer', async () => {
    const err = await csiErrorAsync(mounter(300).mount(spec('sleep 10'), path.join(dir, 'target'), new AbortController().signal));
    expect(codeName(err)).toBe('UNAVAILABLE');
    expect(err.message).toBe('sh could not mount nfs.example.com:/export/pvc-1: the server does not answer (sh timed out after 300 ms)');
  });

  test('a mount stopped because its call ended is CANCELLED', async () => {
    const controller = new AbortController();
    const mounting = mounter().mount(spec('sleep 10'), path.join(dir, 'target'), controller.signal);
    await sleep(100);
    controller.abort();
    const err = await csiErrorAsync(mounting);
    expect(codeName(err)).toBe('CANCELLED');
    expect(err.message).toBe('the call ended while sh mounted nfs.example.com:/export/pvc-1; stopped it');
  });
});
