import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { KeyedLocks } from '../grpc/locks.js';
import type { MetricsSink } from '../grpc/metrics-sink.js';
import { mountAt, readMountTable, type MountEntry } from '../mounts/mount-table.js';
import type { Mounter } from '../mounts/mounter.js';
import { probeMount } from '../mounts/probe.js';
import type { MountSpec } from '../mounts/spec.js';
import type { Backends } from '../volumes/registry.js';
import { isNoteTemp, writeNote } from '../util/atomic-file.js';
import { DATA_DIR } from '../volumes/layout.js';
import type { LeaseKeeper } from './leases.js';
import { recoveryPlan, withTarget, type Rebind, type RecoveryPlan, type StageRecord } from './recovery-plan.js';
import { orderedSpec, PROBE_TIMEOUT_MS, volumeSpec } from './volume-mounts.js';

export interface MountRecoveryOptions {
  backends: Backends;
  mounter: Mounter;
  locks: KeyedLocks;
  leases: LeaseKeeper;
  /** Where the records live (see StageRecord); the node's runtime directory. */
  runtimeDir: string;
  metrics: MetricsSink;
  log: Logger;
  /** How often to look when all is well. */
  intervalMs: number;
  /** How often to look while something waits (a mount keeper that does not answer, a recovery that failed). */
  retryMs: number;
}

/** A whole recovery (unmount, mount, binds) may take this long; the mount alone is bounded by the mounter. */
const RECOVERY_BUDGET_MS = 90_000;
/** A volume whose recovery failed is tried again after this long, doubling up to RETRY_MAX_MS. */
const RETRY_MAX_MS = 60_000;

/**
 * Mounts again what tether staged on this node over FUSE (sshfs) and whose daemon died — with the
 * container of the node plugin or of the mount keeper that ran it — and binds every target that was
 * bound from it again, read-only where it was. Looks on start, every `intervalMs` (`retryMs` while
 * something waits) and when NodeGetVolumeStats or NodePublish finds a dead mount.
 *
 * Only what tether noted it made (StageRecord, written by NodeStage and NodePublish under the
 * volume's lock) at the paths it noted, and only mounts of the volume's own source there. A fenced
 * volume is never mounted again here: only a new NodeStage, which takes its lease again, may.
 */
export class MountRecovery {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private closed = false;
  /** The last time the mounter could not say which daemons are alive (the keeper did not answer), for the log. */
  private mounterDown: string | undefined;
  private readonly failures = new Map<string, { count: number; next: number }>();
  private readonly told = new Set<string>();

  constructor(private readonly options: MountRecoveryOptions) {}

  // The notes below are written under the volume's lock (the CSI call's or the recovery's), and never
  // fail a call: a note that could not be written costs a recovery, not the mount that was made.

  /** NodeStage mounted `spec` at `staging`: noted if a daemon serves it (a kernel mount outlives the plugin by itself). */
  staged(staging: string, spec: MountSpec): Promise<void> {
    if (!spec.daemon || !spec.order) return Promise.resolve();
    const { volumeId, flags, readonly, group } = spec.order;
    return this.noting(staging, async () => {
      const old = await this.recordAt(staging);
      await this.write({ volumeId, staging, flags: [...flags], readonly, group, targets: old?.volumeId === volumeId ? old.targets : [] });
    });
  }

  /** NodePublish bound `<staging>/data` at `target`. */
  published(staging: string, target: string, readonly: boolean): Promise<void> {
    return this.noting(staging, async () => {
      const record = await this.recordAt(staging);
      if (record) await this.write(withTarget(record, target, readonly));
    });
  }

  /**
   * NodeUnpublish took `target` of the volume down. `stagings`, the volume's staging mounts on this
   * node, are where its record is looked for first; every record is read only if none of them has it.
   */
  unpublished(volumeId: string, target: string, stagings: string[] = []): Promise<void> {
    const holds = (record: StageRecord | undefined): record is StageRecord => record?.volumeId === volumeId && record.targets.some((t) => t.path === target);
    return this.noting(target, async () => {
      const likely = (await Promise.all(stagings.map((s) => this.recordAt(s)))).filter(holds);
      for (const record of likely.length ? likely : (await this.records()).filter(holds)) await this.write({ ...record, targets: record.targets.filter((t) => t.path !== target) });
    });
  }

  /** NodeUnstage took the staging mount down. */
  unstaged(staging: string): Promise<void> {
    return this.noting(staging, () => rm(this.fileOf(staging), { force: true }));
  }

