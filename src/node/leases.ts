import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { MetricsSink } from '../grpc/metrics-sink.js';
import { fenceMount } from '../mounts/fence.js';
import { readMountTable } from '../mounts/mount-table.js';
import type { Mounter } from '../mounts/mounter.js';
import { sourceMatches } from '../mounts/mount-table.js';
import { LeaseHolder, type LeaseTerms } from '../volumes/lease.js';
import type { Backends } from '../volumes/registry.js';
import { monotonicMs } from '../util/time.js';
import { renewLease } from './claims.js';
import { volumeSpec } from './volume-mounts.js';

export interface LeaseKeeperOptions {
  backends: Backends;
  mounter: Mounter;
  nodeId: string;
  terms: LeaseTerms;
  /** Where held leases and fences are noted (a tmpfs: they go with the mounts at reboot). */
  runtimeDir: string;
  metrics: MetricsSink;
  log: Logger;
  /** The monotonic clock (tests set it). */
  now?: () => number;
}

/** A fence, as noted on disk and reported by NodeGetVolumeStats. */
export interface FenceNote {
  reason: string;
  at: string;
}

interface Held {
  holder: LeaseHolder;
  leaseId: string;
  fences: boolean;
  backend: string;
  /** Where this node staged the volume: the mounts a fence cuts off (never another's mount of it). */
  stagings: string[];
}

/** How often the keeper looks at its leases: well inside any renew interval. */
const TICK_MS = 200;

/**
 * Keeps this node's leases (see volumes/lease.ts): renews each on a timer while its volume is
 * staged, and — for a writer — fences the volume off its server when it cannot renew in time or
 * finds the lease taken, before the term can run out for any other node. Leases held are noted under
 * the runtime directory with the monotonic time of their last renewal, so a restarted plugin goes on
 * renewing — or fences at once if the last renewal is already too old.
 */
export class LeaseKeeper {
  private readonly held = new Map<string, Held>();
  /** Volumes being fenced now or fenced since this process started (their note on disk comes at the end of the fence). */
  private readonly fencing = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(private readonly options: LeaseKeeperOptions) {
    this.now = options.now ?? monotonicMs;
  }

  /** Starts renewing `leaseId` of `volumeId`, staged at `staging`, taken (or last renewed) by a change sent at `sentAt`. */
  async hold(volumeId: string, leaseId: string, sentAt: number, fences: boolean, staging: string): Promise<void> {
    const backend = this.options.backends.locateVolume(volumeId).store.backend.name;
    const stagings = [...new Set([...(this.held.get(volumeId)?.stagings ?? []), staging])];
    this.held.set(volumeId, { holder: new LeaseHolder(this.options.terms, sentAt), leaseId, fences, backend, stagings });
    this.options.metrics.leasesHeld.set(this.held.size);
    await this.note(volumeId);
    this.start();
  }

  /** True if this node holds and renews a lease on the volume now. */
  isHolding(volumeId: string): boolean {
    return this.held.has(volumeId);
  }

  /** Stops renewing: the volume is unstaged (its lease is taken off the record by the caller). */
  async release(volumeId: string): Promise<void> {
    this.held.get(volumeId)?.holder.released();
    this.held.delete(volumeId);
    this.options.metrics.leasesHeld.set(this.held.size);
    await rm(this.noteOf('leases', volumeId), { force: true });
  }

  /** The fence of this volume on this node, if it was fenced and not staged again since. */
  async fenceOf(volumeId: string): Promise<FenceNote | undefined> {
    const text = await readFile(this.noteOf('fenced', volumeId), 'utf8').catch(() => '');
    return text ? (JSON.parse(text) as FenceNote) : undefined;
  }

  /** The volume was staged again: its fence is history. */
  clearFence(volumeId: string): Promise<void> {
    this.fencing.delete(volumeId);
    return rm(this.noteOf('fenced', volumeId), { force: true });
  }

  /** True if the volume is fenced on this node, or being fenced now: nothing may mount it again but a new NodeStage. */
  async isFenced(volumeId: string): Promise<boolean> {
    return this.fencing.has(volumeId) || (await this.fenceOf(volumeId)) !== undefined;
  }

  /**
   * Fences this node's mounts of the volume at `stagings` once more: a mount made again (recovery of
   * a dead FUSE daemon) while the volume was being fenced must not stay usable.
   */
  async fenceAgain(volumeId: string, stagings: readonly string[]): Promise<string[]> {
    const spec = volumeSpec(this.options.backends, volumeId);
    const mounts = (await readMountTable()).filter((m) => stagings.includes(m.target) && sourceMatches(m, spec.source));
    const steps: string[] = [];
    for (const entry of mounts) steps.push(...(await fenceMount(this.options.mounter, entry, spec).catch((err: Error) => ({ steps: [`fence of ${entry.target} failed: ${err.message}`] }))).steps);
    this.options.log.error({ event: 'fence', volume: volumeId, reason: 'a mount made again while the volume was fenced', steps }, 'fenced a mount of a fenced volume that was made again meanwhile');
    return steps;
  }

