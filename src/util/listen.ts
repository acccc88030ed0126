import type { Server } from 'node:net';

/** HOST:PORT as the flags take it: an IPv4 address or name (empty = every address), or [IPv6]; a port 0–65535. */
const LISTEN_ADDRESS = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):(\d{1,5})$/;

/** The host and port of a HOST:PORT listen address, or undefined when it is not one. An empty host is 0.0.0.0. */
export function parseListenAddress(address: string): { host: string; port: number } | undefined {
  const match = LISTEN_ADDRESS.exec(address);
  if (!match) return undefined;
  const port = Number(match[2]);
  if (port > 65_535) return undefined;
  return { host: match[1]!.replace(/^\[|\]$/g, '') || '0.0.0.0', port };
}

/**
 * Starts `server` listening on a HOST:PORT address (checked before, see parseListenAddress);
 * resolves with the address it is bound to, the port filled in when 0 was asked for.
 */
export async function listenOn(server: Server, address: string): Promise<{ host: string; port: number }> {
  const parsed = parseListenAddress(address);
  if (!parsed) throw new Error(`not a HOST:PORT address: "${address}"`);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(parsed.port, parsed.host, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  const bound = server.address();
  return { host: parsed.host, port: typeof bound === 'object' && bound ? bound.port : parsed.port };
}

/** An http URL for a bound address: IPv6 hosts in brackets. */
export const httpUrl = (host: string, port: number, path: string) => `http://${host.includes(':') ? `[${host}]` : host}:${port}${path}`;
