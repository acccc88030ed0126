// The fuzz test's calls: every unary method of the CSI services the driver serves, and for call
// number i of a seed, the bytes sent and a short description of them. A call is a pure function of
// (seed, index, fixtures): the same seed sends the same bytes, and one call can be rebuilt alone.
import { loadSync, type MethodDefinition } from '@grpc/proto-loader';
import type protobuf from 'protobufjs';
import { CSI_PROTO, LOADER_OPTIONS, loadCsiRoot } from '../../src/grpc/proto.js';
import { safeNodeRequest, type PathPlan } from './paths.js';
import { Prng } from './prng.js';
import { generateRequest, type Fixtures, type Mode } from './requests.js';

/** The services a CSI plugin in mode `all` serves (SnapshotMetadata is streaming and not served by tether). */
const SERVICES = ['Identity', 'Controller', 'GroupController', 'Node'] as const;

export interface Method {
  service: (typeof SERVICES)[number];
  name: string;
  /** The HTTP/2 path, e.g. /csi.v1.Controller/CreateVolume. */
  path: string;
  requestType: protobuf.Type;
  serialize(request: object): Buffer;
  /** Decodes a request body as the server does (same proto, same loader options), or throws. */
  decodeRequest(body: Buffer): Record<string, unknown>;
  decodeResponse(body: Buffer): unknown;
}

/** Every method of SERVICES, read from proto/csi.proto with @grpc/proto-loader as the driver reads it. */
export function loadMethods(): Method[] {
  const definition = loadSync(CSI_PROTO, LOADER_OPTIONS);
  const root = loadCsiRoot();
  return SERVICES.flatMap((service) =>
    Object.entries(definition[`csi.v1.${service}`] as Record<string, MethodDefinition<object, object>>).map(([name, m]) => ({
      service,
      name,
      path: m.path,
      requestType: root.lookupType(`csi.v1.${(m.requestType.type as { name: string }).name}`),
      serialize: (request: object) => m.requestSerialize(request),
      decodeRequest: (body: Buffer) => m.requestDeserialize(body) as Record<string, unknown>,
      decodeResponse: (body: Buffer) => m.responseDeserialize(body),
    })),
  );
}

export type BodyKind = 'structured' | 'random-bytes' | 'random-fields' | `cross-typed:${string}`;

export interface Call {
  index: number;
  method: Method;
  kind: BodyKind;
  body: Buffer;
  /** The request as built (structured and cross-typed bodies), for the description. */
  request?: Record<string, unknown>;
  mode?: Mode;
  notes: string[];
}

/** The share of calls whose body is random bytes, and of calls that send another method's request. */
const RANDOM_SHARE = 0.05;
const CROSS_TYPED_SHARE = 0.04;
/** Attempts at a body that may be sent (serializable, and safe for the Node service; see paths.ts). */
const MAX_ATTEMPTS = 25;

/** Call number `index` of the run seeded with `seed`. */
export function buildCall(seed: number, index: number, methods: readonly Method[], fixtures: Fixtures, paths: PathPlan): Call {
  const prng = Prng.forCall(seed, index);
  const method = prng.pick(methods);
  const roll = prng.next() / 0x1_0000_0000;
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const call = roll < RANDOM_SHARE ? randomCall(prng, index, method) : roll < RANDOM_SHARE + CROSS_TYPED_SHARE ? crossTypedCall(prng, index, method, methods, fixtures, paths) : structuredCall(prng, index, method, method, fixtures, paths);
    if (call && sendable(call, paths)) return call;
  }
  return { index, method, kind: 'structured', body: Buffer.alloc(0), request: {}, notes: ['(no safe body drawn: empty request)'] };
}

function structuredCall(prng: Prng, index: number, method: Method, typeOf: Method, fixtures: Fixtures, paths: PathPlan): Call | undefined {
  const { request, mode, notes } = generateRequest(prng, typeOf.requestType, fixtures, paths);
  let body: Buffer;
  try {
    body = typeOf.serialize(request);
  } catch {
    return undefined; // a value protobufjs refuses to encode (e.g. a string where a number goes): draw again
  }
  const kind: BodyKind = typeOf === method ? 'structured' : `cross-typed:${typeOf.name}`;
  return { index, method, kind, body, request, mode, notes };
}

/** Another method's request sent to this method: its field numbers mean other fields, of other types ("wrong nesting"). */
function crossTypedCall(prng: Prng, index: number, method: Method, methods: readonly Method[], fixtures: Fixtures, paths: PathPlan): Call | undefined {
  return structuredCall(prng, index, method, prng.pick(methods.filter((m) => m !== method)), fixtures, paths);
}

