// src/util/exec.ts and src/mounts/probe.ts: how a program ends — failed, timed out, or stopped
// because its call ended — is reported as what it is, and a call's end never reads as a broken mount.
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { probeMount } from '../../src/mounts/probe.js';
import { CommandError, run } from '../../src/util/exec.js';
import { codeName, csiErrorAsync } from './csi-error.js';

/** The CommandError `promise` rejects with, and when it settled (ms since `t0`). */
async function commandError(promise: Promise<unknown>, t0 = performance.now()): Promise<{ err: CommandError; ms: number }> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof CommandError)) throw new Error(`expected a CommandError, got ${String(err)}`);
  return { err, ms: performance.now() - t0 };
}

/** Whether a process is still running: it exists and is not a zombie (an orphan waits for init to reap it). */
function alive(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2] !== 'Z';
  } catch {
    return false;
  }
}

const aborted = () => {
  const controller = new AbortController();
  controller.abort();
  return controller.signal;
};

let dir: string;
beforeEach(async () => (dir = await mkdtemp(path.join(tmpdir(), 'tether-exec-'))));
afterEach(() => rm(dir, { recursive: true, force: true }));

describe('run', () => {
  test('a program that fails: "failed", with its exit status and what it printed', async () => {
    const { err } = await commandError(run('sh', ['-c', 'echo "no such volume" >&2; exit 3'], { timeoutMs: 5000 }));
    expect(err.outcome).toBe('failed');
    expect(err.message).toBe('sh exited with 3: no such volume');
  });

  test('a program past its time limit: "timed out"', async () => {
    const { err, ms } = await commandError(run('sleep', ['10'], { timeoutMs: 200 }));
    expect(err.outcome).toBe('timed out');
    expect(err.message).toBe('sleep timed out after 200 ms');
    expect(ms).toBeLessThan(2000);
  });

  test('a program whose call ends: "cancelled", stopped at once', async () => {
    const controller = new AbortController();
    const running = run('sleep', ['10'], { timeoutMs: 10_000, signal: controller.signal });
    await sleep(100);
    const t0 = performance.now();
    controller.abort();
    const { err, ms } = await commandError(running, t0);
    expect(err.outcome).toBe('cancelled');
    expect(err.message).toBe('sleep was stopped: its call ended');
    expect(ms).toBeLessThan(500);
  });

  /** Runs `script` (which writes the pid to watch to $PID_FILE), aborts its call once it runs; how it ended, how long after the abort, and whether that pid is gone. */
  async function abortWhileRunning(script: string) {
    const controller = new AbortController();
    const pidFile = path.join(dir, 'pid');
    const running = run('sh', ['-c', script.replace('$PID_FILE', pidFile)], { timeoutMs: 10_000, signal: controller.signal });
    while (!existsSync(pidFile)) await sleep(20);
    await sleep(100);
    const t0 = performance.now();
    controller.abort();
    const { err, ms } = await commandError(running, t0);
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    return { outcome: err.outcome, ms, gone: !alive(pid) };
  }

  test('a program that ignores SIGTERM is killed a second after its call ends, and run settles after it exited', async () => {
    // exec keeps the ignored SIGTERM: the program itself ignores it, as a process stuck on I/O would.
    const { outcome, ms, gone } = await abortWhileRunning(`echo $$ > $PID_FILE; trap '' TERM; exec sleep 10`);
    expect({ outcome, gone }).toEqual({ outcome: 'cancelled', gone: true });
    expect(ms).toBeGreaterThanOrEqual(900);
    expect(ms).toBeLessThan(2500);
  });

  test('what the program started is stopped with it (mount(8) forks mount.nfs), and run settles once all of it has exited', async () => {
    const { outcome, ms, gone } = await abortWhileRunning('sleep 10 & echo $! > $PID_FILE; wait');
    expect({ outcome, gone }).toEqual({ outcome: 'cancelled', gone: true });
    expect(ms).toBeLessThan(500);
  });

  test('after its call has ended, no program starts', async () => {
    const marker = path.join(dir, 'ran');
    const { err } = await commandError(run('touch', [marker], { timeoutMs: 5000, signal: aborted() }));
    await sleep(200);
    expect(err.outcome).toBe('cancelled');
    expect(err.message).toBe('touch was not started: its call had ended');
    expect(existsSync(marker)).toBe(false);
  });
});

describe('probeMount', () => {
  test('a probe cut short by its call\'s end is CANCELLED, not a broken mount (the mounter would force it off)', async () => {
    const err = await csiErrorAsync(probeMount('/', 5000, aborted()));
    expect(codeName(err)).toBe('CANCELLED');
    expect(err.message).toContain('/ was not probed');
  });
});
