// src/backends/export-mount.ts with real mounts: uses of the controller's export mount and its
// unmount (idle or at shutdown) never overlap, so no use ever works in the bare directory under it.
// This host has no NFS client: a tmpfs stands in for the export. The Mounter, mount(8), umount(8),
// findmnt and /proc/self/mountinfo are all real. Needs root (it mounts).
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { pino } from 'pino';
import { ExportMount } from '../../src/backends/export-mount.js';
import { readMountInfo, type MountEntry } from '../../src/mounts/mount-table.js';
import { Mounter } from '../../src/mounts/mounter.js';
import type { MountSpec } from '../../src/mounts/spec.js';

const log = pino({ level: 'silent' });
let work: string;
let dir: string;
let spec: MountSpec;

beforeEach(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'tether-export-'));
  dir = path.join(work, 'controller', 'filer');
  const source = `tether-test-${path.basename(work)}`;
  spec = { fstypes: ['tmpfs'], source, command: 'mount', args: (target) => ['-t', 'tmpfs', '-o', 'size=4m', source, target], secretFiles: {}, cutoff: 'force-if-unresponsive' };
});

afterEach(async () => {
  while (await isMounted()) await execa('umount', [dir], { reject: false, timeout: 10_000 });
  await rm(work, { recursive: true, force: true });
});

/** Whether the stand-in export is mounted at `dir` (mountinfo, as the kernel sees it). */
const isMounted = async () => (await readMountInfo()).some((m) => m.target === dir && m.source === spec.source);

/** A real Mounter whose unmount is held back until `release` is called: a slow umount, with `started` telling when it began. */
class HeldUnmounts extends Mounter {
  private begin!: () => void;
  private open!: () => void;
  readonly started = new Promise<void>((resolve) => (this.begin = resolve));
  private readonly gate = new Promise<void>((resolve) => (this.open = resolve));

  release(): void {
    this.open();
  }

  override async unmount(entry: MountEntry, signal: AbortSignal): Promise<void> {
    this.begin();
    await this.gate;
    return super.unmount(entry, signal);
  }
}

/** A use of the mount: while it lasts the export is mounted, and what it writes lands there. */
async function useAndCheck(exportMount: ExportMount): Promise<void> {
  const handle = await exportMount.acquire();
  try {
    await writeFile(path.join(handle.root, 'record'), 'generation 2');
    expect(await isMounted()).toBe(true);
    // On another filesystem than the directory around it: the export's, not the bare directory's.
    expect((await stat(path.join(handle.root, 'record'))).dev).not.toBe((await stat(work)).dev);
  } finally {
    handle.release();
  }
}

describe('ExportMount', () => {
  test('a use that starts during a slow unmount waits for it, then mounts the export again (real mounts; the unmount held back)', async () => {
    const mounter = new HeldUnmounts(path.join(work, 'run'), log);
    const exportMount = new ExportMount(spec, dir, mounter, 'backend "filer" (tmpfs)');
    (await exportMount.acquire()).release();
    const closing = exportMount.close();
    await mounter.started;
    let acquired = false;
    const acquiring = exportMount.acquire().then((handle) => {
      acquired = true;
      return handle;
    });
    await sleep(200);
    expect(acquired).toBe(false); // it waits for the unmount rather than use what is about to go
    mounter.release();
    await closing;
    const handle = await acquiring;
    expect(await isMounted()).toBe(true);
    handle.release();
    await useAndCheck(exportMount);
  });

  test('close() with a user does not unmount; the last release unmounts after the idle time, unless a use comes first', async () => {
    const exportMount = new ExportMount(spec, dir, new Mounter(path.join(work, 'run'), log), 'backend "filer" (tmpfs)', 300);
    const first = await exportMount.acquire();
    await exportMount.close();
    expect(await isMounted()).toBe(true);
    first.release();
    await sleep(150);
    const second = await exportMount.acquire(); // within the idle time: the timer is off
    await sleep(400);
    expect(await isMounted()).toBe(true);
    second.release();
    const t0 = Date.now();
    while ((await isMounted()) && Date.now() - t0 < 5000) await sleep(50);
    expect(await isMounted()).toBe(false);
    await useAndCheck(exportMount); // and the next use mounts it again
  });
});
