// The README's Docker sections, followed word for word as a user of a fresh machine of this kind
// would: its blocks, taken from README.md as they are, typed into one shell (bash reading them from
// its stdin: the lab it starts in the background is its job %1, the env file it sources stays in
// effect) — the lab, the Docker story, the Swarm plugin's per-node steps, the Swarm story, and at the
// end `kill %1`, after which nothing of the lab may be left. A block that fails ends the shell
// (set -e): the test shows what it printed.
import { readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path, { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { DRIVER_MAIN } from '../support/driver.js';
import { exists, mountsUnder } from '../support/helpers.js';
import { eventually } from './engine.js';

const REPO = path.resolve(path.dirname(DRIVER_MAIN), '../..');
const LAB = '/run/tether-docker-try';
const STEP_MS = 600_000;

/** The README's ```sh block holding `marker`. */
async function block(marker: string): Promise<string> {
  const readme = await readFile(join(REPO, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const found = blocks.filter((b) => b.includes(marker));
  if (found.length !== 1) throw new Error(`README.md has ${found.length} sh blocks with "${marker}"`);
  return found[0]!;
}

/** A shell a user types into: each step's text goes to its stdin, followed by a marker echoed when done. */
class Terminal {
  private output = '';
  private steps = 0;
  private readonly shell: ResultPromise;
  private ended = false;

  constructor(cwd: string) {
    this.shell = execa('bash', [], { cwd, reject: false, all: true, buffer: false, stdin: 'pipe', env: { TERM: 'dumb' } });
    this.shell.all?.on('data', (c: Buffer) => (this.output += c.toString()));
    // The shell's exit, not its output's end: the lab, its background job, keeps the output open.
    this.shell.on('exit', () => (this.ended = true));
    this.shell.stdin?.write('exec 2>&1; set -eo pipefail\n');
  }

  /** Types `text`; resolves with what it printed, once it is done. Fails if the shell ends (a command failed) or it takes over `timeoutMs`. */
  async type(text: string, timeoutMs: number): Promise<string> {
    const marker = `@@step-${++this.steps}-done`;
    const start = this.output.length;
    this.shell.stdin?.write(`${text}\necho ${marker}\n`);
    const deadline = Date.now() + timeoutMs;
    while (!this.output.includes(marker, start)) {
      if (this.ended || Date.now() > deadline || /lab: could not start/.test(this.output)) {
        throw new Error(`step ${this.steps} ${this.ended ? 'ended the shell (a command failed)' : 'did not finish'}:\n${text}\n--- it printed\n${this.output.slice(start).slice(-6000)}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    // The lab's engines have no network for containers to use: docker run warns of it, and that is all.
    return this.output.slice(start, this.output.indexOf(marker, start)).replace(/^WARNING: IPv4 forwarding is disabled\. Networking will not work\.\n/gm, '');
  }

  /** Everything the shell printed (kept as a file by afterAll for whoever reads a failed run). */
  get transcript(): string {
    return this.output;
  }

  close(): void {
    this.shell.stdin?.end();
  }
}

let terminal: Terminal;
let labPid = 0;
let labWork = '';
const serverFile = async (...parts: string[]) => readFile(join((await labEnv()).TETHER_TRY_SERVER!, ...parts), 'utf8').catch(() => '');
const labEnv = async () => Object.fromEntries([...(await readFile(join(LAB, 'env'), 'utf8')).matchAll(/^export (\w+)="?([^"\n]*)"?$/gm)].map((m) => [m[1], m[2]]));

/** busybox's `date`: "Thu Dec  3 12:05:00 UTC 2026". */
const MONTHS = 'JanFebMarAprMayJunJulAugSepOctNovDec';
function dateOf(line: string): number {
  const m = /^\w{3} (\w{3}) +(\d+) (\d\d):(\d\d):(\d\d) UTC (\d{4})$/.exec(line);
  if (!m) throw new Error(`not a date line: ${line}`);
  return Date.UTC(Number(m[6]), MONTHS.indexOf(m[1]!) / 3, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]));
}

/** Whether /run/tether was there before: the README's Swarm steps make it, for the manager's plugin state. */
let hadRunTether = true;

beforeAll(async () => {
  hadRunTether = await exists('/run/tether');
  terminal = new Terminal(REPO); // the user is in the repository, as the README's commands assume
});

afterAll(async () => {
  terminal?.close();
  await writeFile(join(tmpdir(), 'tether-readme-transcript.txt'), terminal?.transcript ?? '');
  if (labPid) await execa('kill', [String(labPid)], { reject: false });
  await eventually(async () => !(await exists(LAB)), 120_000, 'the lab stops').catch(() => undefined);
  await rm(join(REPO, 'journal.tgz'), { force: true }); // what the README's commands made
  await rm('/tmp/tether-plugin', { recursive: true, force: true });
  if (!hadRunTether && !(await mountsUnder('/run/tether')).length) await rm('/run/tether', { recursive: true, force: true });
}, STEP_MS);

describe("the README's Docker sections, word for word, in the lab", () => {
  it('starts the lab', async () => {
    const out = await terminal.type(await block('node dist/test/docker/try.js &'), STEP_MS);
    expect(out).toMatch(/lab: ready/);
    ({ pid: labPid, work: labWork } = JSON.parse(await readFile(join(LAB, 'lab.json'), 'utf8')) as { pid: number; work: string });
  }, STEP_MS);

  it('tells the Docker story: a named volume outlives its container, a backup, rm', async () => {
    const out = await terminal.type(await block('docker volume create -d tether'), STEP_MS);
    const [created, dateLine] = out.split('\n');
    expect(created).toBe('journal');
    expect(Math.abs(dateOf(dateLine!) - Date.now())).toBeLessThan(600_000); // written by one container as uid 1000, read by the next
    expect(out).toMatch(/"sharing": "onewriter"/);
    expect(out.trim().split('\n').at(-1)).toBe('journal'); // removed
    const listing = await execa('tar', ['tzf', join(REPO, 'journal.tgz')]);
    expect(listing.stdout.split('\n')).toContain('./log');
  }, STEP_MS);

  it('installs the Swarm plugin on the manager as the README says (the lab then installs it on the worker)', async () => {
    await terminal.type(await block('docker plugin create tether-csi:latest /tmp/tether-plugin'), STEP_MS);
    expect(await terminal.type("docker plugin ls --format '{{.Name}} {{.Enabled}}'", 60_000)).toContain('tether-csi:latest true');
  }, STEP_MS);

  it('tells the Swarm story: a second service stays pending, a drained node hands the volume and the service over', async () => {
    const out = await terminal.type(await block('docker volume create --driver tether-csi:latest'), STEP_MS);
    expect(out).toMatch(/\bsecond\.1\b.*Pending/);
    expect(await terminal.type("docker node ls --format '{{.Availability}}'", 60_000)).toMatch(/^Drain$/m);
    const before = (await serverFile('journal', 'data', 'log')).split('\n').length;
    await eventually(async () => /Running/.test(await terminal.type("docker service ps --filter desired-state=running --format '{{.CurrentState}}' writer", 60_000)), 240_000, 'the writer runs on the other node');
    await eventually(async () => (await serverFile('journal', 'data', 'log')).split('\n').length > before + 3, 60_000, 'the moved writer goes on writing where it was');
    const lines = (await serverFile('journal', 'data', 'log')).trim().split('\n').map(dateOf);
    expect(lines.every((t, i) => i === 0 || t >= lines[i - 1]!)).toBe(true); // one writer at a time: the log never goes back in time
  }, STEP_MS);

  it('stops the lab with kill %1, and nothing of it is left', async () => {
    await terminal.type('docker service rm writer', 120_000);
    await terminal.type('kill %1; wait', 180_000);
    expect(await exists(LAB)).toBe(false);
    expect((await execa('ip', ['netns', 'list'])).stdout).not.toContain(`tt${labPid % 100000}-`);
    expect(await mountsUnder(labWork)).toEqual([]);
    expect(await exists(labWork)).toBe(false);
    labPid = 0;
  }, STEP_MS);
});
