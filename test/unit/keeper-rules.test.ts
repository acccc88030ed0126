// src/keeper/rules.ts: what the mount keeper accepts from its socket before it looks at anything.
import { checkFlags, checkTargetShape, isUnderRoot, parseGroup, sameOrder, volumeOfSource } from '../../src/keeper/rules.js';
import { daemonsOf } from '../../src/mounts/daemon.js';
import type { ProcessInfo } from '../../src/mounts/connections.js';
import { codeName, csiError } from './csi-error.js';

describe('checkTargetShape', () => {
  test.each([['/var/lib/kubelet/plugins/x/globalmount'], ['/a'], ['/with space/ünïcode']])('accepts %s', (target) => {
    expect(() => checkTargetShape(target)).not.toThrow();
  });

  test.each<[string, string, RegExp]>([
    ['empty', '', /target is required/],
    ['relative', 'var/lib/kubelet', /must be an absolute path/],
    ['dot-relative', './x', /must be an absolute path/],
    ['a ".." component', '/var/lib/kubelet/../../etc', /must not hold a "\.\." component/],
    ['a trailing ".."', '/var/lib/kubelet/..', /must not hold a "\.\." component/],
    ['a NUL', '/var/lib/kubelet/a\0b', /control character/],
    ['a newline', '/var/lib/kubelet/a\nb', /control character/],
    ['longer than PATH_MAX', `/${'a'.repeat(4096)}`, /at most 4096/],
  ])('refuses %s: INVALID_ARGUMENT', (_, target, message) => {
    const err = csiError(() => checkTargetShape(target));
    expect(codeName(err)).toBe('INVALID_ARGUMENT');
    expect(err.message).toMatch(message);
  });

  test('"..." and "..x" are names, not climbs', () => {
    expect(() => checkTargetShape('/var/lib/kubelet/.../..x')).not.toThrow();
  });
});

describe('isUnderRoot', () => {
  const roots = ['/var/lib/kubelet', '/data/k8s/'];
  test.each<[string, boolean]>([
    ['/var/lib/kubelet/plugins/x', true],
    ['/var/lib/kubelet/a', true],
    ['/data/k8s/pods/p/mount', true],
    ['/var/lib/kubelet', false], // the root itself is never a target
    ['/data/k8s', false],
    ['/data/k8s/', false],
    ['/var/lib/kubelet-evil/x', false], // a sibling that only starts like it
    ['/var/lib/kubeletx', false],
    ['/var/lib', false],
    ['/', false],
    ['/etc/shadow', false],
  ])('%s → %s', (target, under) => {
    expect(isUnderRoot(target, roots)).toBe(under);
  });

  test('no roots: nothing is allowed', () => {
    expect(isUnderRoot('/var/lib/kubelet/x', [])).toBe(false);
  });
});

describe('parseGroup', () => {
  test.each<[string, number | undefined]>([
    ['', undefined],
    ['0', 0],
    ['2000', 2000],
    ['2147483648', 2 ** 31],
  ])('%j → %j', (group, expected) => {
    expect(parseGroup(group)).toBe(expected);
  });

  test.each([['wheel'], ['-1'], ['1e3'], ['2147483649'], ['12345678901'], [' 1']])('refuses %j: INVALID_ARGUMENT', (group) => {
    expect(codeName(csiError(() => parseGroup(group)))).toBe('INVALID_ARGUMENT');
  });
});

describe('checkFlags', () => {
  test('4 KiB of flags in all, as CSI allows', () => {
    expect(() => checkFlags(['a'.repeat(4000), 'b'.repeat(96)])).not.toThrow();
    expect(codeName(csiError(() => checkFlags(['a'.repeat(4000), 'b'.repeat(97)])))).toBe('INVALID_ARGUMENT');
  });
});

describe('volumeOfSource', () => {
  const bases = [
    { backend: 'box', base: 'tether@storage:/srv/volumes' },
    { backend: 'v6', base: 'tether@[fd00::1]:/srv' },
  ];
  test.each<[string, string | undefined]>([
    ['tether@storage:/srv/volumes/pvc-1', 'box/pvc-1'],
    ['tether@[fd00::1]:/srv/pvc-2', 'v6/pvc-2'],
    ['tether@storage:/srv/volumes/.snapshots', undefined], // not a volume directory tether makes
    ['tether@storage:/srv/volumes/pvc-1/data', undefined], // a subdirectory (a bind shows as source[/data])
    ['tether@storage:/srv/volumes', undefined],
    ['tether@storage:/srv/volumes-other/pvc-1', undefined],
    ['other@storage:/srv/volumes/pvc-1', undefined],
    ['nfs.example.com:/export/pvc-1', undefined],
  ])('%s → %s', (source, id) => {
    expect(volumeOfSource(source, bases)).toBe(id);
  });
});

describe('sameOrder', () => {
  const held = { volumeId: 'box/pvc-1', target: '/k/t', source: 's', flags: ['noatime', 'cache=no'], readonly: false, group: 2000 };
  test.each<[string, Partial<typeof held>, boolean]>([
    ['the same', {}, true],
    ['flags in another order', { flags: ['cache=no', 'noatime'] }, true],
    ['another volume', { volumeId: 'box/pvc-2' }, false],
    ['read-only', { readonly: true }, false],
    ['another group', { group: 3000 }, false],
    ['no group', { group: undefined }, false],
    ['a flag less', { flags: ['noatime'] }, false],
  ])('%s → %s', (_, change, same) => {
    const { volumeId, flags, readonly, group } = { ...held, ...change };
    expect(sameOrder(held, { volumeId, flags, readonly, group })).toBe(same);
  });
});

describe('daemonsOf: the sshfs process serving a mount', () => {
  const proc = (pid: number, argv: string[], state = 'S'): ProcessInfo => ({ pid, ppid: 1, state, argv });
  const dir = '/run/tether/keeper/mounts/abc';
  const procs = [
    proc(10, ['sshfs', 'u@h:/v/pvc-1', '/k/staging-1', '-o', `IdentityFile=${dir}/id,reconnect`]),
    proc(11, ['ssh', '-oIdentityFile=' + dir + '/id', 'h']), // its ssh: not the daemon
    proc(12, ['/usr/bin/sshfs', 'u@h:/v/pvc-2', '/k/staging-2', '-o', 'IdentityFile=/run/tether/mounts/xyz/id']),
    proc(13, ['sshfs', 'u@h:/v/pvc-3', '/k/staging-3'], 'Z'), // a zombie is dead
    proc(14, ['bash', '-c', 'echo /k/staging-4']),
  ];
  test('by its private directory; else by the mount point in its command line; 0 for none', () => {
    const found = daemonsOf(procs, [
      { target: '/k/staging-1', dir },
      { target: '/k/staging-2', dir: '/run/tether/keeper/mounts/other' },
      { target: '/k/staging-3', dir: '/x' },
      { target: '/k/staging-4', dir: '/y' },
    ]);
    expect(Object.fromEntries(found)).toEqual({ '/k/staging-1': 10, '/k/staging-2': 12, '/k/staging-3': 0, '/k/staging-4': 0 });
  });
});
