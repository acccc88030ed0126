import { rm } from 'node:fs/promises';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { implementService, type PipelineDeps } from './pipeline.js';
import { loadCsiServices } from './proto.js';
import type { ServiceSet } from './rpc.js';

/** Serves the given CSI services on a unix socket (a stale socket file from a crash is replaced). */
export async function serve(socketPath: string, services: ServiceSet, deps: PipelineDeps): Promise<Server> {
  const defs = loadCsiServices();
  // No channelz: tether serves no channelz service, and its bookkeeping (per-call counters and traces) is work on every call.
  const server = new Server({ 'grpc.max_receive_message_length': 4 * 1024 * 1024, 'grpc.enable_channelz': 0 });
  server.addService(defs.Identity, implementService(defs.Identity, services.Identity, deps));
  if (services.Controller) server.addService(defs.Controller, implementService(defs.Controller, services.Controller, deps));
  if (services.GroupController) server.addService(defs.GroupController, implementService(defs.GroupController, services.GroupController, deps));
  if (services.Node) server.addService(defs.Node, implementService(defs.Node, services.Node, deps));
  await rm(socketPath, { force: true });
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix://${socketPath}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
  );
  return server;
}
