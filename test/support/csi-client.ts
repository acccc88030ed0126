import { credentials, loadPackageDefinition, type Client, type ServiceError, Metadata } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { CSI_PROTO, LOADER_OPTIONS } from '../../src/grpc/proto.js';

/** Per-call options; without them a call gets the default 60 s deadline, as before. */
export interface CallOptions {
  /** Client deadline for this call, in ms from now. */
  deadlineMs?: number;
  /** Aborting it cancels the call (grpc `call.cancel()`): the client sees CANCELLED, the server a cancellation. */
  signal?: AbortSignal;
}

type Call = (request?: object, options?: CallOptions) => Promise<any>;

/** Every RPC of the Identity, Controller and Node services of CSI v1.12. */
export const CSI_METHODS = [
  'GetPluginInfo', 'GetPluginCapabilities', 'Probe',
  'CreateVolume', 'DeleteVolume', 'ControllerPublishVolume', 'ControllerUnpublishVolume', 'ValidateVolumeCapabilities', 'ListVolumes',
  'GetCapacity', 'ControllerGetCapabilities', 'CreateSnapshot', 'DeleteSnapshot', 'ListSnapshots', 'GetSnapshot',
  'ControllerExpandVolume', 'ControllerGetVolume', 'ControllerModifyVolume',
  'NodeStageVolume', 'NodeUnstageVolume', 'NodePublishVolume', 'NodeUnpublishVolume', 'NodeGetVolumeStats', 'NodeExpandVolume',
  'NodeGetCapabilities', 'NodeGetInfo',
] as const;
export type CsiMethod = (typeof CSI_METHODS)[number];
/** Every RPC of CSI_METHODS, typed as present (no `!` needed), plus close(); other names may be looked up as strings. */
export type CsiClient = Record<string, Call> & Record<CsiMethod, Call> & { close(): void };

const DEFAULT_DEADLINE_MS = 60_000;

/**
 * A plain grpc-js client of the CSI services on one socket, with promise methods named like the RPCs.
 * All services share one channel — one HTTP/2 connection, as a CO's sidecar has — so a call that
 * harmed the connection would be seen by the next.
 */
export function csiClient(endpoint: string): CsiClient {
  const pkg = loadPackageDefinition(loadSync(CSI_PROTO, LOADER_OPTIONS)) as any;
  const first: Client = new pkg.csi.v1.Identity(endpoint, credentials.createInsecure());
  const clients: Client[] = [first, ...['Controller', 'GroupController', 'Node'].map((s) => new pkg.csi.v1[s](endpoint, credentials.createInsecure(), { channelOverride: first.getChannel() }))];
  const api: Record<string, Call> = {};
  for (const client of clients) {
    for (const method of Object.keys(Object.getPrototypeOf(client))) {
      if (!/^[A-Z]/.test(method)) continue;
      api[method] = (request = {}, options: CallOptions = {}) =>
        new Promise((resolve, reject) => {
          const call = (client as any)[method](
            request,
            new Metadata(),
            { deadline: Date.now() + (options.deadlineMs ?? DEFAULT_DEADLINE_MS) },
            (err: ServiceError | null, res: unknown) => (err ? reject(err) : resolve(res)),
          );
          if (options.signal) {
            if (options.signal.aborted) call.cancel();
            else options.signal.addEventListener('abort', () => call.cancel(), { once: true });
          }
        });
    }
  }
  return Object.assign(api, { close: () => first.close() }) as CsiClient;
}
