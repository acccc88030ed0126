// src/controller/pages.ts: ListVolumes/ListSnapshots pagination by "resume at this ID" tokens.
import { pageAfter } from '../../src/controller/pages.js';
import { parseVolumeId } from '../../src/volumes/ids.js';
import { codeName, csiErrorAsync } from './csi-error.js';

const IDS = ['box/a', 'box/b', 'box/c', 'box/d', 'box/e'];
const loadAll = async (id: string) => id;

describe('pageAfter', () => {
  test.each<[string, string[], string, number, string[], string]>([
    ['no token, no limit: everything', IDS, '', 0, IDS, ''],
    ['max_entries 0 means all, from a token', IDS, 'box/c', 0, ['box/c', 'box/d', 'box/e'], ''],
    ['first page', IDS, '', 2, ['box/a', 'box/b'], 'box/c'],
    ['middle page', IDS, 'box/c', 2, ['box/c', 'box/d'], 'box/e'],
    ['last page, exactly full: no next token', IDS, 'box/d', 2, ['box/d', 'box/e'], ''],
    ['last page, short', IDS, 'box/e', 2, ['box/e'], ''],
    ['a limit larger than the list', IDS, '', 10, IDS, ''],
    ['a limit equal to the list', IDS, '', 5, IDS, ''],
    ['unsorted input is sorted', ['box/c', 'box/a', 'box/b'], '', 2, ['box/a', 'box/b'], 'box/c'],
    ['the token ID was deleted: resume at the next one', ['box/a', 'box/b', 'box/d', 'box/e'], 'box/c', 2, ['box/d', 'box/e'], ''],
    ['a new ID before the token is not repeated', ['box/a', 'box/aa', 'box/b', 'box/c'], 'box/b', 1, ['box/b'], 'box/c'],
    ['a new ID after the token is included', ['box/a', 'box/b', 'box/bb', 'box/c'], 'box/b', 2, ['box/b', 'box/bb'], 'box/c'],
    ['a token past the end: nothing left', IDS, 'box/z', 2, [], ''],
    ['an empty list', [], '', 3, [], ''],
    ['other backends sort by ID', ['nfs/a', 'box/z', 'box/a'], '', 2, ['box/a', 'box/z'], 'nfs/a'],
  ])('%s', async (_, ids, token, max, entries, nextToken) => {
    expect(await pageAfter(ids, token, max, parseVolumeId, loadAll)).toEqual({ entries, nextToken });
  });

  test('the caller\'s array is not reordered', async () => {
    const ids = ['box/c', 'box/a', 'box/b'];
    await pageAfter(ids, '', 0, parseVolumeId, loadAll);
    expect(ids).toEqual(['box/c', 'box/a', 'box/b']);
  });

  test.each<[string, string[], string, number, string[], string]>([
    ['skipped entries do not count towards max_entries', ['box/a', 'box/b', 'box/c', 'box/d'], '', 2, ['box/a', 'box/c'], 'box/d'],
    ['skipped entries at the end: no next token', ['box/a', 'box/b', 'box/x1', 'box/x2'], '', 2, ['box/a'], ''],
    ['every entry skipped', ['box/b', 'box/x'], '', 0, [], ''],
    ['a skipped token ID resumes after it', ['box/a', 'box/b', 'box/c'], 'box/b', 1, ['box/c'], ''],
  ])('%s', async (_, ids, token, max, entries, nextToken) => {
    // "box/b" and "box/x…" are half-made or retained: the loader returns undefined for them.
    const load = async (id: string) => (id === 'box/b' || id.startsWith('box/x') ? undefined : id);
    expect(await pageAfter(ids, token, max, parseVolumeId, load)).toEqual({ entries, nextToken });
  });

  test('only the IDs of the page are loaded', async () => {
    const loaded: string[] = [];
    await pageAfter(IDS, 'box/b', 2, parseVolumeId, async (id) => (loaded.push(id), id));
    expect(loaded).toEqual(['box/b', 'box/c']);
  });

  test.each<[string]>([['garbage'], ['../x'], ['box/.snapshots/s'], ['Box/a'], ['12']])('a token tether did not issue (%j) → ABORTED', async (token) => {
    const err = await csiErrorAsync(pageAfter(IDS, token, 2, parseVolumeId, loadAll));
    expect(codeName(err)).toBe('ABORTED');
    expect(err.message).toContain(token);
  });
});
