// src/backends/options.ts: the one allowlist checker, with the sshfs/ssh (sshfs-options.ts) and NFS
// (nfs-options.ts) allowlists of the options users may set.
import { NFS_OPTIONS, requestedVersion } from '../../src/backends/nfs-options.js';
import { checkOptions, splitOptions } from '../../src/backends/options.js';
import { SSHFS_OPTIONS } from '../../src/backends/sshfs-options.js';
import { configError } from './config-error.js';
import { codeName, csiError } from './csi-error.js';

const checkSshfsOptions = (options: string[]) => checkOptions(SSHFS_OPTIONS, options);
const checkNfsOptions = (options: string[]) => checkOptions(NFS_OPTIONS, options);

describe('splitOptions', () => {
  test.each<[string[], string[]]>([
    [[], []],
    [['reconnect'], ['reconnect']],
    [['reconnect,noatime', 'ro'], ['reconnect', 'noatime', 'ro']],
    [[' reconnect , noatime ', ',,'], ['reconnect', 'noatime']],
    [['uid=1000,gid=1000'], ['uid=1000', 'gid=1000']],
  ])('%j → %j', (options, split) => {
    expect(splitOptions(options)).toEqual(split);
  });
});

describe('checkSshfsOptions', () => {
  test.each<[string[]]>([
    [[]],
    [['reconnect']],
    [['ro']],
    [['rw']],
    [['noatime', 'nodiratime', 'relatime']],
    [['noexec,nosuid,nodev']],
    [['kernel_cache', 'auto_cache', 'noauto_cache', 'direct_io', 'transform_symlinks']],
    [['no_readahead', 'sync_readdir', 'disable_hardlink', 'delay_connect']],
    [['ServerAliveInterval=15', 'ServerAliveCountMax=3', 'ConnectTimeout=10']],
    [['ServerAliveInterval=0']],
    [['ServerAliveInterval=3600']],
    [['Ciphers=aes128-gcm@openssh.com']],
    [['Ciphers=chacha20-poly1305@openssh.com']],
    [['Ciphers=aes256-gcm@openssh.com']],
    [['Ciphers=^aes128-gcm@openssh.com']],
    [['Ciphers=+aes256-ctr']],
    [['Ciphers=-chacha20-poly1305@openssh.com']],
    [['KexAlgorithms=^mlkem768x25519-sha256']],
    [['KexAlgorithms=curve25519-sha256']],
    [['KexAlgorithms=sntrup761x25519-sha512@openssh.com']],
    [['KexAlgorithms=curve25519-sha256@libssh.org']],
    [['Compression=yes']],
    [['Compression=no']],
    [['max_read=65536', 'max_write=1048576', 'max_conns=4']],
    [['cache=yes', 'cache_timeout=20', 'dir_cache=no', 'dcache_timeout=60']],
    [['idmap=user', 'uid=1000', 'gid=1000', 'umask=0022']],
    [['umask=077']],
    [['umask=7']],
    [['workaround=rename']],
    [['workaround=rename:truncate:buflimit']],
    [[' reconnect ', 'noatime,,']],
  ])('accepts %j', (options) => {
    expect(() => checkSshfsOptions(options)).not.toThrow();
  });

  test.each<[string, string[], string]>([
    // options that run programs
    ['ssh_command', ['ssh_command=/bin/sh -c id'], 'ssh_command'],
    ['ssh_command without a value', ['ssh_command'], 'ssh_command'],
    ['ProxyCommand', ['ProxyCommand=nc evil 22'], 'ProxyCommand'],
    ['ProxyCommand in another case', ['proxycommand=nc evil 22'], 'proxycommand'],
    ['ProxyJump', ['ProxyJump=evil'], 'ProxyJump'],
    ['LocalCommand', ['LocalCommand=touch /tmp/x'], 'LocalCommand'],
    ['PermitLocalCommand', ['PermitLocalCommand=yes'], 'PermitLocalCommand'],
    ['sftp_server', ['sftp_server=/usr/bin/evil'], 'sftp_server'],
    ['directport', ['directport=2222'], 'directport'],
    ['passive', ['passive'], 'passive'],
    ['slave', ['slave'], 'slave'],
    ['password_stdin', ['password_stdin'], 'password_stdin'],
    ['ssh_protocol', ['ssh_protocol=1'], 'ssh_protocol'],
    ['ssh_protocol as a flag', ['ssh_protocol'], 'ssh_protocol'],
    // options that carry identity and host-key trust (tether's own)
    ['IdentityFile', ['IdentityFile=/root/.ssh/id_rsa'], 'IdentityFile'],
    ['UserKnownHostsFile', ['UserKnownHostsFile=/dev/null'], 'UserKnownHostsFile'],
    ['StrictHostKeyChecking=no', ['StrictHostKeyChecking=no'], 'StrictHostKeyChecking'],
    ['StrictHostKeyChecking=yes (still tether\'s)', ['StrictHostKeyChecking=yes'], 'StrictHostKeyChecking'],
    ['allow_other', ['allow_other'], 'allow_other'],
    // one bad item in a comma-joined list, or in a later array element
    ['a bad item after a good one', ['reconnect,ProxyCommand=x'], 'ProxyCommand'],
    ['a bad item before a good one', ['IdentityFile=/k,reconnect'], 'IdentityFile'],
    ['a bad array element after good ones', ['reconnect', 'noatime', 'LocalCommand=x'], 'LocalCommand'],
    ['an ssh -o smuggled in an item', ['reconnect -o ProxyCommand=x'], 'reconnect -o ProxyCommand=x'],
    // allowed keys with values outside their rule
    ['Ciphers=none', ['Ciphers=none'], 'none'],
    ['a weak cipher', ['Ciphers=aes128-cbc'], 'aes128-cbc'],
    // the comma separates mount options (sshfs splits -o on it too), so a second cipher is an option of its own
    ['Ciphers with a second, comma-separated cipher', ['Ciphers=aes128-ctr,aes256-ctr'], 'aes256-ctr'],
    ['a cipher matching only if "." were a regex wildcard', ['Ciphers=aes128-gcm@opensshXcom'], 'aes128-gcm@opensshXcom'],
    ['a weak cipher behind a + prefix', ['Ciphers=+aes128-cbc'], '+aes128-cbc'],
    ['two prefixes', ['Ciphers=^^aes128-ctr'], '^^aes128-ctr'],
    ['a prefix alone', ['Ciphers=^'], 'Ciphers=^'],
    ['a weak kex', ['KexAlgorithms=diffie-hellman-group1-sha1'], 'diffie-hellman-group1-sha1'],
    ['ServerAliveInterval=-1', ['ServerAliveInterval=-1'], '-1'],
    ['ServerAliveInterval too large', ['ServerAliveInterval=3601'], '3601'],
    ['ServerAliveInterval empty', ['ServerAliveInterval='], 'ServerAliveInterval'],
    ['ServerAliveInterval as a flag', ['ServerAliveInterval'], 'ServerAliveInterval'],
    ['ServerAliveCountMax not a number', ['ServerAliveCountMax=3x'], '3x'],
    ['ConnectTimeout in hex', ['ConnectTimeout=0x10'], '0x10'],
    ['umask=999', ['umask=999'], '999'],
    ['umask too long', ['umask=00022'], '00022'],
    ['Compression=maybe', ['Compression=maybe'], 'maybe'],
    ['max_conns above 16', ['max_conns=17'], '17'],
    ['idmap=file (reads a map file)', ['idmap=file'], 'file'],
    ['uid negative', ['uid=-1'], '-1'],
    ['workaround unknown', ['workaround=rename:evil'], 'rename:evil'],
    ['a flag given a value', ['reconnect=yes'], 'reconnect'],
    ['ro given a value', ['ro=1'], 'ro'],
    ['an empty key', ['=x'], '=x'],
  ])('refuses %s with INVALID_ARGUMENT', (_, options, named) => {
    const err = csiError(() => checkSshfsOptions(options));
    expect(codeName(err)).toBe('INVALID_ARGUMENT');
    expect(err.message).toContain(named);
  });

  test.each<[string]>([['constructor=x'], ['__proto__=x'], ['toString=1']])('refuses %s with INVALID_ARGUMENT', (option) => {
    expect(codeName(csiError(() => checkSshfsOptions([option])))).toBe('INVALID_ARGUMENT');
  });
});

