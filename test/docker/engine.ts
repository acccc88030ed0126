// A Docker host on this machine, for the tests: containerd (Debian's), a Docker engine built from its
// Go module (test/docker/binaries.sh) and tether's Docker plugin, all inside a network namespace of the
// test's own — engines try to reach image registries, which they must never do from the host's
// network. They share one mount namespace (nsenter, never `ip netns exec`, which would give each
// process a mount namespace of its own and hide the plugin's mounts from dockerd and containerd):
// the machine's, or — for several hosts, so that none sees another's mounts — one of the host's own
// (makeMountNamespace), where /run/docker/plugins is a directory of that host's.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa, type Result, type ResultPromise } from 'execa';
import { stringify } from 'yaml';
import { backendConfig, DRIVER_MAIN } from '../support/driver.js';
import { mountsUnder, unmountLeftovers } from '../support/helpers.js';
import { startSshServer, type SshServer } from '../support/sshd.js';
import { makeNetLab, type NetLab } from '../partition/netlab.js';

/** The directory of dockerd, docker and runc (TETHER_DOCKER_BIN, set by test/docker/run.sh and the lab): never the machine's own. */
export function dockerBin(): string {
  const dir = process.env.TETHER_DOCKER_BIN;
  if (!dir) throw new Error('TETHER_DOCKER_BIN is not set: test/docker/run.sh builds the engine (test/docker/binaries.sh)');
  return dir;
}
const CMD_TIMEOUT_MS = 120_000;

export interface DockerHostOptions {
  name: string;
  /** The network namespace the host's processes run in. */
  netns: string;
  /** Where its state lives (data roots, logs, the plugin's config and mounts). */
  dir: string;
  /** Short runtime directory for sockets (a unix socket path holds 107 bytes). */
  runDir: string;
  /** tether's Docker plugin: its name (the socket in /run/docker/plugins/) and its config. */
  pluginName: string;
  backends: object[];
  pluginArgs?: string[];
  pluginConfig?: Record<string, unknown>;
  /** A mount namespace of the host's own (makeMountNamespace); none: the machine's. */
  mountNamespace?: MountNamespace;
  /** The engine: the one built from its Go module (default), or Debian's docker.io (20.10: the legacy plugin protocol only) with Debian's runc. */
  engine?: 'built' | 'debian';
}

export interface MountNamespace {
  /** The namespace, bound to a file (nsenter --mount=). */
  file: string;
  /** What the host's processes see as /run/docker/plugins, as this process sees it. */
  pluginsDir: string;
}

/**
 * A mount namespace for one Docker host, kept by a bind of its nsfs file under `dir` (a private
 * mount of its own, as such binds need). Mounts from the machine's namespace reach it (slave); what
 * is mounted in it stays there. /run/docker/plugins in it is a directory of the host's own: each
 * engine finds its own plugin under the one name. `binds` (target → source) shows more of the host's
 * own directories in it: the lab's /etc/tether.
 */
export async function makeMountNamespace(dir: string, name: string, binds: Record<string, string> = {}): Promise<MountNamespace> {
  await mkdir(dir, { recursive: true });
  if ((await execa('findmnt', ['-n', '--mountpoint', dir], { reject: false })).exitCode !== 0) {
    await execa('mount', ['--bind', dir, dir]);
    await execa('mount', ['--make-private', dir]);
  }
  const file = path.join(dir, name);
  const pluginsDir = path.join(dir, `${name}-plugins`);
  await writeFile(file, '');
  await mkdir(pluginsDir, { recursive: true });
  await mkdir('/run/docker/plugins', { recursive: true });
  await execa('unshare', [`--mount=${file}`, '--propagation', 'slave', 'true']);
  await execa('nsenter', [`--mount=${file}`, '--', 'mount', '--bind', pluginsDir, '/run/docker/plugins']);
  for (const [target, source] of Object.entries(binds)) await execa('nsenter', [`--mount=${file}`, '--', 'mount', '--bind', source, target]);
  return { file, pluginsDir };
}

