// The kubelet's side of plugin registration, for tests: a grpc-js client of the Registration service
// on a plugin's registration socket, as the kubelet's plugin watcher uses it (GetInfo, then
// NotifyRegistrationStatus with the outcome).
import { credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import type { PluginInfo__Output } from '../../src/csi/generated/pluginregistration/PluginInfo.js';
import { loadRegistrationService } from '../../src/grpc/proto.js';

export interface KubeletClient {
  getInfo(): Promise<PluginInfo__Output>;
  notify(status: { plugin_registered: boolean; error?: string }): Promise<void>;
  close(): void;
}

const DEADLINE_MS = 5000;

/**
 * A client of the registration socket at `socketPath`. `authority`: the HTTP/2 :authority to send.
 * The default is what the kubelet sends: it dials the bare socket path with grpc-go (≥ 1.57), which
 * percent-encodes it (see README, "gRPC clients and the :authority trap"); undefined: grpc-js' own
 * ("localhost").
 */
export function kubeletClient(socketPath: string, authority: string | undefined = encodeURIComponent(socketPath)): KubeletClient {
  const Registration = loadRegistrationService();
  const client = new Registration(`unix://${socketPath}`, credentials.createInsecure(), authority === undefined ? {} : { 'grpc.default_authority': authority });
  const options = () => ({ deadline: Date.now() + DEADLINE_MS });
  return {
    getInfo: () =>
      new Promise((resolve, reject) => client.GetInfo({}, new Metadata(), options(), (err: ServiceError | null, info?: PluginInfo__Output) => (err || !info ? reject(err ?? new Error('no answer')) : resolve(info)))),
    notify: (status) =>
      new Promise((resolve, reject) => client.NotifyRegistrationStatus({ plugin_registered: status.plugin_registered, error: status.error ?? '' }, new Metadata(), options(), (err: ServiceError | null) => (err ? reject(err) : resolve()))),
    close: () => client.close(),
  };
}
