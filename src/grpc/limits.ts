import type protobuf from 'protobufjs';
import { invalid } from '../csi/errors.js';

/**
 * The size limits of requests, from the CSI spec ("Size Limits": a string at most 128 bytes, a
 * map<string, string> at most 4 KiB, unless a field's description says otherwise), checked on every
 * request before any work: a 100,000-character ID must cost nothing and never reach a lock, a
 * backend, a log line or an error message.
 */
export const LIMITS = {
  /** Any string field without a limit of its own (IDs, names, tokens). */
  string: 128,
  /** node_id: "SHALL NOT exceed 256 bytes". */
  nodeId: 256,
  /** *_path fields: "the maximum path length allowed by the operating system" (PATH_MAX, NAME_MAX). */
  path: 4096,
  pathComponent: 255,
  /** map<string, string>: keys and values together. */
  map: 4096,
  /** Secrets (tether reads none): larger, so a CO that sends a key along is not refused for it. */
  secrets: 65_536,
  /** mount_flags: "The total size of this repeated field SHALL NOT exceed 4 KiB". */
  mountFlags: 4096,
  /** Items of any repeated field (capabilities, volume IDs of a group snapshot). */
  items: 1024,
} as const;

/** Error messages and log values are cut here: a grpc-message trailer must stay far below HTTP/2's header limits. */
export const MAX_MESSAGE_BYTES = 1024;
const MAX_LOGGED_STRING = 256;
const MAX_LOGGED_ITEMS = 32;

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');

/**
 * Builds the check for every request type of the proto: `check(typeName, request)` throws
 * INVALID_ARGUMENT naming the first field over its limit and the sizes — never the value itself.
 */
export function buildRequestLimits(root: protobuf.Root): (typeName: string, message: unknown) => void {
  const types = new Map<string, protobuf.Type>();
  const visit = (ns: protobuf.NamespaceBase) => {
    for (const obj of ns.nestedArray) {
      if ('fieldsArray' in obj) {
        const type = obj as protobuf.Type;
        types.set(type.fullName, type).set(type.fullName.slice(1), type); // with and without the leading dot: no string built per call
      }
      if ('nestedArray' in obj) visit(obj as protobuf.NamespaceBase);
    }
  };
  visit(root);

  const checkMessage = (type: protobuf.Type, message: unknown, at: string): void => {
    if (message === null || typeof message !== 'object') return;
    for (const field of type.fieldsArray) {
      const value = (message as Record<string, unknown>)[field.name];
      if (value === undefined || value === null) continue;
      checkField(field, value, at ? `${at}.${field.name}` : field.name);
    }
  };

  const checkField = (field: protobuf.Field, value: unknown, at: string): void => {
    if ((field as { map?: boolean }).map) return checkMap(field.name, value, at);
    if (field.repeated && Array.isArray(value)) {
      if (value.length > LIMITS.items) throw invalid(`${at} lists ${value.length} items; at most ${LIMITS.items} are accepted`);
      if (field.name === 'mount_flags') {
        const total = value.reduce((n: number, v: unknown) => n + (typeof v === 'string' ? bytes(v) : 0), 0);
        if (total > LIMITS.mountFlags) throw invalid(`${at} holds ${total} bytes; at most ${LIMITS.mountFlags} are accepted (CSI size limit)`);
        return;
      }
      value.forEach((item, i) => checkSingle(field, item, `${at}[${i}]`));
      return;
    }
    checkSingle(field, value, at);
  };

  const checkSingle = (field: protobuf.Field, value: unknown, at: string): void => {
    if (typeof value === 'string' && field.type === 'string') return checkString(field.name, value, at);
    const nested = field.resolvedType && 'fieldsArray' in field.resolvedType ? (field.resolvedType as protobuf.Type) : undefined;
    if (nested) checkMessage(nested, value, at);
  };

  return (typeName, message) => {
    const type = types.get(typeName);
    if (type) checkMessage(type, message, '');
  };
}

