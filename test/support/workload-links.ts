// The symlinks a hostile pod makes in its volume A — to volume B's data, to A's own record, to the
// server's /etc/passwd, to a sentinel outside the served tree, by absolute paths and by relative paths
// that climb out of data/ — and how a test checks that a copy holds them as symlinks, that no file
// anywhere holds what they point at, and that what they point at never changed. Shared by the sshfs
// story (test/integration/symlinks.test.ts) and the NFS one (test/nfs/nfs-symlinks.test.ts).
import { lstat, readFile, readdir, readlink, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join, relative } from 'node:path';
import { execa } from 'execa';
import type { CsiClient } from './csi-client.js';
import { CMD_TIMEOUT_MS } from './helpers.js';

/** The first line of this host's /etc/passwd starts so. */
export const PASSWD = 'root:x:0:0:';

export interface Link {
  /** Its path in data/. */
  name: string;
  /** Its text. */
  to: string;
}

/** A file read through a link, and the secret it would give away if the server resolved the link. */
export interface Read {
  path: string;
  secret: string;
}

/** Where things are on the server: every path absolute, as the server's own filesystem has them. */
export interface Layout {
  /** The backend's base directory (the sshd root, the NFS export's backing directory). */
  root: string;
  /** Volume directories under root. */
  a: string;
  b: string;
  /** A's record file name, `volume.<g>.json`. */
  record: string;
  /** A directory outside root, holding sentinel.txt. */
  outside: string;
}

/** The secrets: B's file, the sentinel, A's record's writeId; each in exactly one file. */
export interface Secrets {
  b: string;
  sentinel: string;
  record: string;
}

/** A string no file holds by chance. */
export const secret = (what: string) => `${what}-${randomBytes(6).toString('hex')}`;

/** The pod's links in A's data/ (made in this order: sub/ must exist first). */
export function workloadLinks(l: Layout): Link[] {
  const sentinel = join(l.outside, 'sentinel.txt');
  return [
    { name: 'b-absolute', to: join(l.root, l.b, 'data', 'secret.txt') },
    { name: 'b-relative', to: `../../${l.b}/data/secret.txt` },
    { name: 'b-dir', to: `../../${l.b}/data` },
    { name: 'record-relative', to: `../${l.record}` },
    { name: 'record-absolute', to: join(l.root, l.a, l.record) },
    { name: 'passwd', to: '/etc/passwd' },
    { name: 'etc-dir', to: '/etc' },
    { name: 'sentinel-absolute', to: sentinel },
    { name: 'sentinel-relative', to: relative(join(l.root, l.a, 'data'), sentinel) },
    { name: 'outside-dir', to: l.outside },
    { name: 'sub/record-up', to: `../../${l.record}` },
  ];
}

/** What the pod reads through its links, file by file. */
export function workloadReads(s: Secrets): Read[] {
  return [
    { path: 'b-absolute', secret: s.b },
    { path: 'b-relative', secret: s.b },
    { path: 'b-dir/secret.txt', secret: s.b },
    { path: 'record-relative', secret: s.record },
    { path: 'record-absolute', secret: s.record },
    { path: 'passwd', secret: PASSWD },
    { path: 'etc-dir/passwd', secret: PASSWD },
    { path: 'sentinel-absolute', secret: s.sentinel },
    { path: 'sentinel-relative', secret: s.sentinel },
    { path: 'outside-dir/sentinel.txt', secret: s.sentinel },
    { path: 'sub/record-up', secret: s.record },
  ];
}

/** The regular files the pod wrote beside its links, and their content. */
export const WORKLOAD_FILES: Record<string, string> = { 'hello.txt': 'hello from the pod\n', 'sub/notes.txt': 'notes\n' };

/** Each link as found under `data` on the server: whether it is a symlink, and its text. Compare with `expectedLinks`. */
export async function linksFound(data: string, links: Link[]): Promise<{ name: string; symlink: boolean; to: string }[]> {
  return Promise.all(links.map(async (l) => ({ name: l.name, symlink: (await lstat(join(data, l.name))).isSymbolicLink(), to: await readlink(join(data, l.name)) })));
}

export const expectedLinks = (links: Link[]) => links.map((l) => ({ name: l.name, symlink: true, to: l.to }));

/** The workload's regular files as found under `data`. */
export async function filesFound(data: string): Promise<Record<string, string>> {
  const found = await Promise.all(Object.keys(WORKLOAD_FILES).map(async (f) => [f, await readFile(join(data, f), 'utf8')] as const));
  return Object.fromEntries(found);
}

/** Every secret found in files under `dir`, as grep prints it (grep -r never follows a symlink it meets below `dir`); '' if none. */
export async function secretsUnder(dir: string, s: Secrets): Promise<string> {
  const patterns = [s.b, s.sentinel, s.record, PASSWD].flatMap((p) => ['-e', p]);
  const grep = await execa('grep', ['-r', '-o', '-F', ...patterns, '--', dir], { timeout: CMD_TIMEOUT_MS, reject: false });
  if (grep.exitCode === 2) throw new Error(`grep failed: ${grep.stderr}`);
  return String(grep.stdout);
}

/** The content and mtime of `files` and the entries of `dirs`: unchanged means nothing wrote or removed them. */
export async function fingerprint(files: string[], dirs: string[]): Promise<string> {
  const seen = await Promise.all(files.map(async (f) => `${f} ${(await stat(f)).mtimeMs} ${await readFile(f, 'utf8')}`));
  const listed = await Promise.all(dirs.map(async (d) => `${d}: ${(await readdir(d)).sort().join(' ')}`));
  return [...seen, ...listed].join('\n');
}

/** What the end of both stories saw (see endStory). */
export interface StoryEnd {
  /** The targets' fingerprint once the snapshot was deleted. */
  afterSnapshot: string;
  snapshotGone: boolean;
  /** The other targets' fingerprint (A's record goes with A) before and after A was deleted. */
  othersBefore: string;
  othersAfter: string;
  aGone: boolean;
}

/**
 * The end of both stories: DeleteSnapshot, then A unpublished, unstaged, unpublished from node-a
 * and deleted; `targets(withRecord)` fingerprints the link targets, `gone(id)` says whether an
 * ID's directory is gone from the server.
 */
export async function endStory(
  csi: CsiClient,
  story: { a: string; snapshotId: string; staging: string; target: string; staged: Map<string, string>; published: Map<string, string> },
  targets: (withRecord?: boolean) => Promise<string>,
  gone: (id: string) => Promise<boolean>,
): Promise<StoryEnd> {
  await csi.DeleteSnapshot({ snapshot_id: story.snapshotId });
  const afterSnapshot = await targets();
  const snapshotGone = await gone(story.snapshotId);
  const othersBefore = await targets(false);
  await csi.NodeUnpublishVolume({ volume_id: story.a, target_path: story.target });
  story.published.delete(story.target);
  await csi.NodeUnstageVolume({ volume_id: story.a, staging_target_path: story.staging });
  story.staged.delete(story.staging);
  await csi.ControllerUnpublishVolume({ volume_id: story.a, node_id: 'node-a' });
  await csi.DeleteVolume({ volume_id: story.a });
  return { afterSnapshot, snapshotGone, othersBefore, othersAfter: await targets(false), aGone: await gone(story.a) };
}
