// src/backends/local-fs.ts: a copy (CreateVolume from a snapshot or a volume) stops when its call
// ends — cp is stopped at once — and the copy settles only after cp has exited: the volume's lock
// is held until the handler settles, so a retry can never copy beside a cp still running. A real
// cp copies a 1 GiB file (allocated, not sparse) on tmpfs, ~1–3 s of work; the call ends mid-copy.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { status } from '@grpc/grpc-js';
import { execa } from 'execa';
import { LocalFs } from '../../src/backends/local-fs.js';
import { toCsiError } from '../../src/csi/errors.js';

let root: string;

beforeAll(async () => {
  // tmpfs: fallocate'd pages are data to cp there, so it really copies them (on ext4 they read as holes).
  root = await mkdtemp(path.join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'tether-copy-'));
  await mkdir(path.join(root, 'snap'));
  await execa('fallocate', ['-l', '1G', path.join(root, 'snap', 'data')]);
});

afterAll(() => rm(root, { recursive: true, force: true }));

/** The PIDs of this process's `cp` children (from /proc). */
function cpChildren(): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .flatMap((name) => {
      try {
        // "pid (comm) state ppid ...": comm has no spaces here.
        const [, comm, , ppid] = readFileSync(`/proc/${name}/stat`, 'utf8').split(' ');
        return comm === '(cp)' && Number(ppid) === process.pid ? [Number(name)] : [];
      } catch {
        return []; // gone meanwhile
      }
    });
}

test('when the call ends mid-copy, cp is stopped at once and the copy settles only after cp has exited, as CANCELLED', async () => {
  const fs = new LocalFs(root, async () => ({ root, release: () => undefined, stale: () => undefined }));
  const call = new AbortController();
  let cpAliveAtSettle: boolean | undefined;
  let pid: number | undefined;
  const copying = fs.copyTree('snap', 'pvc-1', call.signal).then(
    () => undefined,
    (err: unknown) => err,
  );
  void copying.then(() => (cpAliveAtSettle = pid !== undefined && existsSync(`/proc/${pid}`)));
  const t0 = Date.now();
  while ((pid = cpChildren()[0]) === undefined && Date.now() - t0 < 5000) await sleep(10);
  expect(pid).toBeDefined();
  await sleep(200);
  expect(cpChildren()).toEqual([pid]); // still copying: the call ends mid-copy
  const endedAt = performance.now();
  call.abort();
  const err = await copying;
  const ms = performance.now() - endedAt;
  expect(cpAliveAtSettle).toBe(false);
  expect(cpChildren()).toEqual([]);
  expect(ms).toBeLessThan(1500);
  const csi = toCsiError(err);
  expect(status[csi.code]).toBe('CANCELLED');
  expect(csi.message).toBe(`the call ended during the copy of snap on ${root}; cp was stopped`);
}, 20_000);
