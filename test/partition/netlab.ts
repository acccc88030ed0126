// Several "hosts" on this machine: network namespaces joined by veth links, made and removed by the
// test (addresses exist only inside them). The storage server's address sits on its namespace's
// loopback, reached from every other namespace over that namespace's own link — so one link can be
// cut (packets dropped silently with nftables, no reset, no ICMP) while the others carry on.
import { execa } from 'execa';

export interface NetLab {
  /** The storage server's namespace (none: this process's own) and address. */
  server: { netns?: string; address: string };
  /** One namespace per host name given. */
  hosts: Record<string, string>;
  /** Each host's own address, by host name. */
  addresses: Record<string, string>;
  /** Drops every packet between `host` and the server, both ways, silently. */
  cut(host: string): Promise<void>;
  heal(host: string): Promise<void>;
  destroy(): Promise<void>;
}

const SERVER_ADDRESS = '10.231.0.1';
const ip = (...args: string[]) => execa('ip', args, { timeout: 10_000 });

/**
 * Makes one namespace per host, each linked to the server's: a namespace of its own, or — with
 * `serverHere` (the NFS guest, whose server runs in its first namespace) — this process's. Cuts are
 * nftables drops, or — where the kernel has no nftables (the NFS guest) — the server's end of the
 * host's link going down: the host's packets then vanish without a reset as well. With `hostsMeet`,
 * hosts reach each other's addresses (10.231.<i+1>.2) through the server's namespace, which forwards
 * (a sysctl of that namespace only); a cut still drops only the host's traffic with the server.
 */
export async function makeNetLab(hostNames: string[], { serverHere = false, hostsMeet = false } = {}): Promise<NetLab> {
  const prefix = `tt${process.pid % 100000}`;
  const serverNs = serverHere ? undefined : `${prefix}-srv`;
  const inServer = (...args: string[]) => (serverNs ? ['-n', serverNs, ...args] : args);
  const hosts: Record<string, string> = {};
  const made: string[] = [];
  const links: string[] = [];
  const destroy = async () => {
    for (const ns of made.reverse()) await ip('netns', 'del', ns).catch(() => undefined);
    if (!serverNs) {
      for (const link of links) await ip('link', 'del', link).catch(() => undefined);
      await ip('addr', 'del', `${SERVER_ADDRESS}/32`, 'dev', 'lo').catch(() => undefined);
    }
  };
  try {
    if (serverNs) {
      await ip('netns', 'add', serverNs);
      made.push(serverNs);
    }
    await ip(...inServer('link', 'set', 'lo', 'up'));
    await ip(...inServer('addr', 'add', `${SERVER_ADDRESS}/32`, 'dev', 'lo'));
    for (const [i, name] of hostNames.entries()) {
      const ns = `${prefix}-${name}`;
      await ip('netns', 'add', ns);
      made.push(ns);
      hosts[name] = ns;
      const subnet = `10.231.${i + 1}`;
      await ip('link', 'add', `${prefix}h${i}`, 'netns', ns, 'type', 'veth', 'peer', 'name', `${prefix}s${i}`, ...(serverNs ? ['netns', serverNs] : []));
      links.push(`${prefix}s${i}`);
      await ip('-n', ns, 'link', 'set', 'lo', 'up');
      await ip('-n', ns, 'addr', 'add', `${subnet}.2/24`, 'dev', `${prefix}h${i}`);
      await ip('-n', ns, 'link', 'set', `${prefix}h${i}`, 'up');
      await ip('-n', ns, 'route', 'add', `${SERVER_ADDRESS}/32`, 'via', `${subnet}.1`);
      // Hosts that must reach each other (a swarm's nodes) do so through the server's namespace, which forwards.
      if (hostsMeet) await ip('-n', ns, 'route', 'add', '10.231.0.0/16', 'via', `${subnet}.1`);
      await ip(...inServer('addr', 'add', `${subnet}.1/24`, 'dev', `${prefix}s${i}`));
      await ip(...inServer('link', 'set', `${prefix}s${i}`, 'up'));
    }
    if (hostsMeet && serverNs) await execa('ip', ['netns', 'exec', serverNs, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1'], { timeout: 10_000 });
  } catch (err) {
    await destroy();
    throw err;
  }
  const nft = (host: string, script: string) => execa('ip', ['netns', 'exec', hosts[host]!, 'nft', '-f', '-'], { input: script, timeout: 10_000 });
  const serverEnd = (host: string) => `${prefix}s${hostNames.indexOf(host)}`;
  return {
    server: { netns: serverNs, address: SERVER_ADDRESS },
    hosts,
    addresses: Object.fromEntries(hostNames.map((name, i) => [name, `10.231.${i + 1}.2`])),
    cut: async (host) => {
      if (serverNs) await nft(host, `table inet tether_cut {\n chain out { type filter hook output priority 0; ip daddr ${SERVER_ADDRESS} drop; }\n chain in { type filter hook input priority 0; ip saddr ${SERVER_ADDRESS} drop; }\n}\n`);
      else await ip('link', 'set', serverEnd(host), 'down');
    },
    heal: async (host) => {
      if (serverNs) await nft(host, 'delete table inet tether_cut\n').catch(() => undefined);
      else await ip('link', 'set', serverEnd(host), 'up');
    },
    destroy,
  };
}

/** Runs a program in the network and mount namespaces of the process `pid` (a node plugin: its mounts are there). */
export function inNamespacesOf(pid: number, command: string, args: string[]) {
  return ['nsenter', ['-t', String(pid), '-m', '-n', '--', command, ...args]] as const;
}
