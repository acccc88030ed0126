import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { loadPackageDefinition, type GrpcObject, type ServiceDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import protobuf from 'protobufjs';

/** proto/csi.proto: the CSI spec v1.12.0, byte-identical to the upstream release. */
export const CSI_PROTO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../proto/csi.proto');

const protobufjsDir = path.dirname(createRequire(import.meta.url).resolve('protobufjs/package.json'));

/**
 * int64 fields arrive as strings (longs: String) and are converted to numbers once, at the edge,
 * by the services; enums arrive as their names.
 */
export const LOADER_OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true } as const;

export interface CsiServices {
  Identity: ServiceDefinition;
  Controller: ServiceDefinition;
  Node: ServiceDefinition;
  GroupController: ServiceDefinition;
}

export function loadCsiServices(): CsiServices {
  const pkg = loadPackageDefinition(loadSync(CSI_PROTO, LOADER_OPTIONS)) as unknown as { csi: { v1: GrpcObject } };
  const svc = (name: string) => (pkg.csi.v1[name] as unknown as { service: ServiceDefinition }).service;
  return { Identity: svc('Identity'), Controller: svc('Controller'), Node: svc('Node'), GroupController: svc('GroupController') };
}

/**
 * The proto as protobufjs sees it, custom field options included: proto-loader's package
 * definition drops them, so the `csi_secret` marks are read from here.
 */
export function loadCsiRoot(): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) =>
    target.startsWith('google/protobuf/') ? path.join(protobufjsDir, target) : protobuf.util.path.resolve(origin, target);
  root.loadSync(CSI_PROTO, { keepCase: true });
  root.resolveAll();
  return root;
}
