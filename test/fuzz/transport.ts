// One gRPC client, one HTTP/2 connection, for every call of the fuzz test: a call that wedges the
// connection then shows in the Probe after its batch instead of hiding behind a fresh connection.
// Bodies go out as raw bytes (identity serializer) so random bytes reach the server as they are.
import { Client, credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';

export interface Outcome {
  code: status;
  details: string;
  /** The response body (OK only). */
  response?: Buffer;
  /** When the call was sent (performance.now()) and how long its answer took. */
  startedAt: number;
  ms: number;
}

const raw = (b: Buffer) => b;

export class Transport {
  private client: Client;
  /** How many times the connection was replaced after it stopped answering. */
  reconnects = 0;

  constructor(private readonly endpoint: string) {
    this.client = this.connect();
  }

  private connect(): Client {
    // Responses may be large (ListVolumes of every volume the fuzzing created): no client-side cap.
    return new Client(this.endpoint, credentials.createInsecure(), { 'grpc.max_receive_message_length': -1 });
  }

  /** Sends `body` to `path`; resolves with the status, never rejects. */
  call(path: string, body: Buffer, deadlineMs: number): Promise<Outcome> {
    const started = performance.now();
    return new Promise((resolve) => {
      this.client.makeUnaryRequest(path, raw, raw, body, new Metadata(), { deadline: Date.now() + deadlineMs }, (err: ServiceError | null, response?: Buffer) => {
        const ms = Math.round(performance.now() - started);
        if (err) resolve({ code: err.code, details: err.details ?? '', startedAt: started, ms });
        else resolve({ code: status.OK, details: '', response, startedAt: started, ms });
      });
    });
  }

  /** A new connection, after the old one stopped answering: the rest of the run can still find other faults. */
  reconnect(): void {
    this.client.close();
    this.client = this.connect();
    this.reconnects++;
  }

  close(): void {
    this.client.close();
  }
}
