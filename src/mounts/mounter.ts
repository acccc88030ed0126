import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { alreadyExists, cancelled, CsiError, notFound, unavailable, internal } from '../csi/errors.js';
import { CommandError, run } from '../util/exec.js';
import { listProcesses } from './connections.js';
import { daemonsOf, stopMountProcesses, type DaemonStop } from './daemon.js';
import { mountAt, readMountTable, sharingFilesystem, sourceMatches, type MountEntry } from './mount-table.js';
import { probeMount } from './probe.js';
import type { Cutoff, MountSpec } from './spec.js';

const MOUNT_TIMEOUT_MS = 30_000;
const UMOUNT_TIMEOUT_MS = 10_000;
const FUSE_CONNECTIONS = '/sys/fs/fuse/connections';
/** How long a mount may take to answer before `force-if-unresponsive` calls it unresponsive. */
const UNRESPONSIVE_PROBE_MS = 3_000;

/**
 * Mounts and unmounts through mount(8), umount(8) and the backend's own program (sshfs), each
 * bounded in time. Secret files (keys, known_hosts) live in a private directory per mount under the
 * runtime directory (a tmpfs), 0600, and are removed when the mount goes.
 */
export class Mounter {
  /** The last mount or secret removal started at each target (see oneAtATime). */
  private readonly atTarget = new Map<string, Promise<unknown>>();

  constructor(
    /** Where the private directories of mounts live (`mounts/`): a tmpfs. */
    readonly runtimeDir: string,
    private readonly log: Logger,
    /** A mount that has not finished by then is stopped: its server does not answer (UNAVAILABLE). */
    private readonly mountTimeoutMs = MOUNT_TIMEOUT_MS,
  ) {}

  /** The private directory for one mount's secret files. */
  secretDir(target: string): string {
    return path.join(this.runtimeDir, 'mounts', Buffer.from(target).toString('base64url').slice(-120));
  }

  /**
   * Mounts `spec` at `target` and checks in the mount table that exactly that is mounted there. One mount
   * or secret removal at a time per target: two volumes a CO stages at one path at once (each under
   * its own volume's lock) must not share, overwrite or remove each other's secret files.
   */
  mount(spec: MountSpec, target: string, signal: AbortSignal): Promise<void> {
    return this.oneAtATime(target, () => this.mountUnlocked(spec, target, signal));
  }

  /** mount(), for a caller that runs inside exclusive(target) already. */
  async mountUnlocked(spec: MountSpec, target: string, signal: AbortSignal): Promise<void> {
    const there = mountAt(await readMountTable(signal), target);
    if (there) throw alreadyExists(`${target} already holds a mount (${there.source}): another volume was staged there meanwhile`);
    await this.mountHere(spec, target, signal);
  }

  /** Runs `work` as the only mount or secret removal at `target` (see mount()): for a caller that looks before it mounts. */
  exclusive<T>(target: string, work: () => Promise<T>): Promise<T> {
    return this.oneAtATime(target, work);
  }

  private async mountHere(spec: MountSpec, target: string, signal: AbortSignal): Promise<void> {
    const dir = this.secretDir(target);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    for (const [name, content] of Object.entries(spec.secretFiles)) {
      await writeFile(path.join(dir, name), content, { mode: 0o600 });
    }
    const stderrFile = path.join(dir, 'mount.log');
    try {
      // sshfs daemonizes and its ssh child keeps stderr open: capture it in a file, not a pipe.
      await run(spec.command, spec.args(target, dir), { timeoutMs: this.mountTimeoutMs, signal, stderrFile });
    } catch (err) {
      const detail = (await readFile(stderrFile, 'utf8').catch(() => '')).trim().split('\n').slice(-3).join(' | ');
      await this.dropSecrets(target);
      throw mountError(spec, err, detail);
    }
    const table = await readMountTable(signal);
    const entry = mountAt(table, target);
    if (!entry || !spec.fstypes.includes(entry.fstype) || !sourceMatches(entry, spec.source)) {
      // Never leave behind (or stack up, on a retry) a mount that failed its check: the newest
      // mount of this source is the one just made (the volume's lock keeps others off).
      const made = table.filter((m) => m.source === spec.source).at(-1);
      if (made) await this.unmount(made, signal, spec.cutoff).catch(() => undefined);
      await this.dropSecrets(target);
      throw internal(`${spec.command} reported success but ${target} is not a ${spec.fstypes.join('/')} mount of ${spec.source}; ${made ? `undid the mount it made at ${made.target}` : 'nothing was left mounted'}`);
    }
    if (spec.readAheadKb) {
      await writeFile(`/sys/class/bdi/${entry.device}/read_ahead_kb`, String(spec.readAheadKb)).catch((err: Error) =>
        this.log.warn({ target, err: err.message }, 'could not raise read-ahead; reads will be slower'),
      );
    }
  }

