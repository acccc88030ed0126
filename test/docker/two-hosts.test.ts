// Two Docker hosts on one backend, each a real engine with tether's Docker plugin in a network and a
// mount namespace of its own (neither sees the other's mounts), and a real sshd in a third namespace.
// A onewriter volume is never written from both: host docker2's container waits for docker1's to stop,
// then starts on the data docker1 wrote. With docker1's link to the server cut while it writes,
// docker2 takes the volume over only once docker1's writer lease has gone a full term unrenewed;
// docker1 fences itself before that, and none of its late writes lands after docker2's (the checker
// of the partition test reads the file on the server).
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path, { join } from 'node:path';
import { startSshServer, type SshServer } from '../support/sshd.js';
import { backendConfig, DRIVER_MAIN } from '../support/driver.js';
import { mountsUnder, recordOn, unmountLeftovers } from '../support/helpers.js';
import { makeNetLab, type NetLab } from '../partition/netlab.js';
import { durableRecords, verifyRound } from '../partition/verify.js';
import { DockerHost, eventually as pollUntil, loadImage, makeMountNamespace, removeMountNamespaces } from './engine.js';

const STEP_MS = 150_000;
const HOOK_MS = 240_000;
/** Short terms, so that a takeover shows within a test (production: 20 s). */
const LEASE = { termSeconds: 6, renewSeconds: 1, fenceMarginSeconds: 2 };
const MOUNT_WAIT_S = 15;
const WRITER = path.resolve(path.dirname(DRIVER_MAIN), '../test/partition');

let lab: NetLab;
let server: SshServer;
let work: string;
const hosts: DockerHost[] = [];
let tether: string;
const driver = `tether-t${process.pid}`;
const nsDir = `/run/tether-dk2-${process.pid}`;

const onServer = (...parts: string[]) => join(server.root, ...parts);
const run = (host: DockerHost, ...args: string[]) => host.docker(args).then((r) => String(r.stdout).trim());
/** The partition test's writer (node, from tether's image) on the volume `volume`, noting its progress on the host. */
const writerArgs = (volume: string, who: string, mode: string, count: number) => [
  '--network', 'none', '-v', `${volume}:/data`, '-v', `${WRITER}:/w:ro`, '-v', `${join(work, 'progress')}:/p`, '--entrypoint', 'node', tether, '/w/writer.js', '/data/f', who, mode, String(count), `/p/${volume}-${who}`,
];
/** A shell script in a container (tether's image: its entrypoint is tether's, so sh is named). */
const shell = (volume: string, script: string) => ['--network', 'none', '-v', `${volume}:/data`, '--entrypoint', 'sh', tether, '-c', script];
const progress = (volume: string, who: string) => readFile(join(work, 'progress', `${volume}-${who}`), 'utf8').catch(() => '');

/** Polls `check`; on failure, shows both plugins' last lines. */
const eventually = (check: () => Promise<boolean>, timeoutMs: number, what: string) =>
  pollUntil(check, timeoutMs, what, () => hosts.map((h) => `--- ${h.options.name} plugin log\n${h.pluginLog().slice(-2500)}`).join('\n'));

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tether-docker-two-'));
  await mkdir(join(work, 'progress'));
  lab = await makeNetLab(['docker1', 'docker2']);
  server = await startSshServer({ netns: { name: lab.server.netns!, host: lab.server.address }, port: 2222 });
  for (const name of ['docker1', 'docker2']) {
    const host = new DockerHost({
      name,
      netns: lab.hosts[name]!,
      mountNamespace: await makeMountNamespace(nsDir, name),
      dir: join(work, name),
      runDir: join(nsDir, `${name}-run`),
      pluginName: driver,
      backends: [backendConfig(server)],
      pluginArgs: ['--docker-mount-wait', String(MOUNT_WAIT_S)],
      pluginConfig: { lease: LEASE },
    });
    hosts.push(host);
    await host.start();
    await host.startPlugin();
  }
  tether = (await Promise.all(hosts.map((h) => loadImage(h, process.env.TETHER_IMAGE_TAR ?? ''))))[0]!;
}, HOOK_MS);

afterAll(async () => {
  await lab?.heal('docker1').catch(() => undefined);
  for (const host of hosts) await host.stop().catch(() => undefined);
  await server?.stop();
  await lab?.destroy();
  await removeMountNamespaces(nsDir);
  await rm(nsDir, { recursive: true, force: true });
  if (work) await unmountLeftovers(work);
  if (work && !(await mountsUnder(work)).length) await rm(work, { recursive: true, force: true });
}, HOOK_MS);

