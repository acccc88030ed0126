import { invalid } from '../grpc/errors.js';
import { splitOptions } from './sshfs-options.js';

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

const uint = (max: number) => ({ test: (v: string) => /^\d{1,10}$/.test(v) && Number(v) <= max });
const VALUED: Record<string, { test(v: string): boolean }> = {
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

export function checkNfsOptions(options: readonly string[]): void {
  for (const option of splitOptions(options)) {
    const eq = option.indexOf('=');
    const key = eq < 0 ? option : option.slice(0, eq);
    const value = eq < 0 ? undefined : option.slice(eq + 1);
    if (value === undefined ? FLAGS.has(key) : Object.hasOwn(VALUED, key) && VALUED[key]!.test(value)) continue;
    const why = Object.hasOwn(VALUED, key) ? `the value "${value ?? ''}" is not allowed for ${key}` : `"${key}" is not on the allowlist`;
    throw invalid(`NFS mount option "${option}": ${why}; allowed: ${[...FLAGS, ...Object.keys(VALUED).map((k) => `${k}=…`)].join(' ')}`);
  }
}

/** The NFS version the options ask for, if any ("3", "4", "4.1"…). */
export function requestedVersion(options: readonly string[]): string | undefined {
  const vers = splitOptions(options).find((o) => o.startsWith('vers=') || o.startsWith('nfsvers='));
  return vers?.split('=')[1];
}
