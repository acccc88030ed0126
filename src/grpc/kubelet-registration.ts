import { lstatSync, unlinkSync, type Stats } from 'node:fs';
import { lstat, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { PluginInfo } from '../csi/generated/pluginregistration/PluginInfo.js';
import type { RegistrationHandlers } from '../csi/generated/pluginregistration/Registration.js';
import { boundMessage } from './limits.js';
import { loadRegistrationService } from './proto.js';

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
/** sun_path holds 108 bytes with its terminating NUL: a longer socket path cannot be bound. */
export const MAX_SOCKET_PATH_BYTES = 107;
/** The kubelet's messages are a few bytes; anything near this is not the kubelet. */
const MAX_MESSAGE_BYTES = 64 * 1024;

/** The registration socket in the kubelet's plugins_registry directory, named as node-driver-registrar names it. */
export const registrationSocketPath = (dir: string, driverName: string) => path.join(dir, `${driverName}-reg.sock`);

/**
 * Where the server binds before the socket is renamed into place. Node unlinks a unix socket's path
 * when its server closes, whatever is there by then; bound under this name (the kubelet ignores names
 * starting with a dot), tether's close removes the registration socket only if it is still its own.
 */
export const bindingPath = (socketPath: string, pid = process.pid) => path.join(path.dirname(socketPath), `.tether-${pid}.sock`);

/** What GetInfo answers: the kubelet reaches the driver at `endpoint` (its CSI socket as the host sees it). */
export function pluginInfo(driverName: string, endpoint: string): PluginInfo {
  return { type: CSI_PLUGIN_TYPE, name: driverName, endpoint, supported_versions: [...SUPPORTED_VERSIONS] };
}

/** What is at a path, in words (lstat: a symlink is a symlink, never followed). */
export function fileKind(stats: Stats): string {
  if (stats.isSocket()) return 'socket';
  if (stats.isSymbolicLink()) return 'symbolic link';
  if (stats.isDirectory()) return 'directory';
  if (stats.isFile()) return 'regular file';
  if (stats.isFIFO()) return 'FIFO';
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return 'device';
  return 'file of unknown type';
}

/**
 * Why tether must not take `socketPath`, or undefined when it may: nothing is there, or a socket (left
 * by a tether that was killed: it is replaced). Anything else at that path is someone else's and is
 * never removed. Also refused: a path too long for a unix socket.
 */
export async function registrationSocketProblem(socketPath: string): Promise<string | undefined> {
  for (const p of [socketPath, bindingPath(socketPath)]) {
    const size = Buffer.byteLength(p);
    if (size > MAX_SOCKET_PATH_BYTES) return `the registration socket path ${p} is ${size} bytes; a unix socket path holds at most ${MAX_SOCKET_PATH_BYTES}`;
  }
  const stats = await lstat(socketPath).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw new Error(`cannot inspect ${socketPath}: ${err.code ?? err.message}`);
  });
  if (!stats || stats.isSocket()) return undefined;
  return `${socketPath} exists and is a ${fileKind(stats)}, not a socket: tether replaces only a stale socket there and leaves anything else alone; move it away`;
}

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
  const temporary = bindingPath(socketPath);
  for (const p of [socketPath, temporary]) {
    const problem = await registrationSocketProblem(p);
    if (problem) throw new Error(problem);
    await unlink(p).catch(ignoreMissing); // nothing, or a stale socket
  }
  const server = new Server({ 'grpc.max_receive_message_length': MAX_MESSAGE_BYTES, 'grpc.max_send_message_length': MAX_MESSAGE_BYTES, 'grpc.max_concurrent_streams': 8 });
  server.addService(loadRegistrationService().service, registrationHandlers(pluginInfo(options.driverName, options.endpoint), log));
  await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${temporary}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  const ours = lstatSync(temporary);
  // Listening already: the kubelet's first dial, on the create event of the rename, finds it answering.
  await rename(temporary, socketPath).catch((err: Error) => {
    server.forceShutdown();
    throw err;
  });
  log.info({ event: 'kubelet-registration', socket: socketPath, endpoint: options.endpoint }, 'serving the kubelet plugin registration');
  return {
    socketPath,
    close() {
      server.forceShutdown();
      removeIfSame(socketPath, ours, log);
    },
  };
}

function ignoreMissing(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err;
}

/** Removes the socket this process bound, unless another process has put its own there since. */
function removeIfSame(socketPath: string, ours: Stats, log: Logger): void {
  try {
    const now = lstatSync(socketPath);
    if (now.ino === ours.ino && now.dev === ours.dev) unlinkSync(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn({ socket: socketPath, err: (err as Error).message }, 'could not remove the registration socket');
  }
}