function checkString(name: string, value: string, at: string): void {
  if (name.endsWith('_path')) return checkPath(value, at, name !== 'volume_path');
  const limit = name === 'node_id' ? LIMITS.nodeId : LIMITS.string;
  const size = bytes(value);
  if (size > limit) throw invalid(`${at} is ${size} bytes; at most ${limit} are accepted (CSI size limit)`);
}

/**
 * A path the CO gives (staging, target, volume path): within PATH_MAX and NAME_MAX, with no `..`
 * and no control characters — a CO's paths are canonical, and anything else is an attempt to reach
 * somewhere else or to break the mount table and the logs. Paths tether mounts at (staging, target)
 * must be absolute; a volume path is only looked up (a relative one is simply not found).
 */
function checkPath(value: string, at: string, absolute: boolean): void {
  if (!value) return; // required fields say so themselves
  const size = bytes(value);
  if (size > LIMITS.path) throw invalid(`${at} is ${size} bytes; at most ${LIMITS.path} are accepted (PATH_MAX)`);
  if (absolute && !value.startsWith('/')) throw invalid(`${at} must be an absolute path`);
  if (/[\u0000-\u001f\u007f]/.test(value)) throw invalid(`${at} must not contain control characters (NUL, newline, …)`);
  const parts = value.split('/');
  if (parts.includes('..')) throw invalid(`${at} must not contain ".." components`);
  const long = parts.find((p) => bytes(p) > LIMITS.pathComponent);
  if (long !== undefined) throw invalid(`${at} has a component of ${bytes(long)} bytes; at most ${LIMITS.pathComponent} are accepted (NAME_MAX)`);
}

function checkMap(name: string, value: unknown, at: string): void {
  if (value === null || typeof value !== 'object') return;
  const limit = name === 'secrets' ? LIMITS.secrets : LIMITS.map;
  let total = 0;
  for (const [k, v] of Object.entries(value)) {
    total += bytes(k) + (typeof v === 'string' ? bytes(v) : 0);
    if (total > limit) throw invalid(`${at} holds more than ${limit} bytes of keys and values; at most ${limit} are accepted (CSI size limit)`);
  }
}

/**
 * A message fit for a grpc-message trailer and a log line: one line, at most MAX_MESSAGE_BYTES, an
 * echoed input cut with a marker saying how much was cut.
 */
export function boundMessage(message: string, max = MAX_MESSAGE_BYTES): string {
  const line = message.replace(/[\u0000-\u001f\u007f]/g, (c) => (c === '\n' ? '\\n' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
  const size = bytes(line);
  if (size <= max) return line;
  const cut = Buffer.from(line, 'utf8').subarray(0, max - 40).toString('utf8').replace(/\uFFFD$/, '');
  return `${cut}… [${size - bytes(cut)} more bytes cut]`;
}

/** A request as a log line may hold it: long strings, long lists and big maps cut, with markers. */
export function clipForLog(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return value.length > MAX_LOGGED_STRING ? `${value.slice(0, MAX_LOGGED_STRING)}… [${value.length - MAX_LOGGED_STRING} more chars]` : value;
  if (value === null || typeof value !== 'object' || depth > 8) return value;
  if (Array.isArray(value)) {
    const kept = value.slice(0, MAX_LOGGED_ITEMS).map((v) => clipForLog(v, depth + 1));
    return value.length > MAX_LOGGED_ITEMS ? [...kept, `… [${value.length - MAX_LOGGED_ITEMS} more items]`] : kept;
  }
  const entries = Object.entries(value);
  const kept = Object.fromEntries(entries.slice(0, MAX_LOGGED_ITEMS).map(([k, v]) => [clipForLog(k) as string, clipForLog(v, depth + 1)]));
  if (entries.length > MAX_LOGGED_ITEMS) kept['…'] = `${entries.length - MAX_LOGGED_ITEMS} more keys`;
  return kept;
}