describe('follow_symlinks: the server would resolve the workload\'s symlinks', () => {
  const WHY = /"follow_symlinks" is refused: it makes the SSH server resolve the workload's symlinks, so a pod could reach other volumes, tether's records and any file/;

  test.each<[string, string[]]>([
    ['alone (a StorageClass mount flag)', ['follow_symlinks']],
    ['after a good option in one item', ['reconnect,follow_symlinks']],
    ['before a good option in one item', ['follow_symlinks,noatime']],
    ['as a later array element', ['noatime', 'follow_symlinks']],
    ['with a value', ['follow_symlinks=yes']],
    ['beside transform_symlinks', ['transform_symlinks', 'follow_symlinks']],
  ])('%s → INVALID_ARGUMENT saying why', (_, options) => {
    const err = csiError(() => checkSshfsOptions(options));
    expect(codeName(err)).toBe('INVALID_ARGUMENT');
    expect(err.message).toMatch(WHY);
  });

  test('it is not among the allowed options the message lists', () => {
    const listed = csiError(() => checkSshfsOptions(['follow_symlinks'])).message.split('allowed: ')[1]!.split(' ');
    expect(listed).toContain('transform_symlinks');
    expect(listed).not.toContain('follow_symlinks');
  });

  test.each<[string]>([['[follow_symlinks]'], ['["reconnect,follow_symlinks"]']])('backend mountOptions: %s → a config error naming the field and saying why', (options) => {
    const text = `backends:
  - name: box
    type: sshfs
    host: 10.0.0.5
    user: csi
    path: /srv/volumes
    hostKey: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl
    privateKeyFile: /etc/tether/id
    mountOptions: ${options}
`;
    const message = configError(text);
    expect(message).toMatch(/^tether\.yaml: backends\.0\.mountOptions: mount option "follow_symlinks": /);
    expect(message).toMatch(WHY);
  });
});

