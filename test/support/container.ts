// A "container" for a test process: a cgroup v2 of its own, killed as a whole the way a container
// runtime stops a container (every process in it, daemonized ones included: sshfs forks, calls setsid
// and is reparented to init, but stays in the cgroup). Without cgroup v2 (or its cgroup.kill, Linux
// 5.14), the fallback kills the process and every process whose command line names `marker` — what
// tether's own daemons carry (their private directory under the runtime directory).
import { mkdir, readFile, readdir, rmdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const ROOT_NAME = 'tether-tests';

/** Where cgroup v2 is mounted (pure v2: /sys/fs/cgroup; hybrid: /sys/fs/cgroup/unified), if its cgroups can be killed. */
async function cgroup2Root(): Promise<string | undefined> {
  const info = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  for (const line of info.split('\n')) {
    const [left, right] = line.split(' - ');
    if (right?.startsWith('cgroup2 ')) {
      const mountPoint = left!.split(' ')[4]!;
      if (existsSync(path.join(mountPoint, 'cgroup.procs'))) return mountPoint;
    }
  }
  return undefined;
}

export class Container {
  private constructor(
    readonly name: string,
    /** The cgroup's directory, or undefined when the fallback is used. */
    private readonly cgroup: string | undefined,
    /** The fallback's mark: a process whose command line holds it belongs to this container. */
    private readonly marker: string,
  ) {}

  /** A new empty container; `marker` is only used when cgroup v2 is not available. */
  static async create(name: string, marker: string): Promise<Container> {
    const root = await cgroup2Root();
    if (!root) return new Container(name, undefined, marker);
    const dir = path.join(root, ROOT_NAME, `${name}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
    await mkdir(dir, { recursive: true });
    if (!existsSync(path.join(dir, 'cgroup.kill'))) return new Container(name, undefined, marker);
    return new Container(name, dir, marker);
  }

  /** How it kills: for the test's log. */
  get how(): string {
    return this.cgroup ? `cgroup ${this.cgroup}` : `processes naming ${this.marker}`;
  }

  /** `command args…` as run inside the container: a shell that moves itself into the cgroup, then execs the command. */
  wrap(command: string, args: string[]): [string, string[]] {
    if (!this.cgroup) return [command, args];
    return ['sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', this.cgroup, command, ...args]];
  }

  /** The processes in it now. */
  async pids(): Promise<number[]> {
    if (this.cgroup) return (await readFile(path.join(this.cgroup, 'cgroup.procs'), 'utf8')).split('\n').filter(Boolean).map(Number);
    const found: number[] = [];
    for (const entry of await readdir('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const argv = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
      if (argv.includes(this.marker)) found.push(Number(entry));
    }
    return found;
  }

  /** The container crashes: SIGKILL to every process in it; returns once they are gone (bounded). */
  async kill(): Promise<void> {
    if (this.cgroup) await writeFile(path.join(this.cgroup, 'cgroup.kill'), '1');
    else for (const pid of await this.pids()) killQuietly(pid);
    const deadline = Date.now() + 5_000;
    while ((await this.pids()).length && Date.now() < deadline) await sleep(20);
  }

  /** Kills what is left and removes the cgroup. */
  async remove(): Promise<void> {
    await this.kill().catch(() => undefined);
    if (this.cgroup) await rmdir(this.cgroup).catch(() => undefined);
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}
