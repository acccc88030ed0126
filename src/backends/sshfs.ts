import { posix } from 'node:path';
import type { Logger } from 'pino';
import type { MountSpec } from '../mounts/spec.js';
import type { Backend, MountRequest } from './backend.js';
import type { SshfsBackendConfig } from './config.js';
import { checkOptions, splitOptions } from './options.js';
import { SftpFs } from './sftp-fs.js';
import { SftpPool, SftpSession } from './sftp-session.js';
import { SSHFS_OPTIONS } from './sshfs-options.js';

/** The cipher tether puts first: AES-GCM, 20–35 % faster than ssh's default chacha20 on AES-NI hardware. */
export const SSH_CIPHER = 'aes128-gcm@openssh.com';

/**
 * Options tether always sets, after the user's: ssh keeps the first value it sees, so a user's
 * ServerAliveInterval wins, while identity and host-key trust are tether's alone (the allowlist
 * refuses them from users).
 */
const DEFAULTS = [
  'reconnect',
  'ServerAliveInterval=5',
  'ServerAliveCountMax=3',
  'ConnectTimeout=10',
  // AES-GCM first, the rest of ssh's defaults after it ("^" prepends; one value, since sshfs splits
  // options on commas).
  `Ciphers=^${SSH_CIPHER}`,
  // curve25519 first, the rest of ssh's defaults after it: the handshake is most of a mount's time,
  // and OpenSSH 9.x's default sntrup761x25519 (post-quantum hybrid) key exchange made sshfs mounts
  // ~1.8× slower (270 ms against 150 ms here, measured side by side). The trade: no post-quantum key
  // exchange unless a user asks for it (KexAlgorithms=^sntrup761x25519-sha512@openssh.com).
  'KexAlgorithms=^curve25519-sha256',
];

/** Sequential reads over sshfs run ~1.5× faster with 1 MiB of read-ahead than with FUSE's 128 KiB. */
const READ_AHEAD_KB = 1024;

/** Volumes on any SSH server: the controller works over SFTP, nodes mount with sshfs. */
export class SshfsBackend implements Backend {
  readonly type = 'sshfs';
  readonly name: string;
  readonly fs: SftpFs;

  constructor(
    private readonly config: SshfsBackendConfig,
    private readonly privateKey: Buffer,
    log: Logger,
  ) {
    this.name = config.name;
    const target = { host: config.host, port: config.port, user: config.user, hostKey: config.hostKey, privateKey };
    const sessionLog = log.child({ backend: config.name });
    this.fs = new SftpFs(new SftpPool(() => new SftpSession(target, sessionLog), config.sftpSessions), config.path);
  }

  checkMountOptions(options: readonly string[]): void {
    checkOptions(SSHFS_OPTIONS, options);
  }

  close(): Promise<void> {
    return this.fs.close();
  }

  mountSpec(dir: string, request: MountRequest): MountSpec {
    const { host, port, user, hostKey } = this.config;
    const source = `${user}@${host.includes(':') ? `[${host}]` : host}:${posix.join(this.config.path, dir)}`;
    const given = splitOptions([...request.flags, ...this.config.mountOptions]);
    // FUSE takes the last of `ro` and `rw`: a read-only mount carries no `rw` from anyone, and one `ro`.
    const chosen = request.readonly ? given.filter((o) => o !== 'rw' && o !== 'ro') : given;
    const keys = new Set(chosen.map((o) => o.split('=')[0]));
    const options = [...chosen, ...DEFAULTS.filter((o) => !keys.has(o.split('=')[0]))];
    if (request.readonly) options.push('ro');
    if (request.group !== undefined && !keys.has('gid')) options.push(`gid=${request.group}`);
    const knownHost = port === 22 ? host : `[${host}]:${port}`;
    return {
      fstypes: ['fuse.sshfs'],
      source,
      command: 'sshfs',
      args: (target, secretDir) => [
        source,
        target,
        '-p',
        String(port),
        '-o',
        [
          ...options,
          `IdentityFile=${posix.join(secretDir, 'id')}`,
          'IdentitiesOnly=yes',
          `UserKnownHostsFile=${posix.join(secretDir, 'known_hosts')}`,
          'StrictHostKeyChecking=yes',
          'BatchMode=yes',
          'allow_other',
        ].join(','),
      ],
      secretFiles: { id: this.privateKey, known_hosts: `${knownHost} ${hostKey}\n` },
      cutoff: 'abort-fuse',
      server: { host, port },
      readAheadKb: READ_AHEAD_KB,
      daemon: true,
    };
  }
}