describe('NFS options', () => {
  test.each<[string[]]>([
    [[]],
    [['hard', 'soft', 'noac', 'nolock', 'ro', 'rw', 'sync', 'noatime,nosuid,nodev']],
    [['vers=4.2']],
    [['nfsvers=3', 'proto=tcp', 'mountproto=udp', 'port=2049', 'mountport=20048']],
    [['rsize=1048576', 'wsize=65536', 'timeo=600', 'retrans=2', 'retry=0', 'nconnect=16']],
    [['actimeo=0', 'acregmin=3', 'acregmax=60', 'acdirmin=30', 'acdirmax=60', 'lookupcache=positive', 'local_lock=none']],
    [['sec=sys', 'namlen=255', 'minorversion=1']],
  ])('accepts %j', (options) => {
    expect(() => checkNfsOptions(options)).not.toThrow();
  });

  test.each<[string, string[], RegExp]>([
    ['fsc (node-wide caching)', ['fsc'], /"fsc" is not on the allowlist/],
    ['context= (SELinux label)', ['context=system_u:object_r:nfs_t:s0'], /"context" is not on the allowlist/],
    ['clientaddr=', ['clientaddr=10.0.0.1'], /"clientaddr" is not on the allowlist/],
    ['sec=krb5', ['sec=krb5'], /the value "krb5" is not allowed for sec/],
    ['an NFS version that does not exist', ['vers=5'], /the value "5" is not allowed for vers/],
    ['a flag given a value', ['hard=1'], /"hard" is not on the allowlist/],
    ['a valued option given none', ['rsize'], /the value "" is not allowed for rsize/],
    ['a number out of range', ['nconnect=17'], /nconnect/],
    ['an sshfs option', ['reconnect'], /"reconnect" is not on the allowlist/],
    ['a prototype key', ['constructor=1'], /"constructor" is not on the allowlist/],
  ])('%s → INVALID_ARGUMENT, as an NFS mount option, listing what is allowed', (_, options, message) => {
    const err = csiError(() => checkNfsOptions(options));
    expect(codeName(err)).toBe('INVALID_ARGUMENT');
    expect(err.message).toMatch(/^NFS mount option "/);
    expect(err.message).toMatch(message);
    expect(err.message).toContain('allowed: soft hard');
  });

  test.each<[string[], string | undefined]>([
    [[], undefined],
    [['hard', 'vers=4.1'], '4.1'],
    [['nfsvers=3,hard'], '3'],
  ])('requestedVersion(%j) is %j', (options, version) => {
    expect(requestedVersion(options)).toBe(version);
  });
});