describe('two Docker hosts, one onewriter volume', () => {
  it('is made on one host and seen by the other', async () => {
    const [one, two] = hosts as [DockerHost, DockerHost];
    await run(one, 'volume', 'create', '-d', driver, '-o', 'sharing=onewriter', 'journal');
    expect(await run(two, 'volume', 'ls', '--format', '{{.Driver}} {{.Name}}')).toContain(`${driver} journal`);
  }, STEP_MS);

  it("keeps docker2's container waiting while docker1's writes, and fails it, naming docker1, when docker1 does not let go", async () => {
    const [one, two] = hosts as [DockerHost, DockerHost];
    await run(one, 'run', '-d', '--name', 'w1', ...shell('journal', 'while true; do echo one >> /data/log; sleep 0.2; done'));
    const started = Date.now();
    const refused = await two.docker(['run', '--rm', ...shell('journal', 'echo two >> /data/log')], { reject: false });
    expect(refused.exitCode).not.toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual((MOUNT_WAIT_S - 1) * 1000);
    expect(String(refused.stderr)).toMatch(/volume journal is in use on host docker1 and its sharing mode onewriter allows one host at a time: stop the containers using it there first/);
    expect(await readFile(onServer('journal', 'data', 'log'), 'utf8')).not.toContain('two');
    expect(await two.sshfsMounts()).toEqual([]);
  }, STEP_MS);

  it("starts docker2's container once docker1's has stopped, on what docker1 wrote", async () => {
    const [one, two] = hosts as [DockerHost, DockerHost];
    const waiting = two.docker(['run', '--rm', ...shell('journal', 'grep -c one /data/log; echo two >> /data/log')]);
    await new Promise((r) => setTimeout(r, 2000));
    await run(one, 'rm', '-f', 'w1');
    const { stdout } = await waiting;
    expect(Number(String(stdout).trim())).toBeGreaterThan(0);
    const log = await readFile(onServer('journal', 'data', 'log'), 'utf8');
    expect(log.trimEnd().split('\n').at(-1)).toBe('two'); // after every line of docker1's
    await eventually(async () => (await one.sshfsMounts()).length === 0 && (await two.sshfsMounts()).length === 0, 15_000, 'both hosts let go');
    expect(await recordOn(onServer('journal'))).toMatchObject({ claims: [], leases: [] });
  }, STEP_MS);

  it('with docker1 cut off mid-write, docker2 takes over after the lease term and none of docker1\'s late writes lands', async () => {
    const [one, two] = hosts as [DockerHost, DockerHost];
    await run(one, 'volume', 'create', '-d', driver, 'fenced');
    await run(one, 'run', '-d', '--name', 'wa', ...writerArgs('fenced', 'A', 'fsync5', 0));
    await eventually(async () => durableRecords(await progress('fenced', 'A')).size >= 50, 60_000, 'docker1 writes');
    await lab.cut('docker1');
    const cutAt = Date.now();
    const b = await two.docker(['run', '--rm', '--name', 'wb', ...writerArgs('fenced', 'B', 'fsync1', 40)], { reject: false });
    const tookMs = Date.now() - cutAt;
    expect(b.exitCode).toBe(0);
    expect(tookMs).toBeGreaterThanOrEqual(LEASE.termSeconds * 1000); // never before docker1's lease could have run out
    await lab.heal('docker1'); // anything docker1 still held back would land now
    await new Promise((r) => setTimeout(r, 3000));
    const problems = verifyRound(await readFile(onServer('fenced', 'data', 'f'), 'utf8'), durableRecords(await progress('fenced', 'A')), 40);
    expect(problems).toEqual([]);
    expect(one.pluginLog()).toMatch(/"event":"fence"/);
    expect(one.pluginLog()).not.toMatch(/weaker than asked|"event":"weak-fence"/);
    expect(two.pluginLog()).toMatch(/"event":"lease-takeover"/);
    console.log(`docker two hosts: docker2's writer finished ${tookMs} ms after docker1's link was cut (lease term ${LEASE.termSeconds} s); docker1 wrote ${durableRecords(await progress('fenced', 'A')).size} durable records`);
    await run(one, 'rm', '-f', 'wa'); // its Unmount takes the fenced mount away
    await eventually(async () => (await one.sshfsMounts()).length === 0, 30_000, 'docker1 unmounts the fenced volume');
  }, STEP_MS);
});
