// src/backends/sshfs.ts: SshfsBackend.mountSpec, the sshfs command line a node runs.
import { pino } from 'pino';
import type { MountRequest } from '../../src/backends/backend.js';
import type { SshfsBackendConfig } from '../../src/backends/config.js';
import { SshfsBackend } from '../../src/backends/sshfs.js';

const HOST_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl';
const PRIVATE_KEY = Buffer.from('-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n-----END OPENSSH PRIVATE KEY-----\n');
const TARGET = '/var/lib/kubelet/plugins/kubernetes.io/csi/tether.csi.dev/abc/globalmount';
const SECRET_DIR = '/run/tether/secrets/abc';

function backend(overrides: Partial<SshfsBackendConfig> = {}): SshfsBackend {
  const config: SshfsBackendConfig = {
    name: 'box',
    type: 'sshfs',
    host: '10.0.0.5',
    port: 22,
    user: 'csi',
    path: '/srv/volumes',
    hostKey: HOST_KEY,
    privateKeyFile: '/etc/tether/id',
    mountOptions: [],
    sftpSessions: 4,
    ...overrides,
  };
  // Constructing the backend does not connect: the SFTP session opens on first use.
  return new SshfsBackend(config, PRIVATE_KEY, pino({ level: 'silent' }));
}

const request = (overrides: Partial<MountRequest> = {}): MountRequest => ({ flags: [], readonly: false, ...overrides });

/** The mount's -o items, in order. */
function optionsOf(args: string[]): string[] {
  const at = args.indexOf('-o');
  expect(at).toBeGreaterThanOrEqual(0);
  expect(args.indexOf('-o', at + 1)).toBe(-1); // a single -o: nothing can be appended behind tether's options
  return args[at + 1]!.split(',');
}

const keyOf = (option: string) => option.split('=')[0]!;
const valuesOf = (options: string[], key: string) => options.filter((o) => keyOf(o) === key);