/** Lets go of the namespaces made under `dir` (each ends when its last process has): their files unbound, then `dir`. */
export async function removeMountNamespaces(dir: string): Promise<void> {
  const { stdout } = await execa('findmnt', ['-rn', '-o', 'TARGET'], { reject: false });
  for (const target of String(stdout).split('\n').filter((t) => t.startsWith(`${dir}/`)).sort().reverse()) await execa('umount', [target], { reject: false });
  await execa('umount', [dir], { reject: false });
}

export class DockerHost {
  private containerd?: ResultPromise;
  private dockerd?: ResultPromise;
  private pluginProcess?: ResultPromise;
  private pluginOutput = '';

  constructor(readonly options: DockerHostOptions) {}

  get socket(): string {
    return path.join(this.options.runDir, 'docker.sock');
  }

  get mountRoot(): string {
    return path.join(this.options.dir, 'volumes');
  }

  /** The plugin's socket as this process sees it. */
  get pluginSocket(): string {
    return path.join(this.options.mountNamespace?.pluginsDir ?? '/run/docker/plugins', `${this.options.pluginName}.sock`);
  }

  /** A command in the host's namespaces (its mount table, its network). */
  inside(command: string, args: string[]): Promise<Result> {
    return execa('nsenter', [...this.namespaces(), '--', command, ...args], { reject: false, timeout: CMD_TIMEOUT_MS, stdin: 'ignore' });
  }

  private namespaces(): string[] {
    const ns = [`--net=/run/netns/${this.options.netns}`];
    if (this.options.mountNamespace) ns.push(`--mount=${this.options.mountNamespace.file}`);
    return ns;
  }

  /** Starts containerd, then the engine; the plugin by startPlugin. */
  async start(): Promise<void> {
    const { dir, runDir } = this.options;
    await mkdir(path.join(dir, 'log'), { recursive: true });
    await mkdir(runDir, { recursive: true });
    const config = path.join(dir, 'containerd.toml');
    await writeFile(config, `version = 2\nroot = "${dir}/containerd"\nstate = "${runDir}/containerd"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "${runDir}/containerd/containerd.sock"\n`);
    this.containerd = this.spawn('containerd', ['--config', config], 'containerd');
    await this.waitFor(`${runDir}/containerd/containerd.sock`, 'containerd');
    await this.startDockerd();
  }

