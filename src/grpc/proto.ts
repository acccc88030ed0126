import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { loadPackageDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import type { ProtoGrpcType } from '../csi/generated/csi.js';
import type { ProtoGrpcType as RegistrationProtoGrpcType } from '../csi/generated/pluginregistration.js';

/** proto/csi.proto: the CSI spec v1.12.0, byte-identical to the upstream release. */
export const CSI_PROTO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../proto/csi.proto');

/** proto/pluginregistration.proto: the kubelet's plugin-registration API (k8s.io/kubelet pluginregistration/v1). */
export const REGISTRATION_PROTO = path.resolve(path.dirname(CSI_PROTO), 'pluginregistration.proto');

const protobufjsDir = path.dirname(createRequire(import.meta.url).resolve('protobufjs/package.json'));

/**
 * int64 fields arrive as strings (longs: String) and are converted to numbers once, at the edge,
 * by the services; enums arrive as their names. `npm run gen` generates the request and response
 * types with the same options (package.json), and a unit test keeps the two in step.
 */
export const LOADER_OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true } as const;

/** The CSI services as grpc-js serves them (typed from the generated code). */
export function loadCsiServices() {
  const { csi } = loadPackageDefinition(loadSync(CSI_PROTO, LOADER_OPTIONS)) as unknown as ProtoGrpcType;
  return {
    Identity: csi.v1.Identity.service,
    Controller: csi.v1.Controller.service,
    Node: csi.v1.Node.service,
    GroupController: csi.v1.GroupController.service,
  };
}

/** The Identity service's client constructor: tether's own health check probes its CSI socket with it. */
export function loadIdentityClient() {
  const { csi } = loadPackageDefinition(loadSync(CSI_PROTO, LOADER_OPTIONS)) as unknown as ProtoGrpcType;
  return csi.v1.Identity;
}

/** The kubelet's Registration service (server side) and its client constructor (tests act as the kubelet with it). */
export function loadRegistrationService() {
  const { pluginregistration } = loadPackageDefinition(loadSync(REGISTRATION_PROTO, LOADER_OPTIONS)) as unknown as RegistrationProtoGrpcType;
  return pluginregistration.Registration;
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
