// src/config.ts: parseConfigText, the YAML config file; every problem is one line naming the field.
import type { BackendConfig } from '../../src/backends/config.js';
import { parseConfigText } from '../../src/config.js';
import { configError } from './config-error.js';

/** The backend as an sshfs one (the config is a union of backend types). */
function sshfs(b: BackendConfig): Extract<BackendConfig, { type: 'sshfs' }> {
  if (b.type !== 'sshfs') throw new Error(`expected an sshfs backend, got ${b.type}`);
  return b;
}

const HOST_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl';

const BACKEND = `  - name: box
    type: sshfs
    host: 10.0.0.5
    user: csi
    path: /srv/volumes
    hostKey: ${HOST_KEY}
    privateKeyFile: /etc/tether/id
`;
const VALID = `backends:\n${BACKEND}`;

describe('parseConfigText', () => {
  test('a minimal config gets the defaults', () => {
    expect(parseConfigText(VALID)).toEqual({
      runtimeDir: '/run/tether',
      maxVolumesPerNode: 0,
      releaseIdleAfterSeconds: 30,
      lease: { termSeconds: 20, renewSeconds: 4, fenceMarginSeconds: 5 },
      dockerStrayMountSeconds: 60,
      backends: [
        { name: 'box', type: 'sshfs', host: '10.0.0.5', port: 22, user: 'csi', path: '/srv/volumes', hostKey: HOST_KEY, privateKeyFile: '/etc/tether/id', mountOptions: [], sftpSessions: 4 },
      ],
    });
  });

  test.each([
    ['a term under 2 s', 'termSeconds: 1', /lease: the lease term must be at least 2 s/],
    ['a margin over half the term', 'termSeconds: 8\n  fenceMarginSeconds: 5', /lease: the fence margin \(5000 ms\) must be at most half the lease term/],
    ['a renew interval that does not fit twice before the fence', 'renewSeconds: 8', /lease: the renew interval \(8000 ms\) must fit twice/],
    ['a margin under 1 s', 'fenceMarginSeconds: 0.5', /lease: the fence margin must be at least 1 s/],
    ['an unknown lease key', 'ttl: 5', /lease: Unrecognized key/],
    ['a negative term', 'termSeconds: -3', /lease.termSeconds: /],
  ])('lease terms: %s is refused, naming the field', (_, lease, message) => {
    expect(() => parseConfigText(`${VALID}lease:\n  ${lease}\n`)).toThrow(message);
  });

  test('lease terms that fit each other are kept (short terms for tests)', () => {
    expect(parseConfigText(`${VALID}lease:\n  termSeconds: 6\n  renewSeconds: 1\n  fenceMarginSeconds: 2\n`).lease).toEqual({ termSeconds: 6, renewSeconds: 1, fenceMarginSeconds: 2 });
  });

  test('a full config keeps every value', () => {
    const text = `driverName: tether.example.org
runtimeDir: /run/t
maxVolumesPerNode: 20
backends:
${BACKEND}    port: 2222
    mountOptions: [reconnect, "ServerAliveInterval=30"]
${BACKEND.replace('name: box', 'name: nas-2')}`;
    const cfg = parseConfigText(text);
    expect(cfg).toMatchObject({ driverName: 'tether.example.org', runtimeDir: '/run/t', maxVolumesPerNode: 20 });
    expect(cfg.backends.map((b) => [b.name, sshfs(b).port, b.mountOptions])).toEqual([
      ['box', 2222, ['reconnect', 'ServerAliveInterval=30']],
      ['nas-2', 22, []],
    ]);
  });

  test.each<[string, string, string]>([
    ['a trailing comment on hostKey is dropped', `hostKey: ${HOST_KEY} root@nas`, HOST_KEY],
    ['surrounding spaces on hostKey are dropped', `hostKey: "  ${HOST_KEY}  "`, HOST_KEY],
  ])('%s', (_, line, hostKey) => {
    expect(sshfs(parseConfigText(VALID.replace(`hostKey: ${HOST_KEY}`, line)).backends[0]!).hostKey).toBe(hostKey);
  });

  test.each<[string, string]>([
    ['/srv/volumes/', '/srv/volumes'],
    ['/srv/volumes//', '/srv/volumes'],
    ['/', '/'],
  ])('path %s is kept as %s', (path, kept) => {
    expect(sshfs(parseConfigText(VALID.replace('path: /srv/volumes', `path: ${path}`)).backends[0]!).path).toBe(kept);
  });

  test.each<[string, string, RegExp]>([
    ['missing hostKey', VALID.replace(/ {4}hostKey:.*\n/, ''), /backends\.0\.hostKey/],
    ['hostKey of an unknown type', VALID.replace('hostKey: ssh-ed25519', 'hostKey: ssh-foo'), /backends\.0\.hostKey: .*ssh-keyscan/],
    ['hostKey without the key type', VALID.replace(`hostKey: ${HOST_KEY}`, 'hostKey: AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5'), /backends\.0\.hostKey/],
    ['hostKey that is a fingerprint', VALID.replace(`hostKey: ${HOST_KEY}`, 'hostKey: "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"'), /backends\.0\.hostKey/],
    ['duplicate backend names', `backends:\n${BACKEND}${BACKEND}`, /backends\.1\.name: duplicate backend name "box"/],
    ['an unknown top-level key', `logLevel: debug\n${VALID}`, /\(top level\): .*logLevel/],
    ['an uppercase backend name', VALID.replace('name: box', 'name: Box'), /backends\.0\.name/],
    ['a backend name with a slash', VALID.replace('name: box', 'name: a/b'), /backends\.0\.name/],
    ['a backend name ending in a dash', VALID.replace('name: box', 'name: box-'), /backends\.0\.name/],
    ['a backend name of 33 characters', VALID.replace('name: box', `name: ${'b'.repeat(33)}`), /backends\.0\.name/],
    ['mount option ProxyCommand', `${VALID}    mountOptions: ["ProxyCommand=nc evil 22"]\n`, /backends\.0\.mountOptions: .*ProxyCommand/],
    ['a comma-joined bad mount option', `${VALID}    mountOptions: ["reconnect,IdentityFile=/root/.ssh/id"]\n`, /backends\.0\.mountOptions: .*IdentityFile/],
    ['not YAML', 'backends: [\n  - name: box', /not valid YAML/],
    ['YAML that is a list', '- a\n- b\n', /\(top level\)/],
    ['an empty file', '', /\(top level\)/],
    ['no backends', 'backends: []\n', /backends: at least one backend/],
    ['an unknown backend type', VALID.replace('type: sshfs', 'type: smb'), /backends\.0\.type/],
    ['a relative path', VALID.replace('path: /srv/volumes', 'path: srv/volumes'), /backends\.0\.path/],
    ['a port out of range', `${VALID}    port: 70000\n`, /backends\.0\.port/],
    ['a port as a string', `${VALID}    port: "22"\n`, /backends\.0\.port/],
    ['a user name with a space', VALID.replace('user: csi', 'user: "c si"'), /backends\.0\.user/],
    ['a relative runtimeDir', `runtimeDir: run/tether\n${VALID}`, /runtimeDir/],
    ['a negative maxVolumesPerNode', `maxVolumesPerNode: -1\n${VALID}`, /maxVolumesPerNode/],
    ['a driver name ending in a digit', `driverName: tether.csi.v1\n${VALID}`, /driverName/],
  ])('%s → one line naming the field', (_, text, expected) => {
    expect(configError(text)).toMatch(expected);
  });

  test.each<[string, string]>([
    ['a misspelt mountOptions', `${VALID}    mountoptions: ["ProxyCommand=x"]\n`],
    ['a misspelt port', `${VALID}    Port: 2222\n`],
  ])('%s inside a backend → an error naming it', (_, text) => {
    expect(configError(text)).toMatch(/backends\.0/);
  });

  const NFS = `backends:
  - name: nas
    type: nfs
    server: 10.0.0.9
    share: /export/volumes/
    mountOptions: [nfsvers=4.1, "hard", nconnect=4]
`;

  test('an nfs backend parses, its share without a trailing slash', () => {
    expect(parseConfigText(NFS).backends[0]).toEqual({ name: 'nas', type: 'nfs', server: '10.0.0.9', share: '/export/volumes', mountOptions: ['nfsvers=4.1', 'hard', 'nconnect=4'] });
  });

  test.each<[string, string, RegExp]>([
    ['an NFS option outside the allowlist', NFS.replace('nconnect=4', 'fsc'), /backends\.0\.mountOptions.*"fsc"/],
    ['Kerberos security', NFS.replace('nconnect=4', 'sec=krb5'), /backends\.0\.mountOptions.*sec/],
    ['a relative share', NFS.replace('share: /export/volumes/', 'share: export'), /backends\.0\.share/],
    ['no server', NFS.replace('    server: 10.0.0.9\n', ''), /backends\.0\.server/],
    ['an sshfs key on an nfs backend', NFS.replace('    server:', '    hostKey: x\n    server:'), /backends\.0/],
  ])('%s → one line naming the field', (_, text, expected) => {
    expect(configError(text)).toMatch(expected);
  });
});

describe('sftpSessions', () => {
  test.each([
    ['0', 'sftpSessions: 0', /sftpSessions/],
    ['17', 'sftpSessions: 17', /sftpSessions/],
    ['a fraction', 'sftpSessions: 1.5', /sftpSessions/],
  ])('%s is refused, naming the field', (_, line, message) => {
    expect(() => parseConfigText(`${VALID}    ${line}\n`)).toThrow(message);
  });

  test('1 to 16 is kept', () => {
    expect(parseConfigText(`${VALID}    sftpSessions: 16\n`).backends[0]).toMatchObject({ sftpSessions: 16 });
  });
});