  /** Bind-mounts `source` at `target`, read-only if asked (mount(8) remounts the bind read-only). */
  async bind(source: string, target: string, readonly: boolean, signal: AbortSignal): Promise<void> {
    const args = ['--bind', ...(readonly ? ['-o', 'ro'] : []), '--', source, target];
    await run('mount', args, { timeoutMs: MOUNT_TIMEOUT_MS, signal }).catch((err: unknown) => {
      throw unavailable(`bind mount of ${source} at ${target} failed: ${(err as Error).message}`);
    });
  }

  /**
   * Unmounts whatever is mounted at `entry.target`, bounded in time even when the server is dead:
   * umount; then, with a `cutoff` (the mount spec's), cut the filesystem off its server, which
   * releases every caller stuck on it but may also break its other mounts — so only for the last
   * user (NodeUnstage); then a lazy unmount as the last resort. Never touches the files.
   */
  async unmount(entry: MountEntry, signal: AbortSignal, cutoff?: Cutoff): Promise<void> {
    const { target } = entry;
    const attempt = (args: string[]) => this.umount(target, args, signal);
    const stillMounted = async () => mountAt(await readMountTable(signal), target) !== undefined;
    try {
      await attempt([]);
      if (!(await stillMounted())) return;
    } catch (err) {
      this.log.warn({ target, err: (err as Error).message }, 'umount failed; escalating');
    }
    if (cutoff && (await this.cutOff(entry, cutoff, signal)) && !(await stillMounted())) return;
    await attempt(['--lazy']).catch((err: unknown) => {
      throw unavailable(`cannot unmount ${target}: ${(err as Error).message}`);
    });
    this.log.warn({ target }, 'unmounted lazily: the server did not answer');
  }

  /** Applies a cutoff and unmounts once more; false if the cutoff did not apply (a mount that answers). */
  private async cutOff(entry: MountEntry, cutoff: Cutoff, signal: AbortSignal): Promise<boolean> {
    const umount = (args: string[]) => this.umount(entry.target, args, signal).catch(() => undefined);
    if (cutoff === 'abort-fuse') {
      await this.abortFuse(entry);
      await umount([]);
      return true;
    }
    // umount -f fails the requests in flight on the whole superblock, which NFS mounts of one server
    // share unless mounted with nosharecache (tether's default; a StorageClass may ask for sharecache):
    // so only when no other mount shares it, and this mount's server does not answer.
    const others = sharingFilesystem(await readMountTable(signal), entry);
    if (others.length) {
      this.log.warn({ target: entry.target, sharedWith: others.slice(0, 3).map((m) => m.target) }, 'not forcing the unmount: other mounts share its filesystem');
      return false;
    }
    if ((await probeMount(entry.target, UNRESPONSIVE_PROBE_MS, signal)).ok) return false;
    await umount(['--force']);
    return true;
  }

  private umount(target: string, args: string[], signal: AbortSignal): Promise<string> {
    return run('umount', [...args, '--no-canonicalize', '--', target], { timeoutMs: UMOUNT_TIMEOUT_MS, signal });
  }

