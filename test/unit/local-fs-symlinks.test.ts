// src/backends/local-fs.ts (the NFS controller's file operations, here on a plain directory): a
// workload's symlinks — to another volume, to a record, to files outside the export, to directories —
// are copied as symlinks by copyTree (cp -a) and removed as symlinks by removeTree (GNU rm for
// directories, unlink for files); no target is read, written or removed. These are the static cases;
// why the walks also hold against a symlink swapped in mid-walk (or do not, for cp) is in the comments
// of local-fs.ts, from strace.
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalFs } from '../../src/backends/local-fs.js';

let base: string;
let root: string; // the "export"
let outside: string;
let fs: LocalFs;

const SECRET = 'the other volume secret';
const SENTINEL = 'outside the export';

/** Each link's name in data/ and its text. */
const LINKS: [string, string][] = [
  ['other-relative', '../../other/data/secret.txt'],
  ['record-relative', '../volume.1.json'],
  ['passwd', '/etc/passwd'],
  ['etc-dir', '/etc'],
  ['dangling', '../../nowhere'],
];

/** What the targets hold and when they were written: unchanged means nothing wrote or removed them. */
async function targets(): Promise<string> {
  const files = [join(root, 'other', 'data', 'secret.txt'), join(root, 'vol', 'volume.1.json'), join(outside, 'sentinel.txt'), '/etc/passwd'];
  const seen = await Promise.all(files.map(async (f) => `${f} ${(await stat(f)).mtimeMs} ${await readFile(f, 'utf8')}`));
  return [...seen, (await readdir(outside)).sort().join(' '), (await readdir(join(root, 'other', 'data'))).join(' ')].join('\n');
}

/** The contents of every regular file under `dir`, never following a symlink. */
async function contentsUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.isDirectory()) out.push(...(await contentsUnder(join(dir, e.name))));
    else if (e.isFile()) out.push(await readFile(join(dir, e.name), 'utf8'));
  }
  return out;
}

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'tether-localfs-links-'));
  root = join(base, 'export');
  outside = join(base, 'outside');
  await mkdir(join(root, 'other', 'data'), { recursive: true });
  await mkdir(join(root, 'vol', 'data', 'sub'), { recursive: true });
  await mkdir(outside);
  await writeFile(join(root, 'other', 'data', 'secret.txt'), SECRET);
  await writeFile(join(root, 'vol', 'volume.1.json'), '{"kind":"record"}');
  await writeFile(join(outside, 'sentinel.txt'), SENTINEL);
  await writeFile(join(root, 'vol', 'data', 'mine.txt'), 'mine');
  for (const [name, to] of [...LINKS, ['sentinel', join(outside, 'sentinel.txt')], ['outside-dir', outside]]) await symlink(to!, join(root, 'vol', 'data', name!));
  await symlink('../../../other/data', join(root, 'vol', 'data', 'sub', 'other-dir'));
  fs = new LocalFs(root, async () => ({ root, release: () => undefined, stale: () => undefined }));
});

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

test('copyTree copies every link as a link with its text, and no byte of any target', async () => {
  const before = await targets();
  await fs.copyTree('vol/data', 'copy/data');
  for (const [name, to] of LINKS) expect({ name, to: await readlink(join(root, 'copy', 'data', name)) }).toEqual({ name, to });
  expect(await readlink(join(root, 'copy', 'data', 'sentinel'))).toBe(join(outside, 'sentinel.txt'));
  expect(await readlink(join(root, 'copy', 'data', 'outside-dir'))).toBe(outside);
  expect(await readlink(join(root, 'copy', 'data', 'sub', 'other-dir'))).toBe('../../../other/data');
  expect(await contentsUnder(join(root, 'copy'))).toEqual(['mine']);
  expect(await targets()).toBe(before);
});

test('removeTree of a data directory full of links removes the links, never what they point at', async () => {
  const before = await targets();
  await fs.copyTree('vol/data', 'copy/data');
  await fs.removeTree('copy/data');
  await fs.removeTree('vol/data');
  expect(await readdir(join(root, 'vol'))).toEqual(['volume.1.json']);
  expect(await readdir(join(root, 'copy'))).toEqual([]);
  expect(await targets()).toBe(before);
});

test.each<[string, string]>([
  ['vol/data/sentinel', 'a symlink to a file outside'],
  ['vol/data/outside-dir', 'a symlink to a directory outside'],
  ['vol/data/sub/other-dir', "a symlink to another volume's data"],
  ['vol/data/sub', 'a directory holding only a symlink to a directory (removed in-process)'],
  ['vol/data', 'a tree of links (removed by GNU rm)'],
])('removeTree(%s), %s, removes it and never what a link points at', async (path) => {
  const before = await targets();
  await fs.removeTree(path);
  await expect(lstat(join(root, path))).rejects.toMatchObject({ code: 'ENOENT' });
  expect(await targets()).toBe(before);
});
