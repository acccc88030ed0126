// The controller's copy and removal of a volume over SFTP (SftpFs.copyTree, removeTree) against a
// workload that swaps a file or a directory of its volume for a symlink while tether works on it.
// SFTP has no O_NOFOLLOW: the server follows a symlink wherever a path crosses one, so a swap at the
// wrong moment would make tether read another volume or the server's files into a snapshot, write an
// earlier try's symlink's target, or delete the files of a symlinked directory.
//
// Real sshd, real SFTP, real swaps (rename + symlink in the served directory, which is on this host).
// Only the moment is arranged: SwapSession, an SftpSession, makes the swap right after the server has
// answered a given request (the listing of a directory, the lstat of one, the hard link of a file) and
// before tether sends its next one — the worst moment a racing workload could hit.
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { execa } from 'execa';
import { pino } from 'pino';
import { SftpFs } from '../../src/backends/sftp-fs.js';
import { SftpSession, type SftpCall } from '../../src/backends/sftp-session.js';
import { CsiError } from '../../src/csi/errors.js';
import { startSshServer, type SshServer } from '../support/sshd.js';
import { CMD_TIMEOUT_MS, uniq } from '../support/helpers.js';

const TEST_TIMEOUT_MS = 30_000;
const HOOK_TIMEOUT_MS = 60_000;
const SECRET = `another-volume-secret-${randomBytes(6).toString('hex')}`;
const SENTINEL = `sentinel-${randomBytes(6).toString('hex')}`;

/** An SftpSession that runs a swap once, right after the server answered the request named `what` ("readdir /srv/x"). */
class SwapSession extends SftpSession {
  private readonly swaps = new Map<string, () => Promise<void>>();
  /** Names of the requests sent, in order. */
  readonly sent: string[] = [];

  after(what: string, swap: () => Promise<void>): void {
    this.swaps.set(what, swap);
  }

  override async runInOrder(what: string, fns: SftpCall<unknown>[], signal?: AbortSignal): Promise<PromiseSettledResult<unknown>[]> {
    this.sent.push(what);
    const result = await super.runInOrder(what, fns, signal);
    const swap = this.swaps.get(what);
    this.swaps.delete(what);
    await swap?.();
    return result;
  }
}

let server: SshServer;
let work: string;
let outside: string;
let session: SwapSession;
let fs: SftpFs;

const onServer = (...parts: string[]) => join(server.root, ...parts);

/** The workload's move: `path` (on the server) becomes a symlink to `to`; what was there is kept aside. */
async function swapForSymlink(path: string, to: string): Promise<void> {
  await rename(path, `${path}.aside`);
  await symlink(to, path);
}

/** A volume directory with data/: `files` (relative path → content) written there. */
async function volume(files: Record<string, string>): Promise<string> {
  const dir = uniq('pvc');
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(onServer(dir, 'data'), path, '..'), { recursive: true });
    await writeFile(onServer(dir, 'data', path), content);
  }
  await mkdir(onServer(dir, 'data'), { recursive: true });
  return dir;
}

/** Another volume, whose secret must never be read into a copy. */
async function otherVolume(): Promise<string> {
  return volume({ 'secret.txt': `${SECRET}\n` });
}

/** A destination as the store makes one: the volume's directory exists, data/ does not yet. */
async function destination(): Promise<string> {
  const dir = uniq('pvc-copy');
  await mkdir(onServer(dir));
  return join(dir, 'data');
}

/** Every secret found in files under `dir` on the server (grep -r never follows a symlink below `dir`). */
async function secretsUnder(dir: string): Promise<string> {
  const grep = await execa('grep', ['-r', '-o', '-F', '-e', SECRET, '-e', SENTINEL, '-e', 'root:x:0:0', '--', onServer(dir)], { timeout: CMD_TIMEOUT_MS, reject: false });
  if (grep.exitCode === 2) throw new Error(`grep failed: ${grep.stderr}`);
  return String(grep.stdout);
}

/** How a call ended: undefined if it succeeded, else what it threw (looked at after what it did to the files). */
const outcome = (call: Promise<unknown>): Promise<unknown> =>
  call.then(
    () => undefined,
    (err: unknown) => err,
  );