describe('SshfsBackend.mountSpec', () => {
  test('the command line: source, target, port, then one -o list', () => {
    const spec = backend({ port: 2222 }).mountSpec('pvc-1', request());
    expect(spec.fstypes).toEqual(['fuse.sshfs']);
    expect(spec.command).toBe('sshfs');
    expect(spec.source).toBe('csi@10.0.0.5:/srv/volumes/pvc-1');
    const args = spec.args(TARGET, SECRET_DIR);
    expect(args.slice(0, 5)).toEqual(['csi@10.0.0.5:/srv/volumes/pvc-1', TARGET, '-p', '2222', '-o']);
    expect(args).toHaveLength(6);
  });

  test.each<[string, string, string]>([
    ['/srv/volumes', 'pvc-1', 'csi@10.0.0.5:/srv/volumes/pvc-1'],
    ['/srv/volumes/', 'pvc-1', 'csi@10.0.0.5:/srv/volumes/pvc-1'],
    ['/', 'pvc-1', 'csi@10.0.0.5:/pvc-1'],
    ['/srv/volumes', '.snapshots/snap-1', 'csi@10.0.0.5:/srv/volumes/.snapshots/snap-1'],
  ])('base %s and dir %s → source %s', (path, dir, source) => {
    expect(backend({ path }).mountSpec(dir, request()).source).toBe(source);
  });

  test.each<[string, string[], string[], string, string]>([
    ['nothing set: the defaults', [], [], 'ServerAliveInterval', 'ServerAliveInterval=5'],
    ['a StorageClass ServerAliveInterval wins', ['ServerAliveInterval=30'], [], 'ServerAliveInterval', 'ServerAliveInterval=30'],
    ['a backend ServerAliveInterval wins', [], ['ServerAliveInterval=60'], 'ServerAliveInterval', 'ServerAliveInterval=60'],
    ['a comma-joined flag wins', ['noatime,ConnectTimeout=3'], [], 'ConnectTimeout', 'ConnectTimeout=3'],
    ['a user ServerAliveCountMax wins', [], ['ServerAliveCountMax=9'], 'ServerAliveCountMax', 'ServerAliveCountMax=9'],
    ['a user Ciphers wins over the default one', ['Ciphers=chacha20-poly1305@openssh.com'], [], 'Ciphers', 'Ciphers=chacha20-poly1305@openssh.com'],
    ['nothing set: curve25519 key exchange first', [], [], 'KexAlgorithms', 'KexAlgorithms=^curve25519-sha256'],
    ['a user KexAlgorithms wins over the default one', [], ['KexAlgorithms=^sntrup761x25519-sha512@openssh.com'], 'KexAlgorithms', 'KexAlgorithms=^sntrup761x25519-sha512@openssh.com'],
  ])('%s (%j, %j): %s appears once, as %s', (_, flags, mountOptions, key, expected) => {
    const options = optionsOf(backend({ mountOptions }).mountSpec('pvc-1', request({ flags })).args(TARGET, SECRET_DIR));
    expect(valuesOf(options, key)).toEqual([expected]);
  });

  test('user options come first, then tether defaults, then identity and trust', () => {
    const options = optionsOf(backend({ mountOptions: ['cache=no'] }).mountSpec('pvc-1', request({ flags: ['noatime'] })).args(TARGET, SECRET_DIR));
    // the StorageClass flags, then the backend's mountOptions
    expect(options.slice(0, 2)).toEqual(['noatime', 'cache=no']);
    // tether's defaults in the middle
    const defaults = options.slice(2, -6);
    expect(defaults).toEqual(expect.arrayContaining(['reconnect', 'ServerAliveInterval=5', 'ServerAliveCountMax=3', 'ConnectTimeout=10']));
    // identity and host-key trust last
    expect(options.slice(-6)).toEqual([
      `IdentityFile=${SECRET_DIR}/id`,
      'IdentitiesOnly=yes',
      `UserKnownHostsFile=${SECRET_DIR}/known_hosts`,
      'StrictHostKeyChecking=yes',
      'BatchMode=yes',
      'allow_other',
    ]);
  });

  test('no option key appears twice when nothing is set', () => {
    const options = optionsOf(backend().mountSpec('pvc-1', request()).args(TARGET, SECRET_DIR));
    expect(new Set(options.map(keyOf)).size).toBe(options.length);
  });

  test.each<[string[], string[]]>([
    [['reconnect'], []],
    [[], ['reconnect']],
  ])('a user reconnect (flags %j, backend %j) is not duplicated by the defaults', (flags, mountOptions) => {
    const options = optionsOf(backend({ mountOptions }).mountSpec('pvc-1', request({ flags })).args(TARGET, SECRET_DIR));
    expect(valuesOf(options, 'reconnect')).toEqual(['reconnect']);
    expect(options[0]).toBe('reconnect');
  });

  test.each<[string, MountRequest, string[], number]>([
    ['readonly adds ro', request({ readonly: true }), [], 1],
    ['not readonly: no ro', request(), [], 0],
    ['readonly with a user ro: one ro', request({ readonly: true, flags: ['ro'] }), [], 1],
    ['readonly with a backend ro: one ro', request({ readonly: true }), ['ro'], 1],
  ])('%s', (_, req, mountOptions, count) => {
    const options = optionsOf(backend({ mountOptions }).mountSpec('pvc-1', req).args(TARGET, SECRET_DIR));
    expect(valuesOf(options, 'ro')).toHaveLength(count);
  });

  // FUSE takes the last of `ro` and `rw`: a read-only mount must carry no `rw` at all, from anyone.
  test.each<[string, string[], string[]]>([
    ['a StorageClass rw', ['rw'], []],
    ['a backend rw', [], ['rw']],
    ['a StorageClass ro and a backend rw', ['ro'], ['rw']],
    ['a backend ro then rw', [], ['ro', 'rw']],
    ['rw inside a comma-joined option', ['noatime,rw'], ['cache=no,rw']],
  ])('readonly: ro, once, and no rw whatever the options say (%s)', (_, flags, mountOptions) => {
    const options = optionsOf(backend({ mountOptions }).mountSpec('pvc-1', request({ readonly: true, flags })).args(TARGET, SECRET_DIR));
    expect(valuesOf(options, 'ro')).toEqual(['ro']);
    expect(valuesOf(options, 'rw')).toEqual([]);
  });

  test.each<[string, MountRequest, string[], string[]]>([
    ['a group adds gid=N', request({ group: 2000 }), [], ['gid=2000']],
    ['group 0 still adds gid=0', request({ group: 0 }), [], ['gid=0']],
    ['no group: no gid', request(), [], []],
    ['a user gid is kept, not doubled', request({ group: 2000 }), ['gid=3000'], ['gid=3000']],
  ])('%s', (_, req, mountOptions, gids) => {
    const options = optionsOf(backend({ mountOptions }).mountSpec('pvc-1', req).args(TARGET, SECRET_DIR));
    expect(valuesOf(options, 'gid')).toEqual(gids);
  });

  test.each<[string]>([['/run/tether/secrets/abc'], ['/tmp/x y']])('identity and known_hosts point into the secret dir %s', (secretDir) => {
    const options = optionsOf(backend().mountSpec('pvc-1', request()).args(TARGET, secretDir));
    expect(valuesOf(options, 'IdentityFile')).toEqual([`IdentityFile=${secretDir}/id`]);
    expect(valuesOf(options, 'UserKnownHostsFile')).toEqual([`UserKnownHostsFile=${secretDir}/known_hosts`]);
  });

  test.each<[string, string[], boolean]>([
    ['defaults', [], false],
    ['with user options', ['noatime', 'Compression=yes'], false],
    ['readonly', [], true],
  ])('StrictHostKeyChecking=yes, IdentitiesOnly=yes and BatchMode=yes always (%s)', (_, flags, readonly) => {
    const options = optionsOf(backend().mountSpec('pvc-1', request({ flags, readonly })).args(TARGET, SECRET_DIR));
    expect(valuesOf(options, 'StrictHostKeyChecking')).toEqual(['StrictHostKeyChecking=yes']);
    expect(valuesOf(options, 'IdentitiesOnly')).toEqual(['IdentitiesOnly=yes']);
    expect(valuesOf(options, 'BatchMode')).toEqual(['BatchMode=yes']);
  });

  test.each<[string, number, string]>([
    ['10.0.0.5', 22, `10.0.0.5 ${HOST_KEY}\n`],
    ['10.0.0.5', 2222, `[10.0.0.5]:2222 ${HOST_KEY}\n`],
    ['nas.example.com', 22, `nas.example.com ${HOST_KEY}\n`],
    ['nas.example.com', 10022, `[nas.example.com]:10022 ${HOST_KEY}\n`],
  ])('known_hosts for %s port %d is %j', (host, port, line) => {
    const spec = backend({ host, port }).mountSpec('pvc-1', request());
    expect(spec.secretFiles.known_hosts).toBe(line);
  });

  test('the private key is handed over as the id secret file', () => {
    expect(backend().mountSpec('pvc-1', request()).secretFiles.id).toBe(PRIVATE_KEY);
  });
});