/** Random bytes, or a random sequence of protobuf fields (random numbers, wire types and payloads: decodes more often). */
function randomCall(prng: Prng, index: number, method: Method): Call {
  if (prng.chance(0.5)) {
    const length = prng.weighted<() => number>([[2, () => 0], [4, () => prng.range(1, 16)], [4, () => prng.range(17, 512)], [2, () => prng.range(513, 65_536)], [0.2, () => 4_500_000]])();
    return { index, method, kind: 'random-bytes', body: prng.bytes(length), notes: [] };
  }
  const parts: Buffer[] = [];
  for (let n = prng.range(1, 8); n > 0; n--) parts.push(randomField(prng));
  return { index, method, kind: 'random-fields', body: Buffer.concat(parts), notes: [] };
}

function randomField(prng: Prng): Buffer {
  const wireType = prng.pick([0, 1, 2, 2, 2, 5, 3, 4, 6, 7]); // 3 and 4 (groups), 6 and 7: not valid in proto3
  const tag = varint((prng.range(1, 12) << 3) | wireType);
  switch (wireType) {
    case 0:
      return Buffer.concat([tag, varint(prng.next())]);
    case 1:
      return Buffer.concat([tag, prng.bytes(8)]);
    case 5:
      return Buffer.concat([tag, prng.bytes(4)]);
    case 2: {
      const payload = prng.bytes(prng.range(0, 64));
      // Sometimes a length longer than what follows: a truncated field.
      return Buffer.concat([tag, varint(payload.length + (prng.chance(0.1) ? prng.range(1, 1000) : 0)), payload]);
    }
    default:
      return Buffer.concat([tag, prng.bytes(prng.range(0, 8))]);
  }
}

function varint(value: number): Buffer {
  const bytes: number[] = [];
  let v = value >>> 0;
  do {
    bytes.push((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    v >>>= 7;
  } while (v > 0);
  return Buffer.from(bytes);
}

/**
 * Whether the body may be sent: decoded as the driver will decode it, a Node request that may name a
 * volume must have every path inside the test's tree. Random and cross-typed bodies are checked the
 * same way: their bytes can decode into a valid volume ID next to any path.
 */
function sendable(call: Call, paths: PathPlan): boolean {
  if (call.method.service !== 'Node') return true;
  let decoded: Record<string, unknown>;
  try {
    decoded = call.method.decodeRequest(call.body);
  } catch {
    return true; // the driver cannot decode it either: grpc-js answers INTERNAL and nothing runs
  }
  return safeNodeRequest(paths, decoded);
}

/** The request, each long value cut short: what a failure report prints so the call can be recognised (rerun it with --only). */
export function describeCall(call: Call): string {
  const what = call.kind === 'random-bytes' || call.kind === 'random-fields' ? `${call.body.length} bytes ${call.body.subarray(0, 24).toString('hex')}${call.body.length > 24 ? '…' : ''}` : short(call.request ?? {});
  return `#${call.index} ${call.method.name} [${call.kind}${call.mode ? `, ${call.mode}` : ''}] ${what}`.slice(0, 600);
}

/**
 * A value as JSON-ish text, cut short: strings over 40 characters, arrays over 3 items, objects over
 * 6 keys; empty fields left out (they say nothing; --only replays the call exactly).
 */
function short(value: unknown): string {
  if (typeof value === 'string') return value.length > 40 ? `${JSON.stringify(value.slice(0, 24))}…(${value.length} chars)` : JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.slice(0, 3).map(short).join(', ')}${value.length > 3 ? `, …(${value.length} items)` : ''}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, v]) => !isEmpty(v));
    const shown = entries.slice(0, 6).map(([k, v]) => `${short(k)}: ${short(v)}`);
    return `{${shown.join(', ')}${entries.length > 6 ? `, …(${entries.length} keys)` : ''}}`;
  }
  return String(value);
}

const isEmpty = (v: unknown) => v === null || v === undefined || v === '' || (typeof v === 'object' && Object.keys(v).length === 0);

/**
 * Adds every path component (1 to 255 characters: what a file name can be) of every string and map
 * key in `value` to `into`: the names a file the driver made because of this request would carry.
 */
export function addNames(value: unknown, into: Set<string>): void {
  if (typeof value === 'string') {
    for (const part of value.split('/')) if (part.length > 0 && part.length <= 255 && part !== '.' && part !== '..') into.add(part);
  } else if (Array.isArray(value)) {
    for (const item of value) addNames(item, into);
  } else if (value && typeof value === 'object' && !Buffer.isBuffer(value)) {
    for (const [key, item] of Object.entries(value)) {
      addNames(key, into);
      addNames(item, into);
    }
  }
}
