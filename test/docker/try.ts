// A Docker lab on this machine, for following the README's Docker sections word for word where no
// Docker engine runs and no registry answers (a fresh machine of this kind):
//   node dist/test/docker/try.js &
//   until [ -f /run/tether-docker-try/env ]; do sleep 1; done; . /run/tether-docker-try/env
//   ... the README's docker commands ...
//   kill %1                                   # stops the lab and removes all it made
// It starts a storage server (a real sshd), and two Docker hosts — engines built from their Go module
// (test/docker/binaries.sh), each in a network and a mount namespace of its own, so nothing reaches
// the host's network or mount table:
//   - the first ("manager", named after this machine) runs tether's Docker plugin as `-d tether`
//     (what `node dist/src/main.js --mode docker` does on a real host) and has busybox:latest and
//     tether's image (ghcr.io/tether-csi/tether:<version>, built from the Dockerfile) loaded; its
//     /etc/tether holds a config.yaml naming the lab's server (a bind seen by its engine only);
//   - the second ("try-worker") has joined the first's swarm; once the README's per-node steps are
//     done on the first (a manager must have the plugin before its nodes report it), the lab does
//     them on the second: the managed plugin tether-csi:latest, made, set and enabled.
// The env file puts the engines' docker CLI first in PATH and points DOCKER_HOST at the first engine;
// TETHER_TRY_SERVER is the directory the server serves (the volumes' data, as the server sees it).
// A lab left behind by a killed run (SIGKILL) is cleaned up by the next run.
import { chmod, copyFile, mkdir, mkdtemp, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path, { join } from 'node:path';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { backendConfig, DRIVER_MAIN } from '../support/driver.js';
import { startSshServer, type SshServer } from '../support/sshd.js';
import { exists, unmountLeftovers } from '../support/helpers.js';
import { makeNetLab, type NetLab } from '../partition/netlab.js';
import { dockerBin, DockerHost, eventually, loadBusybox, loadImage, makeMountNamespace, removeMountNamespaces } from './engine.js';

const LAB = '/run/tether-docker-try';
const NS_DIR = join(LAB, 'ns');
const ENV_FILE = join(LAB, 'env');
const STATE_FILE = join(LAB, 'lab.json');
const REPO = path.resolve(path.dirname(DRIVER_MAIN), '../..');
const PLUGIN = 'tether-csi:latest';
const WORKER = 'try-worker';

/** What a lab made, kept in STATE_FILE so that the next run can remove it if this one was killed. */
interface LabState {
  pid: number;
  work: string;
  /** The sshd's keys and config. */
  sshd?: string;
  netns: string[];
  madeEtcTether: boolean;
}

const say = (line: string) => process.stdout.write(`lab: ${line}\n`);
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Removes what a lab made: its processes (found by their network namespaces), mounts, namespaces, files. */
async function removeLab(state: LabState): Promise<void> {
  for (const ns of state.netns) {
    const { stdout } = await execa('ip', ['netns', 'pids', ns], { reject: false });
    for (const pid of String(stdout).split('\n').filter(Boolean)) await execa('kill', ['-9', pid], { reject: false });
  }
  await new Promise((r) => setTimeout(r, 500));
  for (const ns of state.netns) await execa('ip', ['netns', 'del', ns], { reject: false });
  await removeMountNamespaces(NS_DIR);
  await unmountLeftovers(state.work);
  await rm(state.work, { recursive: true, force: true });
  if (state.sshd) await rm(state.sshd, { recursive: true, force: true });
  if (state.madeEtcTether) await rmdir('/etc/tether').catch(() => undefined);
  await rm(LAB, { recursive: true, force: true });
}

/** A lab already here: refused if its process lives, else removed. */
async function clearEarlierLab(): Promise<void> {
  const earlier = await readFile(STATE_FILE, 'utf8').then((t) => JSON.parse(t) as LabState, () => undefined);
  if (earlier && alive(earlier.pid)) throw new Error(`a lab is running already (pid ${earlier.pid}): kill ${earlier.pid} first`);
  if (earlier) say(`removing what a killed lab (pid ${earlier.pid}) left behind`);
  if (earlier) await removeLab(earlier);
  else if (await exists(LAB)) await rm(LAB, { recursive: true, force: true });
}

/** The engines' binaries and tether's image: built once and cached (minutes the first time). */
async function buildParts(): Promise<{ bin: string; imageTar: string }> {
  say('the Docker binaries (built once into /var/cache/tether: about 4 minutes the first time)');
  const bin = (await execa('bash', [join(REPO, 'test/docker/binaries.sh')], { stderr: 'inherit' })).stdout.trim();
  let imageTar = process.env.TETHER_IMAGE_TAR ?? '';
  if (!imageTar) {
    say("tether's image, from the Dockerfile (a few minutes the first time)");
    const out = join(tmpdir(), 'tether-try-images');
    const cache = join(process.env.TETHER_CACHE ?? '/var/cache/tether', 'e2e');
    await execa('bash', [join(REPO, 'test/e2e/images/build-images.sh'), out], { env: { E2E_CACHE: cache, IMAGES: 'base_image tether_image' }, stdout: 'inherit', stderr: 'inherit' });
    imageTar = join(out, 'tether.tar');
  }
  return { bin, imageTar };
}

/** A host's /etc/tether: the chart's config with the lab's server, and the key it names. */
async function etcTether(dir: string, server: SshServer): Promise<string> {
  await mkdir(dir, { recursive: true });
  await copyFile(server.clientKeyFile, join(dir, 'box.key'));
  await chmod(join(dir, 'box.key'), 0o600);
  await writeFile(join(dir, 'config.yaml'), stringify({ backends: [{ ...backendConfig(server), privateKeyFile: '/etc/tether/box.key' }] }));
  return dir;
}

async function main(): Promise<void> {
  await clearEarlierLab();
  const { bin, imageTar } = await buildParts();
  process.env.TETHER_DOCKER_BIN = bin; // engine.ts reads it when it starts a host
  const work = await mkdtemp(join(tmpdir(), 'tether-docker-try-'));
  const state: LabState = { pid: process.pid, work, netns: [], madeEtcTether: !(await exists('/etc/tether')) };
  await mkdir(NS_DIR, { recursive: true });
  if (state.madeEtcTether) await mkdir('/etc/tether');
  await writeFile(STATE_FILE, JSON.stringify(state));
  const hosts: DockerHost[] = [];
  let lab: NetLab | undefined;
  let server: SshServer | undefined;
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      say('stopping');
      for (const host of hosts.reverse()) {
        await host.docker(['swarm', 'leave', '--force'], { reject: false, timeoutMs: 30_000 });
        await host.docker(['plugin', 'disable', '-f', PLUGIN], { reject: false, timeoutMs: 30_000 });
        await host.stop().catch(() => undefined);
      }
      await server?.stop();
      await removeLab(state);
      say('stopped; nothing of the lab is left');
    })());
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => void stop().finally(() => process.exit(0)));

  try {
    lab = await makeNetLab(['manager', 'worker'], { hostsMeet: true });
    state.netns = [lab.server.netns!, ...Object.values(lab.hosts)];
    await writeFile(STATE_FILE, JSON.stringify(state));
    await mkdir(join(work, 'server'));
    server = await startSshServer({ netns: { name: lab.server.netns!, host: lab.server.address }, port: 2222, root: join(work, 'server') });
    state.sshd = server.workDir;
    await writeFile(STATE_FILE, JSON.stringify(state));
    say(`the storage server: sshd at ${server.host}:2222, serving ${server.root}`);
    for (const [role, name] of [['manager', hostname()], ['worker', WORKER]] as const) {
      const etc = await etcTether(join(work, role, 'etc'), server);
      hosts.push(new DockerHost({
        name,
        netns: lab.hosts[role]!,
        mountNamespace: await makeMountNamespace(NS_DIR, role, { '/etc/tether': etc }),
        dir: join(work, role),
        runDir: join(NS_DIR, `${role}-run`),
        pluginName: 'tether',
        backends: [backendConfig(server)],
      }));
    }
    const [manager, worker] = hosts as [DockerHost, DockerHost];
    say('two Docker engines, each in a network and a mount namespace of its own');
    await Promise.all(hosts.map((h) => h.start()));
    await Promise.all(hosts.map(async (h) => {
      await loadBusybox(h, join(work, h.options.name), 'busybox:latest');
      await loadImage(h, imageTar);
    }));
    await manager.startPlugin();
    say('the manager serves -d tether; the two engines form a swarm');
    await swarm(manager, worker, lab);
    await writeFile(`${ENV_FILE}.tmp`, [
      `export PATH="${bin}:$PATH"`,
      `export DOCKER_HOST=unix://${manager.socket}`,
      `export TETHER_TRY_SERVER=${server.root}`,
      '',
    ].join('\n'));
    say(`ready: . ${ENV_FILE}   (engine logs in ${work}/*/log; kill ${process.pid} stops the lab)`);
    await rename(`${ENV_FILE}.tmp`, ENV_FILE);
    void pluginOnWorkerAfterManager(manager, worker, work).catch((err: unknown) => {
      if (!stopping) say(`could not install ${PLUGIN} on the worker: ${err instanceof Error ? err.message : String(err)}`);
    });
  } catch (err) {
    say(`could not start: ${err instanceof Error ? err.message : String(err)}`);
    const logs = join(tmpdir(), `tether-docker-try-logs-${process.pid}`);
    await mkdir(logs, { recursive: true });
    for (const host of hosts) await execa('cp', ['-r', join(host.options.dir, 'log'), join(logs, host.options.name)], { reject: false });
    say(`the engines' logs are kept in ${logs}`);
    await stop();
    process.exit(1);
  }
}

