import { aborted } from '../csi/errors.js';

/**
 * One page of a sorted list of IDs. The token is the ID to resume at (the first not yet returned), so
 * a page stays correct when entries are added or deleted between calls. `load` returns undefined for
 * an ID that turns out not to be a live entry (half-made, retained), which is skipped.
 */
export async function pageAfter<T>(
  sortedIds: string[],
  token: string,
  maxEntries: number,
  parse: (id: string) => unknown,
  load: (id: string) => Promise<T | undefined>,
): Promise<{ entries: T[]; nextToken: string }> {
  if (token && !parse(token)) throw aborted(`starting_token "${token}" was not issued by tether; start again without a token`);
  const ids = [...sortedIds].sort();
  const start = token ? ids.findIndex((id) => id >= token) : 0;
  if (start < 0) return { entries: [], nextToken: '' };
  const entries: T[] = [];
  let i = start;
  for (; i < ids.length && (!maxEntries || entries.length < maxEntries); i++) {
    const entry = await load(ids[i]!);
    if (entry !== undefined) entries.push(entry);
  }
  return { entries, nextToken: i < ids.length ? ids[i]! : '' };
}
