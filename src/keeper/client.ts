import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { cancelled, CsiError, internal, unavailable } from '../csi/errors.js';
import type { DaemonStop } from '../mounts/daemon.js';
import type { MountEntry } from '../mounts/mount-table.js';
import { Mounter } from '../mounts/mounter.js';
import type { MountSpec } from '../mounts/spec.js';
import { loadKeeperService, type MountKeeperClient } from './protocol.js';

/** How long each keeper call may take: a mount is bounded at 30 s by the keeper's mounter. */
const TIMEOUTS = { Mount: 45_000, Unmount: 30_000, Fence: 3_000, List: 10_000, Health: 2_000 } as const;
type Method = keyof typeof TIMEOUTS;

/**
 * The node plugin's client of its mount keeper (--mount-keeper unix:///…). Every call is bounded by
 * its own time limit and by the caller's signal (a call whose CSI call ended is cancelled). The
 * keeper's statuses pass through with its message; a keeper that does not answer is UNAVAILABLE,
 * naming its socket. The channel reconnects within a second once the keeper is back.
 */
export class KeeperClient {
  private readonly client: MountKeeperClient;

  constructor(readonly endpoint: string) {
    const Client = loadKeeperService();
    this.client = new Client(endpoint, credentials.createInsecure(), {
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 1_000,
      'grpc.min_reconnect_backoff_ms': 200,
    });
  }

  mount(spec: MountSpec, target: string, signal?: AbortSignal) {
    const order = spec.order;
    if (!order) throw internal(`no volume order for the mount of ${spec.source}: the keeper cannot be asked for it`);
    const request = { volume_id: order.volumeId, target, mount_flags: [...order.flags], readonly: order.readonly, group: order.group === undefined ? '' : String(order.group) };
    return this.call('Mount', request, signal);
  }

  unmount(target: string, signal?: AbortSignal) {
    return this.call('Unmount', { target }, signal);
  }

  fence(target: string, signal?: AbortSignal) {
    return this.call('Fence', { target }, signal);
  }

  list(probe: boolean, signal?: AbortSignal) {
    return this.call('List', { probe }, signal);
  }

  health(signal?: AbortSignal) {
    return this.call('Health', {}, signal);
  }

  close(): void {
    this.client.close();
  }

  private call<M extends Method>(method: M, request: Parameters<MountKeeperClient[M]>[0], signal?: AbortSignal): Promise<Reply<M>> {
    if (signal?.aborted) return Promise.reject(cancelled(`the call ended before the mount keeper was asked to ${method}`));
    const timeoutMs = TIMEOUTS[method];
    return new Promise<Reply<M>>((resolve, reject) => {
      const fn = this.client[method].bind(this.client) as (req: typeof request, md: Metadata, opts: { deadline: number }, cb: (err: ServiceError | null, res?: Reply<M>) => void) => { cancel(): void };
      const onAbort = () => call.cancel();
      const call = fn(request, new Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(this.failure(method, err, timeoutMs, signal));
        else resolve(res!);
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** The keeper's own statuses pass through; a keeper that cannot be reached, or is too slow, is UNAVAILABLE naming its socket. */
  private failure(method: Method, err: ServiceError, timeoutMs: number, signal?: AbortSignal): CsiError {
    if (err.code === status.CANCELLED && signal?.aborted) return cancelled(`the call ended while the mount keeper was asked to ${method}`);
    if (err.code === status.DEADLINE_EXCEEDED) return unavailable(`the mount keeper at ${this.endpoint} did not answer ${method} within ${timeoutMs / 1000} s`);
    if (err.code === status.UNAVAILABLE) {
      const why = /connect (E[A-Z]+)/.exec(err.details)?.[1] ?? err.details.split('. ')[0];
      return unavailable(`the mount keeper at ${this.endpoint} is not answering (${why}); it makes and holds this node's sshfs mounts: is its pod running on this node?`);
    }
    return new CsiError(err.code, `mount keeper: ${err.details}`);
  }
}

type Reply<M extends Method> = Parameters<Parameters<MountKeeperClient[M]>[1]>[1] extends infer R ? NonNullable<R> : never;

/**
 * A Mounter whose FUSE mounts (the ones a daemon serves: sshfs) are made and held by the mount
 * keeper, so that they outlive this node plugin's container; kernel mounts (NFS, binds) and every
 * unmount it makes itself, as before — a kernel operation, possible while the keeper is down. The
 * one seam between the node's handlers and the keeper: nothing above it knows which one mounts.
 */
export class KeeperMounter extends Mounter {
  constructor(
    runtimeDir: string,
    private readonly logger: Logger,
    private readonly keeper: KeeperClient,
  ) {
    super(runtimeDir, logger);
  }

  override async mount(spec: MountSpec, target: string, signal: AbortSignal): Promise<void> {
    if (!spec.daemon) return super.mount(spec, target, signal);
    await this.keeper.mount(spec, target, signal);
  }

  /** The keeper removes its key copy (and a mount of its own still there); one that does not answer does it when it starts again. */
  override async removeSecrets(target: string): Promise<void> {
    await super.removeSecrets(target);
    await this.keeper.unmount(target).catch((err: Error) => this.logger.warn({ target, err: err.message }, 'the mount keeper did not take its key copy away; it does when it answers again'));
  }

  /**
   * The daemon is the keeper's: it freezes it, aborts the FUSE connection, resets and kills (its
   * processes may be in a PID namespace this process cannot see). A keeper that does not answer in
   * time: the FUSE connection is aborted from here (a kernel operation), nothing more can be done.
   */
  override async fenceDaemon(entry: MountEntry): Promise<DaemonStop & { by?: string }> {
    try {
      const r = await this.keeper.fence(entry.target);
      return { processes: r.processes, connections: r.connections, servers: r.servers.map(parseEndpoint).filter((e) => e !== undefined), problems: r.problems, by: 'by the mount keeper' };
    } catch (err) {
      const local = await super.fenceDaemon(entry); // aborts the FUSE connection; finds the keeper's processes only in a shared PID namespace
      const problem = `the mount keeper did not stop the mount's sshfs (${(err as Error).message}); if it is down, its daemons died with it`;
      return { ...local, problems: [...local.problems, problem], by: 'the mount keeper did not answer: aborted from here' };
    }
  }

  /** From the keeper's List: true or false for the mounts it lists, undefined (not known) for others. Throws if the keeper does not answer. */
  override async daemonsAlive(targets: readonly string[]): Promise<Map<string, boolean | undefined>> {
    const listed = new Map((await this.keeper.list(false)).mounts.map((m) => [m.target, m.alive]));
    return new Map(targets.map((t) => [t, listed.get(t)]));
  }

  override async unavailable(signal?: AbortSignal): Promise<string | undefined> {
    return this.keeper.health(signal).then(
      () => undefined,
      (err: Error) => err.message,
    );
  }
}

/** "10.0.0.5:22", "[fd00::1]:22" → an endpoint. */
function parseEndpoint(s: string): { address: string; port: number } | undefined {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(s);
  return m ? { address: m[1]!, port: Number(m[2]) } : undefined;
}
