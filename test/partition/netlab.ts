// Several "hosts" on this machine: network namespaces joined by veth links, made and removed by the
// test (addresses exist only inside them). The storage server's address sits on its namespace's
// loopback, reached from every other namespace over that namespace's own link — so one link can be
// cut (packets dropped silently with nftables, no reset, no ICMP) while the others carry on.
import { execa } from 'execa';

export interface NetLab {
  /** The storage server's namespace and address. */
  server: { netns: string; address: string };
  /** One namespace per host name given. */
  hosts: Record<string, string>;
  /** Drops every packet between `host` and the server, both ways, silently. */
  cut(host: string): Promise<void>;
  heal(host: string): Promise<void>;
  destroy(): Promise<void>;
}

const SERVER_ADDRESS = '10.231.0.1';
const ip = (...args: string[]) => execa('ip', args, { timeout: 10_000 });

/** Makes a server namespace and one namespace per host, each linked to the server. */
export async function makeNetLab(hostNames: string[]): Promise<NetLab> {
  const prefix = `tt${process.pid % 100000}`;
  const serverNs = `${prefix}-srv`;
  const hosts: Record<string, string> = {};
  const made: string[] = [];
  const destroy = async () => {
    for (const ns of made.reverse()) await ip('netns', 'del', ns).catch(() => undefined);
  };
  try {
    await ip('netns', 'add', serverNs);
    made.push(serverNs);
    await ip('-n', serverNs, 'link', 'set', 'lo', 'up');
    await ip('-n', serverNs, 'addr', 'add', `${SERVER_ADDRESS}/32`, 'dev', 'lo');
    for (const [i, name] of hostNames.entries()) {
      const ns = `${prefix}-${name}`;
      await ip('netns', 'add', ns);
      made.push(ns);
      hosts[name] = ns;
      const subnet = `10.231.${i + 1}`;
      await ip('link', 'add', `${prefix}h${i}`, 'netns', ns, 'type', 'veth', 'peer', 'name', `${prefix}s${i}`, 'netns', serverNs);
      await ip('-n', ns, 'link', 'set', 'lo', 'up');
      await ip('-n', ns, 'addr', 'add', `${subnet}.2/24`, 'dev', `${prefix}h${i}`);
      await ip('-n', ns, 'link', 'set', `${prefix}h${i}`, 'up');
      await ip('-n', ns, 'route', 'add', `${SERVER_ADDRESS}/32`, 'via', `${subnet}.1`);
      await ip('-n', serverNs, 'addr', 'add', `${subnet}.1/24`, 'dev', `${prefix}s${i}`);
      await ip('-n', serverNs, 'link', 'set', `${prefix}s${i}`, 'up');
    }
  } catch (err) {
    await destroy();
    throw err;
  }
  const nft = (host: string, script: string) => execa('ip', ['netns', 'exec', hosts[host]!, 'nft', '-f', '-'], { input: script, timeout: 10_000 });
  return {
    server: { netns: serverNs, address: SERVER_ADDRESS },
    hosts,
    cut: (host) =>
      nft(host, `table inet tether_cut {\n chain out { type filter hook output priority 0; ip daddr ${SERVER_ADDRESS} drop; }\n chain in { type filter hook input priority 0; ip saddr ${SERVER_ADDRESS} drop; }\n}\n`).then(() => undefined),
    heal: (host) => nft(host, 'delete table inet tether_cut\n').then(() => undefined, () => undefined),
    destroy,
  };
}

/** Runs a program in the network and mount namespaces of the process `pid` (a node plugin: its mounts are there). */
export function inNamespacesOf(pid: number, command: string, args: string[]) {
  return ['nsenter', ['-t', String(pid), '-m', '-n', '--', command, ...args]] as const;
}
