import { uint, type Allowlist, type ValueRule } from './options.js';

/**
 * The sshfs/ssh options a user may set (backend mountOptions, StorageClass mountOptions). Everything
 * else is refused: ssh options such as ProxyCommand, LocalCommand or sshfs' ssh_command run programs,
 * and the ones that carry identity and trust (IdentityFile, UserKnownHostsFile, StrictHostKeyChecking…)
 * are tether's to set.
 */
const FLAGS = new Set([
  'reconnect',
  'kernel_cache',
  'auto_cache',
  'noauto_cache',
  'direct_io',
  // Rewrites, on the node, the text of absolute symlinks that point into the mounted directory into
  // relative ones. The node's kernel still resolves every symlink, in the pod's own view; the server
  // resolves none, and the pod gets no link text it could not have written itself.
  'transform_symlinks',
  'no_readahead',
  'sync_readdir',
  'disable_hardlink',
  'delay_connect',
  'noatime',
  'nodiratime',
  'relatime',
  'ro',
  'rw',
  'noexec',
  'nosuid',
  'nodev',
]);

const CIPHERS = 'aes128-gcm@openssh.com|aes256-gcm@openssh.com|chacha20-poly1305@openssh.com|aes128-ctr|aes192-ctr|aes256-ctr';
const KEX = 'curve25519-sha256|curve25519-sha256@libssh.org|sntrup761x25519-sha512@openssh.com|mlkem768x25519-sha256|ecdh-sha2-nistp256|ecdh-sha2-nistp384|ecdh-sha2-nistp521|diffie-hellman-group16-sha512|diffie-hellman-group18-sha512|diffie-hellman-group14-sha256';
/** One algorithm name (sshfs splits options on commas, so there are no lists), optionally with ssh's ^ + - prefixes. */
const algorithm = (names: string) => new RegExp(`^[-+^]?(${names.replace(/\./g, '\\.')})$`);

const VALUED: Record<string, ValueRule> = {
  ServerAliveInterval: uint(3600),
  ServerAliveCountMax: uint(100),
  ConnectTimeout: uint(600),
  Ciphers: algorithm(CIPHERS),
  KexAlgorithms: algorithm(KEX),
  Compression: /^(yes|no)$/,
  max_read: uint(1 << 20),
  max_write: uint(1 << 20),
  max_conns: uint(16),
  cache: /^(yes|no)$/,
  cache_timeout: uint(86400),
  cache_stat_timeout: uint(86400),
  cache_dir_timeout: uint(86400),
  cache_link_timeout: uint(86400),
  dcache_timeout: uint(86400),
  dir_cache: /^(yes|no)$/,
  idmap: /^(none|user)$/,
  uid: uint(2 ** 31),
  gid: uint(2 ** 31),
  umask: /^[0-7]{1,4}$/,
  workaround: /^(none|all|rename|renamexdev|truncate|buflimit|fstat|createmode|nonodelaysrv)(:(none|all|rename|renamexdev|truncate|buflimit|fstat|createmode|nonodelaysrv))*$/,
};

/**
 * Refused with their reason. follow_symlinks makes sshfs ask the server to stat and open a symlink's
 * target: the server resolves a link the workload made (`../volume.1.json`, `../../pvc-b/data/x`,
 * `/etc/passwd`) with the SSH user's rights, so a pod could read and write other volumes, tether's
 * records and any file that user can reach. Without it the server hands the link over as a link and
 * the node's kernel resolves it inside the pod's own view (sshfs builds with contain_symlinks, such as
 * Debian's 3.7.3-1.2, do not even hand over absolute targets or targets with `..`: EPERM).
 */
const REFUSED = {
  follow_symlinks:
    "it makes the SSH server resolve the workload's symlinks, so a pod could reach other volumes, tether's records and any file the SSH user can read; without it a symlink reaches the node as a symlink and is resolved there, inside the pod's view",
};

export const SSHFS_OPTIONS: Allowlist = {
  label: 'mount option',
  flags: FLAGS,
  valued: VALUED,
  why: 'options that run programs or set identity and host-key trust are never accepted',
  refused: REFUSED,
};