  private async noting(at: string, work: () => Promise<void>): Promise<void> {
    await work().catch((err: Error) => this.options.log.warn({ path: at, err: err.message }, 'could not note a staged FUSE mount for recovery; it is mounted as asked, but not mounted again by tether if its daemon dies'));
  }

  start(): void {
    this.schedule(0);
  }

  /** Something found a dead mount: look now. */
  soon(): void {
    if (!this.running) this.schedule(0);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  /**
   * NodePublish found the staging mount at `staging` gone for good (its caller holds the volume's
   * lock): mounts it again with every target, as recorded. False if there is no record of it.
   */
  async recoverStaged(volumeId: string, staging: string, signal: AbortSignal, log: Logger): Promise<boolean> {
    const record = await this.recordAt(staging);
    if (record?.volumeId !== volumeId) return false;
    const plan = recoveryPlan(record, await readMountTable(signal), this.sourceOf(record), false);
    if (plan.kind !== 'remount') return false;
    await this.recover(record, plan, signal, log);
    return true;
  }

  /** One look at every record; true if something waits (looked at again after `retryMs`). */
  async pass(): Promise<boolean> {
    const records = await this.records();
    if (!records.length) return false;
    const table = await readMountTable();
    let alive: Map<string, boolean | undefined>;
    try {
      alive = await this.options.mounter.daemonsAlive(records.map((r) => r.staging));
      if (this.mounterDown) this.options.log.info({ staged: records.length }, 'the mount keeper answers again');
      this.mounterDown = undefined;
    } catch (err) {
      if (!this.mounterDown) this.options.log.warn({ staged: records.length, err: (err as Error).message }, 'cannot tell whether staged FUSE mounts are alive; looking again shortly');
      this.mounterDown = (err as Error).message;
      return true;
    }
    let waiting = false;
    for (const record of records) {
      let plan: RecoveryPlan;
      try {
        plan = recoveryPlan(record, table, this.sourceOf(record), alive.get(record.staging));
      } catch {
        continue; // its backend is no longer configured: nothing can mount it
      }
      if (plan.kind === 'ok') this.failures.delete(record.staging);
      else waiting = !(await this.inBackground(record)) || waiting;
    }
    return waiting;
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.running ??= this.pass()
        .catch((err: unknown) => {
          this.options.log.warn({ err: (err as Error).message }, 'could not look for dead FUSE mounts; looking again shortly');
          return true;
        })
        .then((waiting) => {
          this.running = undefined;
          this.schedule(waiting ? this.options.retryMs : this.options.intervalMs);
        });
    }, ms);
    this.timer.unref();
  }

  /** Recovers one volume under its lock; false if it must be tried again (lock busy, failed). */
  private async inBackground(record: StageRecord): Promise<boolean> {
    const failed = this.failures.get(record.staging);
    if (failed && failed.next > Date.now()) return false;
    const { locks, leases, log } = this.options;
    let lock;
    try {
      lock = locks.acquire(record.volumeId, 'mounting a dead FUSE mount again');
    } catch {
      return false; // a call on the volume runs: look again shortly
    }
    const signal = AbortSignal.timeout(RECOVERY_BUDGET_MS);
    try {
      if (await leases.isFenced(record.volumeId)) return this.tellOnce(record, 'fenced', 'a fenced volume is not mounted again until it is staged again');
      const plan = recoveryPlan(record, await readMountTable(signal), this.sourceOf(record), (await this.options.mounter.daemonsAlive([record.staging])).get(record.staging));
      if (plan.kind === 'forget') await this.unstaged(record.staging);
      if (plan.kind === 'ok' || plan.kind === 'forget') return true;
      if (plan.kind === 'remount' && plan.dead && !(await this.goneForGood(plan.dead.target, signal))) return true;
      log.debug({ volume: record.volumeId, staging: record.staging, plan: plan.kind, rebind: plan.rebind.map((r) => r.target) }, 'mounting a dead FUSE mount again');
      await this.recover(record, plan, signal, log);
      this.failures.delete(record.staging);
      return true;
    } catch (err) {
      const count = (this.failures.get(record.staging)?.count ?? 0) + 1;
      this.failures.set(record.staging, { count, next: Date.now() + Math.min(RETRY_MAX_MS, this.options.retryMs * 2 ** (count - 1)) });
      this.options.metrics.recoveries.inc({ backend: this.backendOf(record), outcome: 'failed' });
      log.warn({ volume: record.volumeId, staging: record.staging, err: (err as Error).message, attempt: count }, 'could not mount a dead FUSE mount again; trying again later');
      return false;
    } finally {
      lock.release();
    }
  }

  /**
   * The recovery itself: the dead staging mount goes (lazily if it must), the volume is mounted there
   * again as recorded (through the mount keeper, if there is one), and every recorded target that
   * holds the volume's dead mount, or nothing, is bound again from it (on top of the dead bind).
   */
  private async recover(record: StageRecord, plan: Exclude<RecoveryPlan, { kind: 'ok' | 'forget' }>, signal: AbortSignal, log: Logger): Promise<void> {
    const { mounter, leases, metrics } = this.options;
    const started = performance.now();
    const spec = orderedSpec(this.options.backends, { volumeId: record.volumeId, flags: record.flags, readonly: record.readonly, group: record.group });
    if (plan.kind === 'remount') {
      if (plan.dead) await mounter.unmount(plan.dead, signal, spec.cutoff);
      await mounter.mount(spec, record.staging, signal);
    }
    const staged = mountAt(await readMountTable(signal), record.staging);
    const deadDevice = plan.kind === 'remount' ? plan.dead?.device : undefined;
    const targets: string[] = [];
    for (const rebind of plan.rebind) if (await this.bindAgain(record, rebind, staged, deadDevice, signal)) targets.push(rebind.target);
    // A fence that began meanwhile read the mount table before this mount was made: this one is fenced too.
    if (await leases.isFenced(record.volumeId)) await leases.fenceAgain(record.volumeId, [record.staging]);
    const ms = Math.round(performance.now() - started);
    metrics.recoveries.inc({ backend: this.backendOf(record), outcome: 'recovered' });
    log.warn({ event: 'mount-recovered', volume: record.volumeId, staging: record.staging, remounted: plan.kind === 'remount', targets, ms }, 'mounted a volume whose FUSE daemon had died again, and bound its targets again');
  }

  /**
   * Binds one recorded target again, unless it holds a live mount of the volume; true if bound. The dead bind stays beneath, and the new one is stacked on it: a container
   * that mounts the target with HostToContainer propagation holds a slave of that dead bind — not of
   * its parent directory — so only a mount made on top of it reaches the container (one made after
   * taking it down would not). NodeUnpublish takes both down.
   */
  private async bindAgain(record: StageRecord, rebind: Rebind, staged: MountEntry | undefined, deadDevice: string | undefined, signal: AbortSignal): Promise<boolean> {
    const { current } = rebind;
    if (current.device === staged?.device) return false;
    if (current.device !== deadDevice && !(await this.goneForGood(rebind.target, signal))) return false;
    await this.options.mounter.bind(path.join(record.staging, DATA_DIR), rebind.target, rebind.readonly, signal);
    return true;
  }

  /** A mount that can never answer again (dead daemon, aborted connection); one that answers, or whose server merely does not, is kept. */
  private async goneForGood(target: string, signal: AbortSignal): Promise<boolean> {
    const health = await probeMount(target, PROBE_TIMEOUT_MS, signal);
    return !health.ok && health.kind === 'gone';
  }

  private tellOnce(record: StageRecord, why: string, message: string): true {
    const key = `${why} ${record.staging}`;
    if (!this.told.has(key)) this.options.log.info({ volume: record.volumeId, staging: record.staging }, `not mounting a dead FUSE mount again: ${message}`);
    this.told.add(key);
    return true;
  }

  private sourceOf(record: StageRecord): string {
    return volumeSpec(this.options.backends, record.volumeId).source;
  }

  private backendOf(record: StageRecord): string {
    return record.volumeId.split('/')[0] ?? '';
  }

  private async records(): Promise<StageRecord[]> {
    const dir = path.join(this.options.runtimeDir, 'staged');
    const names = (await readdir(dir).catch(() => [])).filter((n) => !isNoteTemp(n));
    const found = await Promise.all(names.map((n) => readFile(path.join(dir, n), 'utf8').then((t) => JSON.parse(t) as StageRecord, () => undefined)));
    return found.filter((r): r is StageRecord => r !== undefined && isRecord(r));
  }

  private async recordAt(staging: string): Promise<StageRecord | undefined> {
    const record = await readFile(this.fileOf(staging), 'utf8').then((t) => JSON.parse(t) as StageRecord, () => undefined);
    return record?.staging === staging ? record : undefined;
  }

  private async write(record: StageRecord): Promise<void> {
    await writeNote(this.fileOf(record.staging), JSON.stringify(record));
  }

  private fileOf(staging: string): string {
    return path.join(this.options.runtimeDir, 'staged', Buffer.from(staging).toString('base64url').slice(-120));
  }
}

/** A record as written by this code: the fields the plan reads are there. */
const isRecord = (r: StageRecord) => typeof r.volumeId === 'string' && typeof r.staging === 'string' && Array.isArray(r.targets) && Array.isArray(r.flags);
