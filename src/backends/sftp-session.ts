import { Socket } from 'node:net';
import type { Client, SFTPWrapper, Stats, FileEntryWithStats, ConnectConfig } from 'ssh2';
import type { Logger } from 'pino';
import { stopIfEnded, unavailable } from '../csi/errors.js';
import { holdWrites } from '../util/coalesce.js';
import { TimeoutError, withTimeout } from '../util/time.js';

export interface SftpTarget {
  host: string;
  port: number;
  user: string;
  /** "ssh-ed25519 AAAA…": the only host key accepted. */
  hostKey: string;
  privateKey: Buffer;
}

/** SFTP status codes (draft-ietf-secsh-filexfer-02) that the callers care about. */
const NO_SUCH_FILE = 2;

export const isMissing = (err: unknown) => (err as { code?: unknown })?.code === NO_SUCH_FILE;

interface Connection {
  client: Client;
  sftp: SFTPWrapper;
  sock: Socket;
}

export type SftpCall<T> = (sftp: SFTPWrapper, cb: (err: Error | undefined | null, value?: T) => void) => void;

/** Where SFTP requests go: one session, or a pool of them (SftpPool). */
export interface SftpRunner {
  /** Runs one SFTP request with a timeout; once `signal` is aborted no request is sent. */
  run<T>(what: string, fn: SftpCall<T>, signal?: AbortSignal): Promise<T>;
  stat(path: string, signal?: AbortSignal): Promise<Stats>;
  readdir(path: string, signal?: AbortSignal): Promise<FileEntryWithStats[]>;
  /** One session for a sequence of requests that share a handle (a handle is valid on its own session only). */
  pick(): SftpSession;
  close(): Promise<void>;
  describe(): string;
}

/**
 * One long-lived SSH connection with one SFTP channel: connecting costs ~80 ms, so it is never done
 * per request. Requests are pipelined (at most `maxInFlight` at once), each bounded in time; a broken
 * or hung connection is dropped and the next request reconnects.
 */