/** The swarm: both engines, the first as its manager. */
async function swarm(manager: DockerHost, worker: DockerHost, lab: NetLab): Promise<void> {
  const [managerAddress, workerAddress] = [lab.addresses.manager!, lab.addresses.worker!];
  await run(manager, 'swarm', 'init', '--advertise-addr', managerAddress, '--listen-addr', `${managerAddress}:2377`);
  const token = await run(manager, 'swarm', 'join-token', '-q', 'worker');
  await run(worker, 'swarm', 'join', '--token', token, '--advertise-addr', workerAddress, '--listen-addr', `${workerAddress}:2377`, `${managerAddress}:2377`);
  const workerId = await run(manager, 'node', 'ls', '--filter', 'role=worker', '-q');
  await eventually(async () => (await run(manager, 'node', 'inspect', '--format', '{{.Status.State}}', workerId)) === 'ready', 60_000, 'the worker is ready');
}

/**
 * The README's per-node steps for the worker, done once the user has done them on the manager: a
 * manager drops the CSI node ID of a node that reports the plugin before the manager has it (see
 * the README), so the lab keeps the README's order — managers first.
 */
async function pluginOnWorkerAfterManager(manager: DockerHost, worker: DockerHost, work: string): Promise<void> {
  while ((await manager.docker(['plugin', 'inspect', '--format', '{{.Enabled}}', PLUGIN], { reject: false })).stdout !== 'true') await new Promise((r) => setTimeout(r, 1000));
  const image = (await run(worker, 'image', 'ls', '--format', '{{.Repository}}:{{.Tag}}', 'ghcr.io/tether-csi/tether')).split('\n')[0]!;
  const pluginDir = join(work, 'plugin');
  await execa('bash', [join(REPO, 'examples/swarm-plugin/make-plugin.sh'), image, pluginDir], { env: { DOCKER: `${join(dockerBin(), 'docker')} -H unix://${worker.socket}` } });
  const state = join(worker.options.runDir, 'tether');
  await mkdir(state, { recursive: true });
  await run(worker, 'plugin', 'create', PLUGIN, pluginDir);
  await run(worker, 'plugin', 'set', PLUGIN, `NODE_ID=${WORKER}`, `state.source=${state}`);
  await run(worker, 'plugin', 'enable', PLUGIN);
  say(`the worker has ${PLUGIN} too, installed after the manager's`);
}

const run = async (host: DockerHost, ...args: string[]) => String((await host.docker(args)).stdout).trim();

setInterval(() => undefined, 1 << 30); // the lab lives until it is told to stop
await main();
