import { Client, type SFTPWrapper, type Stats, type FileEntryWithStats, type ConnectConfig } from 'ssh2';
import type { Logger } from 'pino';
import { stopIfEnded, unavailable } from '../csi/errors.js';
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

/**
 * One long-lived SSH connection with one SFTP channel per backend: connecting costs ~80 ms, so it is
 * never done per request. Requests are pipelined (at most `maxInFlight` at once), each bounded in time;
 * a broken or hung connection is dropped and the next request reconnects.
 */
export class SftpSession {
  private session?: Promise<{ client: Client; sftp: SFTPWrapper }>;
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly target: SftpTarget,
    private readonly log: Logger,
    private readonly opTimeoutMs = 30_000,
    private readonly maxInFlight = 8,
  ) {}

  /**
   * Runs one SFTP request (`fn` calls the callback API) with a timeout and the in-flight limit. Once
   * `signal` is aborted no request is sent; one already sent is let finish (or time out).
   */
  async run<T>(what: string, fn: (sftp: SFTPWrapper, cb: (err: Error | undefined | null, value?: T) => void) => void, signal?: AbortSignal): Promise<T> {
    stopIfEnded(signal, `SFTP ${what}`);
    await this.slot();
    try {
      const { sftp } = await this.connect();
      stopIfEnded(signal, `SFTP ${what}`);
      const op = new Promise<T>((resolve, reject) => fn(sftp, (err, value) => (err ? reject(err) : resolve(value as T))));
      return await withTimeout(op, this.opTimeoutMs, `SFTP ${what} on ${this.describe()}`).catch((err: unknown) => {
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

  private connect(): Promise<{ client: Client; sftp: SFTPWrapper }> {
    if (this.session) return this.session;
    const session = this.open();
    const forget = () => {
      if (this.session === session) this.session = undefined;
    };
    session.then(({ client }) => client.once('close', forget), forget);
    this.session = session;
    return session;
  }

  private open(): Promise<{ client: Client; sftp: SFTPWrapper }> {
    const expected = hostKeyBlob(this.target.hostKey);
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
          resolve({ client, sftp });
        });
      });
      const config: ConnectConfig = {
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

/** The key blob of an OpenSSH public key line ("type base64 [comment]"). */
export function hostKeyBlob(line: string): Buffer {
  const b64 = line.trim().split(/\s+/)[1] ?? '';
  return Buffer.from(b64, 'base64');
}