  /** At start: leases a previous process held. Still staged: renewed on, or fenced at once if too old. Not staged: forgotten. */
  async resume(): Promise<void> {
    const dir = path.join(this.options.runtimeDir, 'leases');
    const table = await readMountTable();
    for (const name of await readdir(dir).catch(() => [])) {
      const note = JSON.parse(await readFile(path.join(dir, name), 'utf8').catch(() => '{}')) as { volumeId?: string; leaseId?: string; lastRenewal?: number; fences?: boolean; stagings?: string[] };
      if (!note.volumeId || !note.leaseId || note.lastRenewal === undefined || !note.stagings?.length) continue;
      const source = volumeSpec(this.options.backends, note.volumeId).source;
      const stagings = note.stagings.filter((s) => table.some((m) => m.target === s && sourceMatches(m, source)));
      if (!stagings.length) {
        await rm(path.join(dir, name), { force: true });
        continue;
      }
      for (const staging of stagings) await this.hold(note.volumeId, note.leaseId, note.lastRenewal, note.fences ?? true, staging);
      this.options.log.info({ volume: note.volumeId, lastRenewalAgoMs: this.now() - note.lastRenewal }, 'holding on to the lease a previous process held');
    }
    // Down too long to renew in time: fenced now, before this process serves anything.
    const late = [...this.held].filter(([, held]) => held.holder.next(this.now()) === 'fence');
    await Promise.all(late.map(([volumeId, held]) => this.lose(volumeId, held, `its lease was not renewed for ${Math.round((this.now() - held.holder.lastRenewal) / 1000)} s (this node plugin was not running)`)));
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private start(): void {
    this.timer ??= setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  private tick(): void {
    for (const [volumeId, held] of this.held) {
      const action = held.holder.next(this.now());
      if (action === 'renew') void this.renew(volumeId, held);
      else if (action === 'fence') void this.lose(volumeId, held, `its lease was not renewed for ${Math.round((this.now() - held.holder.lastRenewal) / 1000)} s (the storage did not answer in time, or this node plugin was not running)`);
    }
    if (!this.held.size) this.close();
  }

  private async renew(volumeId: string, held: Held): Promise<void> {
    const { backends, nodeId, terms, metrics, log } = this.options;
    const sentAt = this.now();
    held.holder.renewing(sentAt);
    try {
      const outcome = await renewLease(backends, volumeId, nodeId, held.leaseId, AbortSignal.timeout(terms.termMs - terms.marginMs));
      if (outcome === 'lost') return this.lose(volumeId, held, 'its lease was taken over by another node, or the volume is gone');
      held.holder.renewed(sentAt);
      if (held.holder.state === 'held') await this.note(volumeId);
    } catch (err) {
      held.holder.failed();
      metrics.renewalFailures.inc({ backend: held.backend });
      log.warn({ volume: volumeId, err: (err as Error).message, fenceInMs: held.holder.fenceAt - this.now() }, 'could not renew the lease; trying again');
    }
  }

  /** The lease is lost: a reader just stops renewing; a writer's volume is fenced off its server. */
  private async lose(volumeId: string, held: Held, reason: string): Promise<void> {
    if (held.holder.state !== 'held') return;
    held.holder.fenced();
    this.held.delete(volumeId);
    this.options.metrics.leasesHeld.set(this.held.size);
    await rm(this.noteOf('leases', volumeId), { force: true });
    const { log, metrics } = this.options;
    if (!held.fences) return log.warn({ volume: volumeId, reason }, 'lease lost; the volume is read-only here, nothing to fence');
    this.fencing.add(volumeId); // before the mount table is read: a mount made again after that sees it (see isFenced)
    const started = this.now();
    const spec = volumeSpec(this.options.backends, volumeId);
    const steps: string[] = [];
    // This node's staging mounts of the volume: their binds share their connection (FUSE) or superblock (NFS).
    const mounts = (await readMountTable()).filter((m) => held.stagings.includes(m.target) && sourceMatches(m, spec.source));
    for (const entry of mounts) {
      steps.push(...(await fenceMount(this.options.mounter, entry, spec).catch((err: Error) => ({ steps: [`fence of ${entry.target} failed: ${err.message}`] }))).steps);
    }
    const note: FenceNote = { reason, at: new Date().toISOString() };
    await mkdir(path.dirname(this.noteOf('fenced', volumeId)), { recursive: true, mode: 0o700 });
    await writeFile(this.noteOf('fenced', volumeId), JSON.stringify(note), { mode: 0o600 });
    metrics.fences.inc({ backend: held.backend, reason: reason.includes('taken over') ? 'taken' : 'unrenewed' });
    log.error({ event: 'fence', volume: volumeId, reason, steps, fenceMs: this.now() - started, lastRenewalAgoMs: started - held.holder.lastRenewal }, 'fenced the volume off its server: nothing buffered here reaches it any more; the workload gets I/O errors until the volume is staged again');
  }

  private async note(volumeId: string): Promise<void> {
    const held = this.held.get(volumeId);
    if (!held) return;
    const file = this.noteOf('leases', volumeId);
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await writeFile(file, JSON.stringify({ volumeId, leaseId: held.leaseId, lastRenewal: held.holder.lastRenewal, fences: held.fences, stagings: held.stagings }), { mode: 0o600 });
  }

  private noteOf(kind: 'leases' | 'fenced', volumeId: string): string {
    return path.join(this.options.runtimeDir, kind, Buffer.from(volumeId).toString('base64url'));
  }
}
