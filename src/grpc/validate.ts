import { invalid } from '../csi/errors.js';

/** The names of a request's string fields. */
type StringFields<Req> = { [K in keyof Req]: Req[K] extends string ? K : never }[keyof Req] & string;

/**
 * Request fields checked before anything is looked up: each named string field must be set, or
 * INVALID_ARGUMENT "<field> is required". The names are checked against the request type.
 */
export function requireFields<Req>(req: Req, ...fields: StringFields<Req>[]): void {
  for (const field of fields) {
    if (!req[field]) throw invalid(`${field} is required`);
  }
}

export function checkMaxEntries(maxEntries: number): void {
  if (maxEntries < 0) throw invalid(`max_entries must not be negative, got ${maxEntries}`);
}
