import { createRequire } from 'node:module';
import path from 'node:path';
import { makeClientConstructor, type MethodDefinition, type ServiceDefinition } from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { ROOT_JSON as CSI_ROOT_JSON } from '../csi/generated/csi-root.js';
import { ROOT_JSON as REGISTRATION_ROOT_JSON } from '../csi/generated/registration-root.js';
import type { ProtoGrpcType } from '../csi/generated/csi.js';
import type { ProtoGrpcType as RegistrationProtoGrpcType } from '../csi/generated/pluginregistration.js';
import { PROTO_DIR } from '../util/package-dir.js';

/** proto/csi.proto: the CSI spec v1.12.0, byte-identical to the upstream release. */
export const CSI_PROTO = path.join(PROTO_DIR, 'csi.proto');

/** proto/pluginregistration.proto: the kubelet's plugin-registration API (k8s.io/kubelet pluginregistration/v1). */
export const REGISTRATION_PROTO = path.resolve(path.dirname(CSI_PROTO), 'pluginregistration.proto');


/**
 * int64 fields arrive as strings (longs: String) and are converted to numbers once, at the edge,
 * by the services; enums arrive as their names. `npm run gen` generates the request and response
 * types with the same options (package.json), and a unit test keeps the two in step.
 */
export const LOADER_OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true } as const;

type CsiServices = ProtoGrpcType['csi']['v1'];

/**
 * The CSI services as grpc-js serves them (typed from the generated code), made from the one Root
 * (loadCsiRoot) with the serializers @grpc/proto-loader makes — the same messages in and out — but
 * without the descriptors of every message type it builds for reflection, which tether never serves,
 * and without loading proto-loader at all.
 */
export function loadCsiServices() {
  const root = loadCsiRoot();
  const service = <K extends keyof CsiServices>(name: K) => serviceDefinition(root.lookupService(`csi.v1.${name}`)) as unknown as CsiServices[K] extends { service: infer S } ? S : never;
  return {
    Identity: service('Identity'),
    Controller: service('Controller'),
    Node: service('Node'),
    GroupController: service('GroupController'),
  };
}

/** The Identity service's client constructor: tether's own health check probes its CSI socket with it. */
export function loadIdentityClient() {
  return makeClientConstructor(loadCsiServices().Identity as unknown as ServiceDefinition, 'Identity') as unknown as CsiServices['Identity'];
}

/**
 * A service of a descriptor `npm run gen` made (test/tools/proto-json.mjs) as a grpc-js client
 * constructor whose `.service` a server adds: what loadPackageDefinition(loadSync(proto)) gives,
 * without parsing the proto at run time.
 */
export function clientOfService<T>(json: protobuf.INamespace, name: string): T {
  const root = protobuf.Root.fromJSON(json);
  root.resolveAll();
  return makeClientConstructor(serviceDefinition(root.lookupService(name)), name) as unknown as T;
}

/** What proto-loader's createPackageDefinition makes of a service (methods' paths, streaming flags, serializers). */
function serviceDefinition(service: protobuf.Service): ServiceDefinition {
  const def: Record<string, MethodDefinition<unknown, unknown> & { originalName: string }> = {};
  for (const method of service.methodsArray) {
    method.resolve();
    const request = method.resolvedRequestType!;
    const response = method.resolvedResponseType!;
    def[method.name] = {
      path: `/${service.fullName.slice(1)}/${method.name}`,
      requestStream: Boolean(method.requestStream),
      responseStream: Boolean(method.responseStream),
      requestSerialize: serializer(request),
      requestDeserialize: deserializer(request),
      responseSerialize: serializer(response),
      responseDeserialize: deserializer(response),
      originalName: method.name.charAt(0).toLowerCase() + method.name.slice(1),
    };
  }
  return def;
}

function serializer(type: protobuf.Type): (value: unknown) => Buffer {
  return (value) => {
    if (Array.isArray(value)) throw new Error(`Failed to serialize message: expected object with ${type.name} structure, got array instead`);
    return type.encode(type.fromObject(value as Record<string, unknown>)).finish() as Buffer;
  };
}

function deserializer(type: protobuf.Type): (buf: Buffer) => unknown {
  return (buf) => type.toObject(type.decode(buf), LOADER_OPTIONS);
}

/** The kubelet's Registration service (server side) and its client constructor (tests act as the kubelet with it). */
export function loadRegistrationService() {
  return clientOfService<RegistrationProtoGrpcType['pluginregistration']['Registration']>(REGISTRATION_ROOT_JSON, 'pluginregistration.Registration');
}

let csiRoot: protobuf.Root | undefined;

/**
 * The proto as protobufjs sees it, custom field options included (the `csi_secret` marks): made
 * once per process from the descriptor `npm run gen` parsed out of proto/csi.proto (csi-root.ts,
 * checked against parseProto(CSI_PROTO) by a unit test), and shared by the services, the redactor and the
 * request limits.
 */
export function loadCsiRoot(): protobuf.Root {
  if (csiRoot) return csiRoot;
  const root = protobuf.Root.fromJSON(CSI_ROOT_JSON);
  root.resolveAll();
  return (csiRoot = root);
}

/** A .proto of proto/ parsed from its text, as `npm run gen` does (test/tools/proto-json.mjs). */
export function parseProto(file: string): protobuf.Root {
  const protobufjsDir = path.dirname(createRequire(import.meta.url).resolve('protobufjs/package.json'));
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) =>
    target.startsWith('google/protobuf/') ? path.join(protobufjsDir, target) : protobuf.util.path.resolve(origin, target);
  root.loadSync(file, { keepCase: true });
  root.resolveAll();
  return root;
}
