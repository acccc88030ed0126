import { invalid } from '../csi/errors.js';

/** Request fields checked before anything is looked up. */
export function requireField(value: string | undefined, field: string): void {
  if (!value) throw invalid(`${field} is required`);
}

export function checkMaxEntries(maxEntries: number): void {
  if (maxEntries < 0) throw invalid(`max_entries must not be negative, got ${maxEntries}`);
}