  async startDockerd(): Promise<void> {
    const { dir, runDir } = this.options;
    const args = ['--data-root', `${dir}/docker`, '--exec-root', `${runDir}/exec`, '--pidfile', `${runDir}/dockerd.pid`, '-H', `unix://${this.socket}`, '--containerd', `${runDir}/containerd/containerd.sock`];
    args.push('--bridge', 'none', '--iptables=false', '--ip6tables=false', '--ip-masq=false', '--ip-forward=false', '--userland-proxy=false');
    this.dockerd = this.spawn(this.program('dockerd'), args, 'dockerd');
    const deadline = Date.now() + 60_000;
    while ((await this.docker(['version'], { reject: false })).exitCode !== 0) {
      if (Date.now() > deadline || this.dockerd.exitCode !== null) throw new Error(`dockerd of ${this.options.name} did not start:\n${(await this.log('dockerd')).slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** SIGKILLs the engine (its containers run on, their shims are containerd's), as a crash would. */
  async killDockerd(): Promise<void> {
    this.dockerd?.kill('SIGKILL');
    await this.dockerd;
  }

  async startPlugin(): Promise<void> {
    const { dir, name, pluginName } = this.options;
    const configFile = path.join(dir, 'tether.yaml');
    await writeFile(configFile, stringify({ runtimeDir: path.join(this.options.runDir, 'tether'), backends: this.options.backends, ...this.options.pluginConfig }));
    const args = [DRIVER_MAIN, '--mode', 'docker', '--config', configFile, '--node-id', name, '--docker-plugin-name', pluginName, '--docker-mount-root', this.mountRoot, '--log-level', 'debug', ...(this.options.pluginArgs ?? [])];
    this.pluginOutput = '';
    this.pluginProcess = execa('nsenter', [...this.namespaces(), '--', 'node', ...args], { reject: false, stdin: 'ignore', all: true, buffer: false });
    this.pluginProcess.all?.on('data', (c: Buffer) => (this.pluginOutput += c.toString()));
    await this.waitFor(this.pluginSocket, 'the plugin');
  }

  async stopPlugin(signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    this.pluginProcess?.kill(signal);
    await this.pluginProcess;
    await writeFile(path.join(this.options.dir, 'log', 'plugin.log'), this.pluginOutput, { flag: 'a' });
  }

  /** The sshfs mounts below the plugin's mount root, as the host's mount table shows them. */
  async sshfsMounts(): Promise<string[]> {
    const { stdout } = await this.inside('findmnt', ['-rn', '-t', 'fuse.sshfs', '-o', 'TARGET']);
    return String(stdout).split('\n').filter((t) => t.startsWith(`${this.mountRoot}/`));
  }

  pluginLog(): string {
    return this.pluginOutput;
  }

  /** The docker CLI against this host's engine. */
  docker(args: string[], options: { reject?: boolean; timeoutMs?: number } = {}): Promise<Result> {
    return execa(this.program('docker'), ['-H', `unix://${this.socket}`, ...args], { reject: options.reject ?? true, timeout: options.timeoutMs ?? CMD_TIMEOUT_MS, stdin: 'ignore' });
  }

  async log(which: 'dockerd' | 'containerd'): Promise<string> {
    return readFile(path.join(this.options.dir, 'log', `${which}.log`), 'utf8').catch(() => '');
  }

  /** Stops everything this host started, containers first; what it mounted is unmounted by the caller (unmountLeftovers). */
  async stop(): Promise<void> {
    await this.docker(['rm', '-f', '-v', ...(await this.containers())], { reject: false, timeoutMs: 60_000 });
    await this.stopPlugin().catch(() => undefined);
    this.dockerd?.kill('SIGTERM');
    await this.dockerd;
    for (const shim of await this.shimPids()) await execa('kill', ['-9', shim], { reject: false });
    this.containerd?.kill('SIGTERM');
    await this.containerd;
  }

  private async containers(): Promise<string[]> {
    const { stdout } = await this.docker(['ps', '-aq'], { reject: false, timeoutMs: 30_000 });
    return String(stdout ?? '').split('\n').filter(Boolean);
  }

  /** containerd's shims left running (containers that outlived their engine), found by their state files. */
  private async shimPids(): Promise<string[]> {
    const { stdout } = await execa('sh', ['-c', 'cat "$1"/containerd/io.containerd.runtime.v2.task/*/*/shim.pid 2>/dev/null', 'x', this.options.runDir], { reject: false });
    return String(stdout).split('\n').filter((p) => /^\d+$/.test(p));
  }

  private program(name: 'dockerd' | 'docker'): string {
    if (this.options.engine === 'debian') return name === 'dockerd' ? '/usr/sbin/dockerd' : '/usr/bin/docker';
    return path.join(dockerBin(), name);
  }

  private spawn(program: string, args: string[], logName: string): ResultPromise {
    const env = { PATH: this.options.engine === 'debian' ? process.env.PATH : `${dockerBin()}:${process.env.PATH}`, DOCKER_SERVICE_PREFER_OFFLINE_IMAGE: '1' };
    const log = { file: path.join(this.options.dir, 'log', `${logName}.log`), append: true };
    return execa('nsenter', [...this.namespaces(), '--', program, ...args], { reject: false, stdin: 'ignore', env, stdout: log, stderr: log });
  }

  private async waitFor(socketPath: string, what: string): Promise<void> {
    const deadline = Date.now() + 60_000;
    while ((await execa('test', ['-S', socketPath], { reject: false })).exitCode !== 0) {
      if (Date.now() > deadline) throw new Error(`${what} of ${this.options.name} did not make ${socketPath}:\n${this.pluginOutput.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** A one-layer busybox image (busybox-static), loaded into the host's engine as `image`. */
export async function loadBusybox(host: DockerHost, work: string, image = 'busybox:tether-test'): Promise<string> {
  const root = path.join(work, 'busybox-root');
  const tar = path.join(work, 'busybox.tar');
  await execa('sh', ['-c', 'mkdir -p "$1/bin" "$1/etc" "$1/tmp" && cp /bin/busybox "$1/bin/busybox" && for c in $(/bin/busybox --list); do [ "$c" = busybox ] || ln -sf busybox "$1/bin/$c"; done && printf "root:x:0:0:root:/:/bin/sh\\n" > "$1/etc/passwd"', 'x', root]);
  const pack = path.resolve(path.dirname(DRIVER_MAIN), '../../test/e2e/images/pack-image.sh');
  await execa('bash', [pack, tar, image, root, 'null', '["sh"]']);
  await host.docker(['load', '-q', '-i', tar]);
  return image;
}

/** Loads a docker-archive tarball (test/e2e/images: tether's image) into the host's engine; its tag. */
export async function loadImage(host: DockerHost, tar: string): Promise<string> {
  if (!tar) throw new Error('TETHER_IMAGE_TAR is not set: test/docker/run.sh builds the image');
  const { stdout } = await host.docker(['load', '-i', tar]);
  const tag = /Loaded image: (\S+)/.exec(String(stdout))?.[1];
  if (!tag) throw new Error(`docker load printed no image name: ${String(stdout)}`);
  return tag;
}

/** Polls `check` until it holds; fails after `timeoutMs` with `what` and whatever `details` says (logs, tasks). */
export async function eventually(check: () => Promise<boolean>, timeoutMs: number, what: string, details: () => Promise<string> | string = () => ''): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms\n${await details()}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** One Docker host with tether's plugin, busybox loaded, and a real sshd as its backend, each in a network namespace of its own. */
export interface LoneHost {
  host: DockerHost;
  server: SshServer;
  /** The busybox image's tag. */
  image: string;
  /** Stops and removes all of it (TETHER_KEEP_LOGS: copies the host's logs there first). */
  teardown(): Promise<void>;
}

export async function startLoneHost(name: string, options: Pick<DockerHostOptions, 'pluginName' | 'pluginConfig' | 'engine'>): Promise<LoneHost> {
  const work = await mkdtemp(path.join(tmpdir(), `tether-docker-${name}-`));
  const runDir = `/run/tether-${name}-${process.pid}`;
  let lab: NetLab | undefined;
  let server: SshServer | undefined;
  let host: DockerHost | undefined;
  const teardown = async () => {
    await host?.stop().catch(() => undefined);
    if (host && process.env.TETHER_KEEP_LOGS) await execa('cp', ['-r', path.join(host.options.dir, 'log'), process.env.TETHER_KEEP_LOGS], { reject: false });
    await unmountLeftovers(work);
    await unmountLeftovers(runDir);
    await server?.stop();
    await lab?.destroy();
    if (!(await mountsUnder(work)).length) await rm(work, { recursive: true, force: true });
    await rm(runDir, { recursive: true, force: true });
  };
  try {
    lab = await makeNetLab([name]);
    server = await startSshServer({ netns: { name: lab.server.netns!, host: lab.server.address }, port: 2222 });
    host = new DockerHost({ name, netns: lab.hosts[name]!, dir: path.join(work, name), runDir, backends: [backendConfig(server)], ...options });
    await host.start();
    await host.startPlugin();
    return { host, server, image: await loadBusybox(host, work), teardown };
  } catch (err) {
    await teardown();
    throw err;
  }
}