  /** Aborts a FUSE connection: every request stuck on it fails at once, and nothing queued reaches the server. */
  async abortFuse(entry: MountEntry): Promise<void> {
    const minor = entry.device.split(':')[1];
    if (!minor) return;
    await run('mountpoint', ['-q', FUSE_CONNECTIONS], { timeoutMs: 5000 }).catch(() =>
      run('mount', ['-t', 'fusectl', 'fusectl', FUSE_CONNECTIONS], { timeoutMs: 5000 }).catch(() => undefined),
    );
    await writeFile(path.join(FUSE_CONNECTIONS, minor, 'abort'), '1').catch((err: Error) =>
      this.log.warn({ target: entry.target, err: err.message }, 'could not abort the FUSE connection'),
    );
  }

  /**
   * Cuts the FUSE mount at `entry.target` off for good — the mount half of a fence (see fence.ts):
   * its processes (found by the mount's private directory in their command lines) frozen, its FUSE
   * connection aborted, their TCP connections reset, the processes killed.
   */
  async fenceDaemon(entry: MountEntry): Promise<DaemonStop & { by?: string }> {
    return stopMountProcesses(this.secretDir(entry.target), () => this.abortFuse(entry));
  }

  /** Whether the daemon (sshfs) of the FUSE mount at each target is alive; from one read of /proc. */
  async daemonsAlive(targets: readonly string[]): Promise<Map<string, boolean | undefined>> {
    const pids = daemonsOf(await listProcesses(), targets.map((target) => ({ target, dir: this.secretDir(target) })));
    return new Map(targets.map((t) => [t, (pids.get(t) ?? 0) > 0]));
  }

  /** Why this mounter cannot make FUSE mounts now (its mount keeper does not answer), or undefined. */
  async unavailable(_signal?: AbortSignal): Promise<string | undefined> {
    return undefined;
  }

  /** Removes the secret files of the mount that was at `target` — unless a mount is there again (another volume's, staged meanwhile: they are its). */
  removeSecrets(target: string): Promise<void> {
    return this.oneAtATime(target, async () => {
      if (!mountAt(await readMountTable(), target)) await this.dropSecrets(target);
    });
  }

  private dropSecrets(target: string): Promise<void> {
    return rm(this.secretDir(target), { recursive: true, force: true });
  }

  /** Runs `work` after every earlier mount or secret removal at `target` has settled. */
  private oneAtATime<T>(target: string, work: () => Promise<T>): Promise<T> {
    const next = (this.atTarget.get(target) ?? Promise.resolve()).catch(() => undefined).then(work);
    this.atTarget.set(target, next);
    const forget = () => {
      if (this.atTarget.get(target) === next) this.atTarget.delete(target);
    };
    next.then(forget, forget);
    return next;
  }
}

/**
 * A failed mount, with the status a CO can act on: stopped because the call ended, missing volume,
 * unreachable server (a mount that does not finish in time is one: its server does not answer), or other.
 */
function mountError(spec: MountSpec, err: unknown, stderr: string): CsiError {
  const outcome = err instanceof CommandError ? err.outcome : 'failed';
  const said = stderr ? `: ${stderr}` : '';
  if (outcome === 'cancelled') return cancelled(`the call ended while ${spec.command} mounted ${spec.source}; stopped it${said}`);
  if (outcome === 'timed out') return unavailable(`${spec.command} could not mount ${spec.source}: the server does not answer (${(err as Error).message})${said}`);
  const detail = stderr || (err as Error).message;
  const message = `${spec.command} could not mount ${spec.source}: ${detail}`;
  if (/no such file|not found/i.test(detail)) return notFound(`${message} (the volume directory does not exist on the server)`);
  if (UNREACHABLE.test(detail)) return unavailable(message);
  return internal(message);
}

/** What mount.nfs, sshfs and ssh print when the server cannot be reached or refuses the connection. */
const UNREACHABLE = /connection|host key|timed out|unreachable|no route to host|host is down|refused|reset|disconnect|permission denied/i;

