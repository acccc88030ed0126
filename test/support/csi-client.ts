import { credentials, loadPackageDefinition, type Client, type ServiceError, Metadata } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { CSI_PROTO, LOADER_OPTIONS } from '../../src/grpc/proto.js';

type Call = (request?: object) => Promise<any>;
export type CsiClient = Record<string, Call> & { close(): void };

/** A plain grpc-js client of all three CSI services on one socket, with promise methods named like the RPCs. */
export function csiClient(endpoint: string): CsiClient {
  const pkg = loadPackageDefinition(loadSync(CSI_PROTO, LOADER_OPTIONS)) as any;
  const clients: Client[] = ['Identity', 'Controller', 'Node'].map((s) => new pkg.csi.v1[s](endpoint, credentials.createInsecure()));
  const api: Record<string, Call> = {};
  for (const client of clients) {
    for (const method of Object.keys(Object.getPrototypeOf(client))) {
      if (!/^[A-Z]/.test(method)) continue;
      api[method] = (request = {}) =>
        new Promise((resolve, reject) =>
          (client as any)[method](request, new Metadata(), { deadline: Date.now() + 60_000 }, (err: ServiceError | null, res: unknown) => (err ? reject(err) : resolve(res))),
        );
    }
  }
  return Object.assign(api, { close: () => clients.forEach((c) => c.close()) }) as CsiClient;
}
