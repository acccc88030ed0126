import { constants } from 'node:os';
import { status } from '@grpc/grpc-js';
import { CommandError } from '../util/exec.js';
import { TimeoutError } from '../util/time.js';

/** An error that carries the gRPC status the CSI spec names for it and a message a person can act on. */
export class CsiError extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
    this.name = 'CsiError';
  }
}

export const invalid = (message: string) => new CsiError(status.INVALID_ARGUMENT, message);
export const notFound = (message: string) => new CsiError(status.NOT_FOUND, message);
export const alreadyExists = (message: string) => new CsiError(status.ALREADY_EXISTS, message);
export const precondition = (message: string) => new CsiError(status.FAILED_PRECONDITION, message);
export const unavailable = (message: string) => new CsiError(status.UNAVAILABLE, message);
export const outOfRange = (message: string) => new CsiError(status.OUT_OF_RANGE, message);
export const resourceExhausted = (message: string) => new CsiError(status.RESOURCE_EXHAUSTED, message);
export const aborted = (message: string) => new CsiError(status.ABORTED, message);
export const deadline = (message: string) => new CsiError(status.DEADLINE_EXCEEDED, message);
export const internal = (message: string) => new CsiError(status.INTERNAL, message);
export const cancelled = (message: string) => new CsiError(status.CANCELLED, message);

/**
 * Stops a handler's work once its call has ended (deadline passed, client cancelled): called before
 * every request to a backend and every external command, so nothing is written after the call ended.
 */
export function stopIfEnded(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw cancelled(`the call ended before ${what}; stopped there`);
}

/** POSIX error codes of network and transport failures: the backend is unreachable, a retry may work. */
const TRANSIENT = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EPIPE', 'ENOTCONN', 'EIO', 'ESTALE']);

/** Errors of a path's shape (too long, a loop of symlinks, a file where a directory must be): the request's paths are at fault. */
const PATH_SHAPE = new Set(['ENAMETOOLONG', 'ELOOP', 'ENOTDIR']);

/**
 * The POSIX name of an operating-system error. Node names most errnos in `code`, but not all:
 * ESTALE from a file operation arrives as "Unknown system error -116", with only `errno` set.
 */
export function errnoName(err: unknown): string | undefined {
  const e = err as { code?: unknown; errno?: unknown } | undefined;
  if (typeof e?.code === 'string' && /^E[A-Z0-9]+$/.test(e.code)) return e.code;
  if (typeof e?.errno !== 'number') return undefined;
  return Object.entries(constants.errno).find(([, n]) => n === Math.abs(e.errno as number))?.[0];
}

/**
 * Turns anything thrown by a handler into a CsiError. Known errors keep their code; errors from the
 * network or the operating system become UNAVAILABLE or INTERNAL with their one-line message — never a
 * stack trace.
 */
export function toCsiError(err: unknown): CsiError {
  if (err instanceof CsiError) return err;
  if (err instanceof TimeoutError) return deadline(err.message);
  // A program stopped because its call ended, or at its time limit, is that — not a fault of tether's.
  if (err instanceof CommandError && err.outcome === 'cancelled') return cancelled(firstLine(err.message));
  if (err instanceof CommandError && err.outcome === 'timed out') return deadline(firstLine(err.message));
  const e = err as { code?: unknown; message?: unknown; level?: unknown };
  const message = typeof e?.message === 'string' ? firstLine(e.message) : String(err);
  const errno = errnoName(err);
  if (errno && TRANSIENT.has(errno)) return unavailable(message.replace(/Unknown system error -116/g, 'ESTALE: stale file handle'));
  if (errno && PATH_SHAPE.has(errno)) return invalid(`a path of the request cannot be used: ${message}`);
  if (e?.level === 'client-timeout' || e?.level === 'client-socket') return unavailable(message);
  return internal(message);
}

const firstLine = (s: string) => s.split('\n', 1)[0]!.slice(0, 500);