/** The gRPC code name and message of a CsiError, for one readable expectation. */
const csiFailure = (err: unknown) => (err instanceof CsiError ? { code: status[err.code], message: err.message } : { code: undefined, message: String(err) });

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tether-sftp-races-'));
  outside = join(work, 'outside');
  await mkdir(outside);
  await writeFile(join(outside, 'sentinel.txt'), `${SENTINEL}\n`);
  server = await startSshServer();
  session = new SwapSession({ host: server.host, port: server.port, user: server.user, hostKey: server.hostKey, privateKey: await readFile(server.clientKeyFile) }, pino({ level: 'silent' }));
  fs = new SftpFs(session, server.root);
}, HOOK_TIMEOUT_MS);

afterAll(async () => {
  await fs?.close();
  await server?.stop();
  if (work) await rm(work, { recursive: true, force: true });
}, HOOK_TIMEOUT_MS);

describe('copyTree, with the workload swapping things for symlinks at the worst moment', () => {
  test.each<[string, (other: string) => string]>([
    ["another volume's file, by a relative path", (other) => `../../${other}/data/secret.txt`],
    ['a file outside the served tree, by an absolute path', () => join(outside, 'sentinel.txt')],
    ["the server's /etc/passwd", () => '/etc/passwd'],
  ])('a file swapped, right after its directory was listed, for a symlink to %s: copied as that symlink, no byte of its target', async (_, to) => {
    const src = await volume({ 'f.txt': 'mine\n', 'keep.txt': 'kept\n' });
    const link = to(await otherVolume());
    const dst = await destination();
    session.after(`readdir ${onServer(src, 'data')}`, () => swapForSymlink(onServer(src, 'data', 'f.txt'), link));

    await fs.copyTree(join(src, 'data'), dst);

    expect(await secretsUnder(dst)).toBe('');
    expect((await lstat(onServer(dst, 'f.txt'))).isSymbolicLink()).toBe(true);
    expect(await readlink(onServer(dst, 'f.txt'))).toBe(link);
    expect(await readFile(onServer(dst, 'keep.txt'), 'utf8')).toBe('kept\n');
  }, TEST_TIMEOUT_MS);

  it('a directory swapped, right after its parent was listed, for a symlink to a directory outside: copied as that symlink, nothing listed through it', async () => {
    const src = await volume({ 'd/notes.txt': 'notes\n' });
    const dst = await destination();
    session.after(`readdir ${onServer(src, 'data')}`, () => swapForSymlink(onServer(src, 'data', 'd'), outside));

    await fs.copyTree(join(src, 'data'), dst);

    expect(await secretsUnder(dst)).toBe('');
    expect(await readlink(onServer(dst, 'd'))).toBe(outside);
    expect(session.sent).not.toContain(`readdir ${onServer(src, 'data', 'd')}`);
  }, TEST_TIMEOUT_MS);

  it('a directory swapped for a symlink between tether\'s lstat of it and its listing: ABORTED, nothing of the target copied', async () => {
    const src = await volume({ 'd/notes.txt': 'notes\n' });
    const dst = await destination();
    session.after(`stat ${onServer(src, 'data', 'd')}`, () => swapForSymlink(onServer(src, 'data', 'd'), outside));

    const ended = await outcome(fs.copyTree(join(src, 'data'), dst));

    expect(await secretsUnder(dst)).toBe('');
    expect(csiFailure(ended)).toEqual({ code: 'ABORTED', message: expect.stringMatching(/data\/d was replaced while tether copied or removed it .*nothing was read or written through it; retry/) });
  }, TEST_TIMEOUT_MS);

  it("a file's directory swapped, right after it was listed, for a symlink to another volume's data: ABORTED, nothing copied through it", async () => {
    const src = await volume({ 'd/secret.txt': 'a decoy of the workload\n' });
    const other = await otherVolume();
    const dst = await destination();
    session.after(`readdir ${onServer(src, 'data', 'd')}`, () => swapForSymlink(onServer(src, 'data', 'd'), `../../${other}/data`));

    const ended = await outcome(fs.copyTree(join(src, 'data'), dst));

    expect(await secretsUnder(dst)).toBe('');
    expect(csiFailure(ended)).toEqual({ code: 'ABORTED', message: expect.stringMatching(/data\/d was replaced while tether copied/) });
  }, TEST_TIMEOUT_MS);

  it("a file's directory swapped for a symlink to another volume's data (holding a file of the same name) after tether checked its listing, before the file's hard link: ABORTED after 3 links, the other volume's file is not copied", async () => {
    const src = await volume({ 'd/secret.txt': 'a decoy of the workload\n' });
    const other = await otherVolume();
    const dst = await destination();
    // realpath is the last request of the listing's check: the swap lands after the check passed.
    session.after(`realpath ${onServer(src, 'data', 'd')}`, () => swapForSymlink(onServer(src, 'data', 'd'), `../../${other}/data`));

    const ended = await outcome(fs.copyTree(join(src, 'data'), dst));

    expect(await secretsUnder(dst)).toBe('');
    expect(csiFailure(ended)).toEqual({ code: 'ABORTED', message: expect.stringMatching(/data\/d\/secret\.txt was replaced while tether copied/) });
    expect(session.sent.filter((r) => r === `link ${onServer(src, 'data', 'd', 'secret.txt')}`)).toHaveLength(3);
    expect(await readFile(onServer(other, 'data', 'secret.txt'), 'utf8')).toBe(`${SECRET}\n`);
  }, TEST_TIMEOUT_MS);

  it('a file the workload rewrites between tether\'s hard link and its check is linked again and copied as it is now', async () => {
    const src = await volume({ 'busy.log': 'old\n' });
    const dst = await destination();
    const busy = onServer(src, 'data', 'busy.log');
    session.after(`link ${busy}`, async () => {
      await writeFile(`${busy}.new`, 'new and longer\n');
      await rename(`${busy}.new`, busy);
    });

    await fs.copyTree(join(src, 'data'), dst);

    expect(await readFile(onServer(dst, 'busy.log'), 'utf8')).toBe('new and longer\n');
    expect(session.sent.filter((r) => r === `link ${busy}`)).toHaveLength(2);
  }, TEST_TIMEOUT_MS);

  it('symlinks an earlier try left in the destination, where a file and a directory go now, are replaced: their targets are not written', async () => {
    const src = await volume({ 'f.txt': 'mine\n', 'd/g.txt': 'g\n' });
    const victim = join(outside, 'victim.txt');
    const victimDir = join(outside, 'victim-dir');
    await writeFile(victim, 'VICTIM\n');
    await mkdir(victimDir);
    const dst = await destination();
    await mkdir(onServer(dst));
    await symlink(victim, onServer(dst, 'f.txt'));
    await symlink(victimDir, onServer(dst, 'd'));

    await fs.copyTree(join(src, 'data'), dst);

    expect(await readFile(victim, 'utf8')).toBe('VICTIM\n');
    expect(await readdir(victimDir)).toEqual([]);
    expect((await lstat(onServer(dst, 'f.txt'))).isFile()).toBe(true);
    expect(await readFile(onServer(dst, 'f.txt'), 'utf8')).toBe('mine\n');
    expect((await lstat(onServer(dst, 'd'))).isDirectory()).toBe(true);
    expect(await readFile(onServer(dst, 'd', 'g.txt'), 'utf8')).toBe('g\n');
  }, TEST_TIMEOUT_MS);

  it('leaves no scratch directory behind, and the source as it was', async () => {
    const src = await volume({ 'a.txt': 'a\n', 'd/b.txt': 'b\n' });
    await symlink('../../elsewhere', onServer(src, 'data', 'up'));
    const dst = await destination();

    await fs.copyTree(join(src, 'data'), dst);

    expect((await readdir(onServer(src))).sort()).toEqual(['data']);
    expect((await readdir(onServer(src, 'data'))).sort()).toEqual(['a.txt', 'd', 'up']);
    expect(await readlink(onServer(dst, 'up'))).toBe('../../elsewhere');
  }, TEST_TIMEOUT_MS);
});

describe('removeTree, with the workload swapping a directory for a symlink', () => {
  it('a directory swapped, right after its parent was listed, for a symlink to a directory outside: ABORTED, nothing deleted there; the retry removes the symlink, not its target', async () => {
    const victim = join(work, 'victim-tree');
    await mkdir(victim);
    await writeFile(join(victim, 'precious.txt'), 'precious\n');
    const src = await volume({ 'd/x.txt': 'x\n', 'y.txt': 'y\n' });
    session.after(`readdir ${onServer(src, 'data')}`, () => swapForSymlink(onServer(src, 'data', 'd'), victim));

    const ended = await outcome(fs.removeTree(join(src, 'data')));

    expect(await readdir(victim)).toEqual(['precious.txt']);
    expect(csiFailure(ended)).toEqual({ code: 'ABORTED', message: expect.stringMatching(/data\/d was replaced/) });
    await fs.removeTree(join(src, 'data'));
    expect(await readdir(onServer(src))).toEqual([]);
    expect(await readFile(join(victim, 'precious.txt'), 'utf8')).toBe('precious\n');
  }, TEST_TIMEOUT_MS);
});
