import { aborted } from '../csi/errors.js';

/** How many entries a page loads at once (each a few SFTP or NFS requests; the backends pipeline them). */
const LOAD_CONCURRENCY = 64;

/**
 * One page of a sorted list of IDs. The token is the ID to resume at (the first not yet returned), so
 * a page stays correct when entries are added or deleted between calls. `load` returns undefined for
 * an ID that turns out not to be a live entry (half-made, retained), which is skipped. Entries are
 * loaded LOAD_CONCURRENCY at a time, never more than the page still needs.
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
  while (i < ids.length && (!maxEntries || entries.length < maxEntries)) {
    const want = maxEntries ? Math.min(LOAD_CONCURRENCY, maxEntries - entries.length) : LOAD_CONCURRENCY;
    const batch = ids.slice(i, i + want);
    const loaded = await Promise.all(batch.map(load));
    i += batch.length;
    entries.push(...loaded.filter((e): e is Awaited<T> => e !== undefined));
  }
  return { entries, nextToken: i < ids.length ? ids[i]! : '' };
}
