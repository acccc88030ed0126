// The rules every single answer of a fuzzed call must keep; each broken one is a fault of its own.
import { status } from '@grpc/grpc-js';
import type { Call } from './calls.js';
import { connectionBroke, isAllowed } from './codes.js';
import type { Outcome } from './transport.js';

/** The longest error message (grpc `details`) a CO should have to carry in a status trailer. */
export const MAX_DETAILS_CHARS = 1024;

export const RULES = {
  code: 'status code the spec does not name for the method',
  connection: 'connection broke under the call',
  longMessage: `error message over ${MAX_DETAILS_CHARS} chars`,
  secret: 'secret in an error message',
  response: 'response does not decode',
  badPath: 'relative or NUL path accepted (CSI: paths MUST be absolute)',
} as const;

/** Node calls that create a mount point: a relative path there lands wherever the plugin's working directory is. */
const NODE_CREATORS = new Set(['NodeStageVolume', 'NodePublishVolume']);

/** The rules the answer breaks (none: an empty list). */
export function judge(call: Call, outcome: Outcome, secretLines: readonly string[]): string[] {
  const broken: string[] = [];
  const body = call.kind === 'structured' ? 'structured' : 'foreign';
  if (connectionBroke(outcome.code, outcome.details)) broken.push(RULES.connection);
  else if (!isAllowed(call.method.name, outcome.code, outcome.details, body)) broken.push(RULES.code);
  if (outcome.details.length > MAX_DETAILS_CHARS) broken.push(RULES.longMessage);
  if (leaks(outcome.details, secretLines)) broken.push(RULES.secret);
  if (outcome.code !== status.OK) return broken;
  try {
    call.method.decodeResponse(outcome.response ?? Buffer.alloc(0));
  } catch {
    broken.push(RULES.response);
  }
  if (NODE_CREATORS.has(call.method.name) && hasBadPath(call.method.decodeRequest(call.body))) broken.push(RULES.badPath);
  return broken;
}

/** Whether a staging or target path (as the driver decoded it) is relative or holds a NUL byte. */
function hasBadPath(request: Record<string, unknown>): boolean {
  return ['staging_target_path', 'target_path'].some((field) => {
    const p = request[field];
    return typeof p === 'string' && p !== '' && (!p.startsWith('/') || p.includes('\0'));
  });
}

/** Whether `text` holds any line of the secret (a private key's base64 lines, each long enough not to match by chance). */
export const leaks = (text: string, secretLines: readonly string[]) => secretLines.some((line) => text.includes(line));

/** Lines Node itself writes to the driver's stderr (warnings): not the driver's log. */
const NODE_WARNING = /^\(node:\d+\) |^\(Use `node --trace-warnings/;

/**
 * The lines of the driver's log that are not one JSON object each (pino writes one per line). A
 * request value with a newline that reached the log unescaped would forge or split lines here.
 */
export function foreignLogLines(log: string): string[] {
  return log.split('\n').filter((line) => {
    if (line === '' || NODE_WARNING.test(line)) return false;
    try {
      const parsed: unknown = JSON.parse(line);
      return typeof parsed !== 'object' || parsed === null || Array.isArray(parsed);
    } catch {
      return true;
    }
  });
}
