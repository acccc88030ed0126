import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { KeyedLocks } from '../grpc/locks.js';
import { bindsOf, readMountTable, type MountEntry } from '../mounts/mount-table.js';
import type { Mounter } from '../mounts/mounter.js';
import type { Backends } from '../volumes/registry.js';
import { holds, releaseClaim } from './claims.js';
import type { LeaseKeeper } from './leases.js';
import { mountedHere, volumeIdOf, volumeSpec } from './volume-mounts.js';

export interface ClaimKeeperOptions {
  backends: Backends;
  mounter: Mounter;
  locks: KeyedLocks;
  nodeId: string;
  /** Where the node notes the staging paths it let go of by itself (a tmpfs: they go with the mounts at reboot). */
  runtimeDir: string;
  /** How long a claimed volume may stay staged with no target before the node lets go of it; 0: never. */
  graceMs: number;
  /** How often to try again to release a claim the backend did not answer for. */
  retryMs: number;
  /** This node's leases: one let go of with its claim. */
  leases: LeaseKeeper;
  /**
   * Also let go of an idle volume the node holds by a writer lease alone (published to it by
   * ControllerPublish, no claim): for a CO that never sends NodeUnstage (Docker Swarm), whose staged
   * volume would otherwise keep its lease — and every other node off it — forever.
   */
  releaseLeased: boolean;
  log: Logger;
}

/**
 * Makes sure this node's claims go when its use of a volume does:
 * - Idle volumes. A node that claimed a volume (a CO that skips ControllerPublish) unstages it by
 *   itself once its last NodePublish target is gone and the grace has passed with none coming back:
 *   Docker Swarm never sends NodeUnstage, and a claim that waited for it would keep the volume from
 *   its next node forever. The staging path is noted, so that a NodePublish there later — the CO
 *   still thinks it staged — stages the volume again, claim and all. Kubernetes (with
 *   ControllerPublish) makes no claims, so nothing here touches its volumes; Swarm publishes with
 *   ControllerPublish and still never unstages, so for it (releaseLeased) a writer lease alone counts.
 * - Unreachable backends. NodeUnstage unmounts even when the server is down; the claim is then
 *   taken off the record in the background, as soon as the server answers (noted on disk, so a
 *   restart goes on with it). Until then the claim keeps other nodes off: the safe side.
 */
export class ClaimKeeper {
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(private readonly options: ClaimKeeperOptions) {}

  /** NodeUnpublish took a target of the volume staged at `staging`: if it was the last, let go after the grace. */
  releaseWhenIdle(volumeId: string, staging: string): void {
    if (!this.options.graceMs) return;
    clearTimeout(this.timers.get(staging));
    const timer = setTimeout(() => void this.release(volumeId, staging), this.options.graceMs);
    timer.unref();
    this.timers.set(staging, timer);
  }

  /** True if the node let go of `volumeId`, staged at `staging`, by itself. */
  async wasReleased(volumeId: string, staging: string): Promise<boolean> {
    return (await readFile(this.markerOf(staging), 'utf8').catch(() => '')) === volumeId;
  }

  /** The volume at `staging` was staged or unstaged by the CO: nothing to let go of, nothing to remember. */
  async forget(staging: string): Promise<void> {
    clearTimeout(this.timers.get(staging));
    this.timers.delete(staging);
    await rm(this.markerOf(staging), { force: true });
  }

  /** At start: staging mounts with no target left (their timers died with the last process) get a grace of their own. */
  reconcile(table: readonly MountEntry[]): void {
    for (const staged of table) {
      const id = volumeIdOf(this.options.backends, staged.source);
      if (id && !bindsOf(table, staged).length) this.releaseWhenIdle(id, staged.target);
    }
  }

  /** The claim could not be released now (the backend did not answer): keep trying every `retryMs` until it is. */
  async releaseLater(volumeId: string): Promise<void> {
    const marker = this.pendingOf(volumeId);
    await mkdir(path.dirname(marker), { recursive: true, mode: 0o700 });
    await writeFile(marker, volumeId, { mode: 0o600 });
    this.retryRelease(volumeId);
  }

  /** At start: claims a previous process could not release yet. */
  async resumeReleases(): Promise<void> {
    const dir = path.join(this.options.runtimeDir, 'claims-to-release');
    for (const name of await readdir(dir).catch(() => [])) {
      const volumeId = await readFile(path.join(dir, name), 'utf8').catch(() => '');
      if (volumeId) this.retryRelease(volumeId);
    }
  }

  close(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  private retryRelease(volumeId: string): void {
    const key = `release ${volumeId}`;
    clearTimeout(this.timers.get(key));
    const timer = setTimeout(async () => {
      this.timers.delete(key);
      try {
        await releaseClaim(this.options.backends, volumeId, this.options.nodeId);
        await rm(this.pendingOf(volumeId), { force: true });
        this.options.log.info({ volume: volumeId }, "released this node's claim, which NodeUnstage could not reach the backend for");
      } catch (err) {
        this.options.log.warn({ volume: volumeId, err: (err as Error).message }, "this node's claim is not released yet: the backend does not answer; trying again");
        this.retryRelease(volumeId);
      }
    }, this.options.retryMs);
    timer.unref();
    this.timers.set(key, timer);
  }

  private pendingOf(volumeId: string): string {
    return path.join(this.options.runtimeDir, 'claims-to-release', Buffer.from(volumeId).toString('base64url'));
  }

  private markerOf(staging: string): string {
    return path.join(this.options.runtimeDir, 'released', Buffer.from(staging).toString('base64url').slice(-120));
  }

  private async release(volumeId: string, staging: string): Promise<void> {
    this.timers.delete(staging);
    const { backends, mounter, locks, nodeId, log } = this.options;
    let lock;
    try {
      lock = locks.acquire(volumeId, 'letting go of an idle volume');
    } catch {
      return this.releaseWhenIdle(volumeId, staging); // a call on this volume is running: look again later
    }
    const signal = new AbortController().signal;
    try {
      const spec = volumeSpec(backends, volumeId);
      const table = await readMountTable(signal);
      const staged = table.find((m) => m.target === staging && m.source === spec.source);
      if (!staged || bindsOf(table, staged).length || !(await holds(backends, volumeId, nodeId, this.options.releaseLeased, signal))) return;
      await mounter.unmount(staged, signal, spec.cutoff);
      await mounter.removeSecrets(staging);
      await mkdir(path.dirname(this.markerOf(staging)), { recursive: true, mode: 0o700 });
      await writeFile(this.markerOf(staging), volumeId, { mode: 0o600 });
      if (mountedHere(await readMountTable(signal), spec.source)) return; // staged at another path too: that one keeps the claim
      await this.options.leases.release(volumeId);
      await releaseClaim(backends, volumeId, nodeId, signal).catch(() => this.releaseLater(volumeId));
      log.info({ volume: volumeId, staging, graceMs: this.options.graceMs }, 'let go of a volume no workload used for the grace period: unstaged, claim and lease released');
    } catch (err) {
      log.warn({ volume: volumeId, staging, err: (err as Error).message }, 'could not let go of an idle volume; trying again after the grace');
      this.releaseWhenIdle(volumeId, staging);
    } finally {
      lock.release();
    }
  }
}