export class SftpSession implements SftpRunner {
  private session?: Promise<Connection>;
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly target: SftpTarget,
    private readonly log: Logger,
    private readonly opTimeoutMs = 30_000,
    private readonly maxInFlight = 16,
  ) {}

  /**
   * Runs one SFTP request (`fn` calls the callback API) with a timeout and the in-flight limit. Once
   * `signal` is aborted no request is sent; one already sent is let finish (or time out).
   */
  async run<T>(what: string, fn: SftpCall<T>, signal?: AbortSignal): Promise<T> {
    const [result] = await this.runInOrder(what, [fn], signal);
    if (result!.status === 'rejected') throw result!.reason;
    return result!.value as T;
  }

  /**
   * Sends several requests at once, in this order — the server handles a session's requests one
   * after another, so each sees what the one before it did — and waits for all of them: one round
   * trip where awaiting each would take one per request. Each request's outcome is returned.
   */
  async runInOrder(what: string, fns: SftpCall<unknown>[], signal?: AbortSignal): Promise<PromiseSettledResult<unknown>[]> {
    stopIfEnded(signal, `SFTP ${what}`);
    await this.slot();
    try {
      const { sftp, sock } = await this.connect();
      stopIfEnded(signal, `SFTP ${what}`);
      holdWrites(sock); // the requests sent in this turn leave together
      const ops = fns.map((fn) => new Promise<unknown>((resolve, reject) => fn(sftp, (err, value) => (err ? reject(err) : resolve(value)))));
      return await withTimeout(Promise.allSettled(ops), this.opTimeoutMs, `SFTP ${what} on ${this.describe()}`).catch((err: unknown) => {
        if (err instanceof TimeoutError) this.drop(); // timed out: the connection may be hung
        throw err;
      });
    } finally {
      this.inFlight--;
      this.waiting.shift()?.();
    }
  }

  stat = (path: string, signal?: AbortSignal) => this.run<Stats>(`stat ${path}`, (s, cb) => s.lstat(path, cb), signal);
  readdir = (path: string, signal?: AbortSignal) => this.run<FileEntryWithStats[]>(`readdir ${path}`, (s, cb) => s.readdir(path, cb as never), signal);

  pick(): SftpSession {
    return this;
  }

  /** Requests running or waiting for a slot. */
  get load(): number {
    return this.inFlight + this.waiting.length;
  }

  async close(): Promise<void> {
    const session = this.session;
    this.session = undefined;
    if (session) (await session.catch(() => undefined))?.client.end();
  }

  describe(): string {
    return `${this.target.user}@${this.target.host}:${this.target.port}`;
  }

  private async slot(): Promise<void> {
    while (this.inFlight >= this.maxInFlight) await new Promise<void>((r) => this.waiting.push(r));
    this.inFlight++;
  }

  private drop(): void {
    const session = this.session;
    this.session = undefined;
    void session?.then((s) => s.client.destroy(), () => undefined);
  }

  private connect(): Promise<Connection> {
    if (this.session) return this.session;
    const session = this.open();
    const forget = () => {
      if (this.session === session) this.session = undefined;
    };
    session.then(({ client }) => client.once('close', forget), forget);
    this.session = session;
    return session;
  }

  private async open(): Promise<Connection> {
    const expected = hostKeyBlob(this.target.hostKey);
    const { Client } = await loadSsh2();
    return new Promise((resolve, reject) => {
      const client = new Client();
      let hostKeyMismatch = false;
      const fail = (err: Error) => {
        client.destroy();
        reject(
          hostKeyMismatch
            ? unavailable(`the SSH server ${this.describe()} presented a host key other than the pinned hostKey; refusing to connect`)
            : unavailable(`cannot reach SSH server ${this.describe()}: ${err.message}`),
        );
      };
      client.once('error', fail);
      client.once('ready', () => {
        client.sftp((err, sftp) => {
          if (err) return fail(err);
          client.removeListener('error', fail);
          client.on('error', (e) => this.log.warn({ server: this.describe(), err: e.message }, 'SSH connection error'));
          resolve({ client, sftp, sock });
        });
      });
      const sock = new Socket().connect({ host: this.target.host, port: this.target.port });
      const config: ConnectConfig = {
        sock,
        host: this.target.host,
        port: this.target.port,
        username: this.target.user,
        privateKey: this.target.privateKey,
        readyTimeout: 10_000,
        keepaliveInterval: 5_000,
        keepaliveCountMax: 3,
        hostVerifier: (key: Buffer) => {
          hostKeyMismatch = !key.equals(expected);
          return !hostKeyMismatch;
        },
      };
      client.connect(config);
    });
  }
}

/**
 * Several SFTP sessions to one server, each its own SSH connection and its own sftp-server process
 * on the server: the server handles the requests of one session one after another, so a record's
 * fsync on one session holds up only that session's queue. Each request goes to the least busy
 * session (the first among equals, so a quiet backend uses one connection; the others connect
 * when the load needs them).
 */
export class SftpPool implements SftpRunner {
  private readonly sessions: SftpSession[];

  constructor(make: () => SftpSession, size: number) {
    this.sessions = Array.from({ length: Math.max(1, size) }, make);
  }

  pick(): SftpSession {
    let best = this.sessions[0]!;
    for (const s of this.sessions) if (s.load < best.load) best = s;
    return best;
  }

  run<T>(what: string, fn: SftpCall<T>, signal?: AbortSignal): Promise<T> {
    return this.pick().run(what, fn, signal);
  }

  stat = (path: string, signal?: AbortSignal) => this.pick().stat(path, signal);
  readdir = (path: string, signal?: AbortSignal) => this.pick().readdir(path, signal);

  async close(): Promise<void> {
    await Promise.all(this.sessions.map((s) => s.close()));
  }

  describe(): string {
    return this.sessions[0]!.describe();
  }
}

let ssh2: Promise<typeof import('ssh2')> | undefined;
/** ssh2, loaded when a backend first connects rather than at start: its import costs ~50 ms and a 16 MiB WebAssembly heap. */
const loadSsh2 = () => (ssh2 ??= import('ssh2'));

/** The key blob of an OpenSSH public key line ("type base64 [comment]"). */
export function hostKeyBlob(line: string): Buffer {
  const b64 = line.trim().split(/\s+/)[1] ?? '';
  return Buffer.from(b64, 'base64');
}
