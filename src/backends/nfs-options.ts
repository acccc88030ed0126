import { splitOptions, uint, type Allowlist, type ValueRule } from './options.js';

/**
 * The NFS mount options a user may set (backend mountOptions, StorageClass mountOptions). Anything
 * else is INVALID_ARGUMENT: options such as `fsc`, `context=`, `sec=krb5` or `clientaddr=` change
 * the node's security or caching beyond the volume, and are not tether's to pass on.
 */
const FLAGS = new Set([
  'soft',
  'hard',
  'softreval',
  'nosoftreval',
  'noac',
  'cto',
  'nocto',
  'lock',
  'nolock',
  'resvport',
  'noresvport',
  'sharecache',
  'nosharecache',
  'intr',
  'nointr',
  'ro',
  'rw',
  'sync',
  'async',
  'noatime',
  'nodiratime',
  'relatime',
  'noexec',
  'nosuid',
  'nodev',
]);

const VALUED: Record<string, ValueRule> = {
  vers: /^(3|4|4\.0|4\.1|4\.2)$/,
  nfsvers: /^(3|4|4\.0|4\.1|4\.2)$/,
  minorversion: /^[0-2]$/,
  proto: /^(tcp|tcp6|rdma|rdma6)$/,
  mountproto: /^(tcp|tcp6|udp|udp6)$/,
  port: uint(65535),
  mountport: uint(65535),
  rsize: uint(1 << 20),
  wsize: uint(1 << 20),
  timeo: uint(6000),
  retrans: uint(100),
  retry: uint(10000),
  nconnect: uint(16),
  max_connect: uint(16),
  actimeo: uint(3600),
  acregmin: uint(3600),
  acregmax: uint(3600),
  acdirmin: uint(3600),
  acdirmax: uint(3600),
  lookupcache: /^(all|none|pos|positive)$/,
  local_lock: /^(none|all|flock|posix)$/,
  sec: /^sys$/,
  namlen: uint(4096),
};

export const NFS_OPTIONS: Allowlist = { label: 'NFS mount option', flags: FLAGS, valued: VALUED };

/** The NFS version the options ask for, if any ("3", "4", "4.1"…). */
export function requestedVersion(options: readonly string[]): string | undefined {
  const vers = splitOptions(options).find((o) => o.startsWith('vers=') || o.startsWith('nfsvers='));
  return vers?.split('=')[1];
}
