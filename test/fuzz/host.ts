// What the fuzz test looks at on the host, outside the driver: which files and mounts exist, and how
// much memory the driver process holds. Every listing runs as an external command with a timeout
// (find -xdev never descends into a mount, so a hung FUSE mount of another test cannot hang it).
import { readFile } from 'node:fs/promises';
import { execa } from 'execa';

/** Directories whose new entries would mean the driver wrote where it must not, and how deep to look. */
const WATCHED_DIRS: readonly { dir: string; depth: number }[] = [
  { dir: '/tmp', depth: 2 },
  { dir: '/var/tmp', depth: 2 },
  { dir: '/run', depth: 2 },
  { dir: '/etc', depth: 3 },
  { dir: '/root', depth: 2 },
];

/**
 * Entries other processes on a shared test host create while the fuzz test runs; none of them has a
 * name the fuzz test sends. Other worktrees' test runs (their mkdtemp directories, and what they
 * mount there), jest's cache, npm's logs and cache, and the per-command directories of the shell
 * tool that runs commands on this VM.
 */
const OTHER_PROCESSES: readonly RegExp[] = [
  /^\/tmp\/tether-[a-z]+(-[a-z]+)*-[A-Za-z0-9]{6}(\/|$)/,
  /^\/tmp\/csi-(probe|sanity|mount|staging)[-\w]*(\/|$)/,
  /^\/tmp\/jest_\w+(\/|$)/,
  /^\/tmp\/bash_(tool|jobs)[-.\w]*(\/|$)/,
  /^\/root\/\.npm(\/|$)/,
];

const byOtherProcess = (entry: string) => OTHER_PROCESSES.some((re) => re.test(entry));

export interface NewEntries {
  /** New entries the fuzzing may have caused: anywhere but /tmp, or in /tmp named after something it sent. */
  suspect: string[];
  /** New entries in /tmp named after nothing it sent: another process's scratch files on a shared host. */
  unattributed: string[];
  /** New entries of the other processes OTHER_PROCESSES knows. */
  others: number;
}

/**
 * What appeared under the watched directories, outside `ownDirs`. /tmp is where every process on a
 * shared host writes, so a new entry there counts only if one of its path components below /tmp is
 * a name the fuzzed requests carried (`sentNames`): what the driver creates because of a request is
 * named after what the request said. Elsewhere every new entry counts.
 */
export function newEntries(before: ReadonlySet<string>, after: ReadonlySet<string>, ownDirs: readonly string[], sentNames: ReadonlySet<string>): NewEntries {
  const fresh = [...after].filter((e) => !before.has(e) && !ownDirs.some((d) => isUnder(e, d)));
  const result: NewEntries = { suspect: [], unattributed: [], others: 0 };
  for (const entry of fresh) {
    if (byOtherProcess(entry)) result.others++;
    else if (!isUnder(entry, '/tmp') || entry.split('/').slice(2).some((c) => sentNames.has(c))) result.suspect.push(entry);
    else result.unattributed.push(entry);
  }
  return result;
}

/** New mounts outside `ownDirs`: any of the test's sshd (`serverRoot`), or anyone's outside other test runs' directories. */
export function newMounts(before: readonly Mount[], after: readonly Mount[], ownDirs: readonly string[], serverRoot: string): Mount[] {
  const old = new Set(before.map((m) => `${m.target}\0${m.source}`));
  return after
    .filter((m) => !old.has(`${m.target}\0${m.source}`) && !ownDirs.some((d) => isUnder(m.target, d)))
    .filter((m) => m.source.includes(serverRoot) || !byOtherProcess(m.target));
}

/** Every path under the watched directories (names only; NUL-separated, so a name with a newline stays one). */
export async function listWatched(): Promise<Set<string>> {
  const entries = new Set<string>();
  for (const { dir, depth } of WATCHED_DIRS) {
    const { stdout } = await execa('find', [dir, '-xdev', '-maxdepth', String(depth), '-print0'], { timeout: 60_000, reject: false, encoding: 'utf8' });
    for (const entry of String(stdout).split('\0')) if (entry) entries.add(entry);
  }
  return entries;
}

export interface Mount {
  target: string;
  source: string;
}

/** This mount namespace's mounts, from /proc/self/mountinfo (no mount is touched). */
export async function listMounts(): Promise<Mount[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const fields = line.split(' ');
      const separator = fields.indexOf('-');
      return { target: unescapeMountinfo(fields[4] ?? ''), source: unescapeMountinfo(fields[separator + 2] ?? '') };
    });
}

/** mountinfo writes space, tab, newline and backslash as \040, \011, \012, \134. */
const unescapeMountinfo = (s: string) => s.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));

/** The resident set size of process `pid` in bytes (VmRSS), or undefined if it is gone. */
export async function rssBytes(pid: number): Promise<number | undefined> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => undefined);
  const kb = status && /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
  return kb ? Number(kb) * 1024 : undefined;
}

/** Whether `p` is `dir` or below it. */
export const isUnder = (p: string, dir: string) => p === dir || p.startsWith(`${dir}/`);

/**
 * Lazily unmounts everything mounted at or below `dir`, deepest first; true if nothing is left.
 * Reads mountinfo rather than findmnt (test/support's unmountLeftovers): findmnt -r prints each
 * byte of a non-ASCII name as \xNN, and the fuzzed names are full of them.
 */
export async function unmountUnder(dir: string): Promise<boolean> {
  const targets = (await listMounts()).map((m) => m.target).filter((t) => isUnder(t, dir));
  for (const target of targets.sort((a, b) => b.length - a.length)) {
    await execa('umount', ['-l', '--no-canonicalize', '--', target], { timeout: 15_000, reject: false });
  }
  return !(await listMounts()).some((m) => isUnder(m.target, dir));
}
