import { invalid, outOfRange } from '../csi/errors.js';

export const GiB = 1024 ** 3;
export const DEFAULT_CAPACITY = GiB;

export interface CapacityRange {
  required_bytes?: string | number;
  limit_bytes?: string | number;
}

/** int64 fields arrive as decimal strings (proto-loader longs: String): converted once, here. */
export function toBytes(value: string | number | undefined, field: string): number {
  const n = Number(value ?? 0);
  if (!Number.isSafeInteger(n) || n < 0) throw invalid(`${field} must be a non-negative whole number of bytes, got ${String(value)}`);
  return n;
}

/**
 * The size to record for a new volume: the required size, at least `minimum` (a source's size),
 * the default when nothing is asked, never above the limit.
 */
export function chooseCapacity(range: CapacityRange | null | undefined, minimum = 0): number {
  const required = toBytes(range?.required_bytes, 'capacity_range.required_bytes');
  const limit = toBytes(range?.limit_bytes, 'capacity_range.limit_bytes');
  if (limit && required > limit) throw invalid(`capacity_range.required_bytes (${required}) exceeds limit_bytes (${limit})`);
  let size = Math.max(required || Math.min(DEFAULT_CAPACITY, limit || DEFAULT_CAPACITY), minimum);
  if (limit && size > limit) {
    if (minimum > limit) throw outOfRange(`the source holds ${minimum} bytes, more than capacity_range.limit_bytes (${limit})`);
    size = limit;
  }
  return size;
}

/** Whether an existing capacity satisfies a requested range (for idempotent CreateVolume). */
export function fitsRange(capacity: number, range: CapacityRange | null | undefined): boolean {
  const required = toBytes(range?.required_bytes, 'capacity_range.required_bytes');
  const limit = toBytes(range?.limit_bytes, 'capacity_range.limit_bytes');
  return capacity >= required && (!limit || capacity <= limit);
}
