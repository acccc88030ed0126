import path from 'node:path';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { PluginInfo } from '../csi/generated/pluginregistration/PluginInfo.js';
import type { RegistrationHandlers } from '../csi/generated/pluginregistration/Registration.js';
import { boundMessage } from './limits.js';
import { loadRegistrationService } from './proto.js';
import { bindSocket, removeIfSame, socketPathProblem } from '../util/unix-socket.js';

/**
 * The kubelet's plugin registration, served by tether itself (what the node-driver-registrar sidecar
 * does otherwise). The kubelet watches its plugins_registry directory; when a socket appears there it
 * dials it, calls GetInfo (who is this, where is its CSI socket, which versions), registers the driver —
 * calling NodeGetInfo on the CSI socket — and calls NotifyRegistrationStatus with the outcome. When the
 * socket goes, it unregisters the driver; when a new one appears (a restart), it registers again.
 *
 * Not a CSI service: it does not go through the CSI request pipeline, but its messages are bounded and
 * what the kubelet says is logged as one line.
 */

/** PluginInfo.type of a CSI driver. */
export const CSI_PLUGIN_TYPE = 'CSIPlugin';
/** The versions of the CSI registration the kubelet knows: it looks for a 1.x version. */
export const SUPPORTED_VERSIONS: readonly string[] = ['1.0.0'];
/** The kubelet's messages are a few bytes; anything near this is not the kubelet. */
const MAX_MESSAGE_BYTES = 64 * 1024;

/** The registration socket in the kubelet's plugins_registry directory, named as node-driver-registrar names it. */
export const registrationSocketPath = (dir: string, driverName: string) => path.join(dir, `${driverName}-reg.sock`);

/** What GetInfo answers: the kubelet reaches the driver at `endpoint` (its CSI socket as the host sees it). */
export function pluginInfo(driverName: string, endpoint: string): PluginInfo {
  return { type: CSI_PLUGIN_TYPE, name: driverName, endpoint, supported_versions: [...SUPPORTED_VERSIONS] };
}

/** Why tether must not take the registration socket's path (see socketPathProblem), or undefined when it may. */
export const registrationSocketProblem = (socketPath: string) => socketPathProblem(socketPath, 'registration socket');

/** The Registration service's two RPCs, answering from memory and logging what the kubelet says. */
export function registrationHandlers(info: PluginInfo, log: Logger): RegistrationHandlers {
  return {
    GetInfo: (_call, callback) => {
      log.info({ event: 'kubelet-registration', endpoint: info.endpoint, versions: info.supported_versions }, 'the kubelet asked for the plugin info');
      callback(null, info);
    },
    NotifyRegistrationStatus: (call, callback) => {
      const { plugin_registered: registered, error } = call.request;
      if (registered) log.info({ event: 'kubelet-registration', registered }, `registered with the kubelet as ${info.name}`);
      else log.error({ event: 'kubelet-registration', registered, error: boundMessage(error || '(the kubelet gave no reason)') }, 'the kubelet did not register the driver');
      callback(null, {});
    },
  };
}

export interface RegistrationOptions {
  /** Where to listen: registrationSocketPath(dir, driverName). */
  socketPath: string;
  driverName: string;
  /** The CSI socket as the kubelet (on the host) reaches it. */
  endpoint: string;
  log: Logger;
}

export interface RegistrationServer {
  socketPath: string;
  /** Stops serving and removes the socket — the kubelet unregisters the driver. Synchronous, so it is done before the process exits. */
  close(): void;
}

/**
 * Serves the Registration service on `socketPath`, replacing a stale socket there (and refusing
 * anything else, see registrationSocketProblem). Call it once the CSI socket answers: the kubelet
 * calls NodeGetInfo as soon as it has the plugin info.
 */
export async function serveRegistration(options: RegistrationOptions): Promise<RegistrationServer> {
  const { socketPath, log } = options;
  const server = new Server({ 'grpc.max_receive_message_length': MAX_MESSAGE_BYTES, 'grpc.max_send_message_length': MAX_MESSAGE_BYTES, 'grpc.max_concurrent_streams': 8 });
  server.addService(loadRegistrationService().service, registrationHandlers(pluginInfo(options.driverName, options.endpoint), log));
  // Listening before the rename: the kubelet's first dial, on the create event of the rename, finds it answering.
  const ours = await bindSocket(
    socketPath,
    'registration socket',
    (at) => new Promise<void>((resolve, reject) => server.bindAsync(`unix://${at}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()))),
    () => server.forceShutdown(),
  );
  log.info({ event: 'kubelet-registration', socket: socketPath, endpoint: options.endpoint }, 'serving the kubelet plugin registration');
  return {
    socketPath,
    close() {
      server.forceShutdown();
      const problem = removeIfSame(socketPath, ours);
      if (problem) log.warn({ socket: socketPath, err: problem }, 'could not remove the registration socket');
    },
  };
}
