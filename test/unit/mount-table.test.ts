// src/mounts/mount-table.ts: /proc/self/mountinfo, read as `findmnt --list --output TARGET,SOURCE,FSTYPE,OPTIONS,MAJ:MIN` shows it.
import { execa } from 'execa';
import { bindsOf, entryOf, sharingFilesystem, isReadOnly, mergeOptions, mountAt, parseMountInfo, readMountInfo, readMountTable, sourceMatches, type MountEntry } from '../../src/mounts/mount-table.js';

const STAGING = '/var/lib/kubelet/plugins/kubernetes.io/csi/tether.csi.dev/0f3c/globalmount';
const POD_A = '/var/lib/kubelet/pods/1111-aaaa/volumes/kubernetes.io~csi/pvc-1/mount';
const POD_B = '/var/lib/kubelet/pods/2222-bbbb/volumes/kubernetes.io~csi/pvc-1/mount';
const NFS_STAGING = '/var/lib/kubelet/plugins/kubernetes.io/csi/tether.csi.dev/77aa/globalmount';
const NFS_POD = '/var/lib/kubelet/pods/3333-cccc/volumes/kubernetes.io~csi/pvc-2/mount';
const NFS_OTHER = '/var/lib/kubelet/plugins/kubernetes.io/csi/tether.csi.dev/88bb/globalmount';

/**
 * /proc/self/mountinfo with a staged sshfs volume, two bind mounts of it (one of a subdirectory), stacked
 * mounts, an empty source and NFS volumes of one server (one superblock, one device).
 */
const MOUNTINFO = [
  '1 0 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro',
  '22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw',
  '30 1 8:1 /var/lib/kubelet /var/lib/kubelet rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro',
  `50 30 0:52 / ${STAGING} rw,nosuid,nodev,relatime shared:40 - fuse.sshfs root@127.0.0.1:/srv/x rw,user_id=0,group_id=0,allow_other`,
  `51 30 0:52 / ${POD_A} ro,nosuid,nodev,relatime shared:40 - fuse.sshfs root@127.0.0.1:/srv/x rw,user_id=0,group_id=0,allow_other`,
  `52 30 0:52 /data ${POD_B} rw,nosuid,nodev,relatime shared:40 - fuse.sshfs root@127.0.0.1:/srv/x rw,user_id=0,group_id=0,allow_other`,
  '60 1 0:60 / /mnt/stacked rw,relatime shared:50 - tmpfs tmpfs rw',
  '61 60 0:61 / /mnt/stacked rw,relatime shared:51 - fuse.sshfs root@127.0.0.1:/srv/y rw,user_id=0,group_id=0',
  '62 1 0:62 / /mnt/odd rw - none  rw',
  `70 30 0:70 / ${NFS_STAGING} rw,relatime shared:60 - nfs4 10.0.0.5:/export/pvc-2 rw,vers=4.2,hard,proto=tcp`,
  `71 30 0:70 / ${NFS_POD} rw,relatime shared:60 - nfs4 10.0.0.5:/export/pvc-2/data rw,vers=4.2,hard,proto=tcp`,
  `72 30 0:70 / ${NFS_OTHER} rw,relatime shared:60 - nfs4 10.0.0.5:/export/pvc-20 rw,vers=4.2,hard,proto=tcp`,
  '',
].join('\n');

const table = parseMountInfo(MOUNTINFO).map(entryOf);

describe('the mount table, as findmnt shows it', () => {
  test('reads every row', () => {
    expect(table).toHaveLength(12);
  });

  test.each<[number, MountEntry]>([
    [3, { target: STAGING, source: 'root@127.0.0.1:/srv/x', fstype: 'fuse.sshfs', options: ['rw', 'nosuid', 'nodev', 'relatime', 'user_id=0', 'group_id=0', 'allow_other'], device: '0:52' }],
    [4, { target: POD_A, source: 'root@127.0.0.1:/srv/x', fstype: 'fuse.sshfs', options: ['ro', 'nosuid', 'nodev', 'relatime', 'user_id=0', 'group_id=0', 'allow_other'], device: '0:52' }],
    [5, { target: POD_B, source: 'root@127.0.0.1:/srv/x[/data]', fstype: 'fuse.sshfs', options: ['rw', 'nosuid', 'nodev', 'relatime', 'user_id=0', 'group_id=0', 'allow_other'], device: '0:52' }],
    [0, { target: '/', source: '/dev/sda1', fstype: 'ext4', options: ['rw', 'relatime', 'errors=remount-ro'], device: '8:1' }],
    [2, { target: '/var/lib/kubelet', source: '/dev/sda1[/var/lib/kubelet]', fstype: 'ext4', options: ['rw', 'relatime', 'errors=remount-ro'], device: '8:1' }],
    [10, { target: NFS_POD, source: '10.0.0.5:/export/pvc-2/data', fstype: 'nfs4', options: ['rw', 'relatime', 'vers=4.2', 'hard', 'proto=tcp'], device: '0:70' }],
  ])('row %d', (index, entry) => {
    expect(table[index]).toEqual(entry);
  });

  test('an empty source stays empty', () => {
    expect(table[8]).toMatchObject({ target: '/mnt/odd', source: '', fstype: 'none', device: '0:62' });
  });

  test('no lines → an empty table', () => {
    expect(parseMountInfo('')).toEqual([]);
  });

  test("this machine's table is what findmnt shows", async () => {
    const findmnt = async () => {
      const { stdout } = await execa('findmnt', ['--list', '--json', '--output', 'TARGET,SOURCE,FSTYPE,OPTIONS,MAJ:MIN'], { timeout: 10_000 });
      const parsed = JSON.parse(stdout) as { filesystems: Record<string, string | null>[] };
      return parsed.filesystems.map((f) => ({ target: f.target ?? '', source: f.source ?? '', fstype: f.fstype ?? '', readonly: (f.options ?? '').split(',').includes('ro'), device: f['maj:min'] ?? '' }));
    };
    const ours = async () => (await readMountTable()).map((m) => ({ target: m.target, source: m.source, fstype: m.fstype, readonly: isReadOnly(m), device: m.device }));
    // Others may mount meanwhile: compared once the table held still around findmnt's read.
    for (let attempt = 1; ; attempt++) {
      const [before, theirs, after] = [await ours(), await findmnt(), await ours()];
      if (JSON.stringify(before) !== JSON.stringify(after) && attempt < 10) continue;
      expect(before).toEqual(theirs);
      return;
    }
  });
});

describe('mergeOptions (libmount)', () => {
  test.each<[string, string, string[]]>([
    ['rw,relatime', 'rw', ['rw', 'relatime']],
    ['ro,nosuid', 'rw,user_id=0', ['ro', 'nosuid', 'user_id=0']],
    ['rw,noatime', 'ro,errors=continue', ['ro', 'noatime', 'errors=continue']],
    ['rw', 'rw', ['rw']],
    ['rw,nosuid', '', ['rw', 'nosuid']],
  ])('%j + %j → %j', (vfs, fs, merged) => {
    expect(mergeOptions(vfs, fs)).toEqual(merged);
  });
});

describe('mountAt', () => {
  test.each<[string, string, string | undefined]>([
    ['the staged mount', STAGING, 'root@127.0.0.1:/srv/x'],
    ['a bind mount', POD_A, 'root@127.0.0.1:/srv/x'],
    ['the topmost of stacked mounts', '/mnt/stacked', 'root@127.0.0.1:/srv/y'],
    ['not a mount point', '/var/lib/kubelet/pods', undefined],
    ['a parent of a mount point', '/mnt', undefined],
    ['a trailing slash is another path', `${STAGING}/`, undefined],
  ])('%s', (_, path, source) => {
    expect(mountAt(table, path)?.source).toBe(source);
  });
});

describe('bindsOf', () => {
  test.each<[string, string, string[]]>([
    ['the pods of the staged sshfs volume', STAGING, [POD_A, POD_B]],
    ['from a pod: the staging mount and the other pod', POD_A, [STAGING, POD_B]],
    ['the root disk and its bind mount', '/', ['/var/lib/kubelet']],
    ['a filesystem nobody else mounts', '/mnt/stacked', []],
    // One NFS server, one superblock: the other volume's staging mount has the same device but is not a bind of this one.
    ['the pod of the staged NFS volume, not the other NFS volume', NFS_STAGING, [NFS_POD]],
    ['the other NFS volume has no pod', NFS_OTHER, []],
  ])('%s', (_, target, binds) => {
    expect(bindsOf(table, mountAt(table, target)!).map((m) => m.target)).toEqual(binds);
  });
});

describe('sharingFilesystem: who an umount --force of a mount would hit', () => {
  test.each<[string, string, string[]]>([
    ['the staged sshfs volume: its pods', STAGING, [POD_A, POD_B]],
    ['a filesystem nobody else mounts', '/mnt/stacked', []],
    // One NFS server, one superblock: forcing one volume off would fail the other volume's requests too.
    ['an NFS volume: its pod and the other volume of that server', NFS_STAGING, [NFS_POD, NFS_OTHER]],
    ['the other NFS volume: the first one and its pod', NFS_OTHER, [NFS_STAGING, NFS_POD]],
  ])('%s', (_, target, others) => {
    expect(sharingFilesystem(table, mountAt(table, target)!).map((m) => m.target).sort()).toEqual([...others].sort());
  });
});

describe('isReadOnly', () => {
  test.each<[string, boolean]>([
    [POD_A, true],
    [POD_B, false],
    ['/', false], // errors=remount-ro is not ro
  ])('%s → %s', (target, ro) => {
    expect(isReadOnly(mountAt(table, target)!)).toBe(ro);
  });
});

describe('sourceMatches', () => {
  test.each<[string, string, boolean]>([
    [STAGING, 'root@127.0.0.1:/srv/x', true],
    [POD_B, 'root@127.0.0.1:/srv/x', true], // bind mount of a subdirectory: source[/data]
    [POD_B, 'root@127.0.0.1:/srv/x[/data]', true],
    [STAGING, 'root@127.0.0.1:/srv/xy', false],
    [STAGING, 'root@127.0.0.1:/srv', false], // a prefix that is not followed by "[" is another directory
    [POD_B, 'root@127.0.0.1:/srv', false],
    [STAGING, 'root@127.0.0.2:/srv/x', false],
    [STAGING, '', false],
    [NFS_STAGING, '10.0.0.5:/export/pvc-2', true],
    [NFS_POD, '10.0.0.5:/export/pvc-2', true], // NFS shows a bind of a subdirectory as server:/path/sub
    [NFS_POD, '10.0.0.5:/export/pvc', false],
    [NFS_STAGING, '10.0.0.5:/export/pvc-2/data', false],
    [NFS_STAGING, '10.0.0.6:/export/pvc-2', false],
  ])('%s against %j → %s', (target, source, matches) => {
    expect(sourceMatches(mountAt(table, target)!, source)).toBe(matches);
  });
});

describe('parseMountInfo', () => {
  const text = [
    '22 27 0:21 / /proc rw,relatime - proc proc rw',
    '61 27 0:52 / /run/tether/controller/nfs rw,relatime shared:30 - nfs4 127.0.0.1:/export rw,vers=4.2',
    '70 27 0:53 / /var/lib/kubelet/plugins/pv\\040with\\040space/globalmount rw,nosuid,nodev,relatime shared:31 - fuse.sshfs root@127.0.0.1:/srv/box/pvc-1 rw,user_id=0',
    '71 27 0:53 /data /var/lib/kubelet/pods/p1/mount rw,nosuid,nodev,relatime shared:31 - fuse.sshfs root@127.0.0.1:/srv/box/pvc-1 rw,user_id=0',
    '72 27 0:54 / /mnt/no\\011tab rw master:1 propagate_from:2 - tmpfs tmpfs rw',
    '73 27 0:55 / /mnt/gone\\040(deleted) rw - tmpfs tmpfs rw',
    '',
  ].join('\n');

  test('reads mount point, root, type, source, device and options of each line; optional fields, escapes and a removed mount point handled', () => {
    expect(parseMountInfo(text)).toEqual([
      { device: '0:21', root: '/', target: '/proc', fstype: 'proc', source: 'proc', options: ['rw', 'relatime'] },
      { device: '0:52', root: '/', target: '/run/tether/controller/nfs', fstype: 'nfs4', source: '127.0.0.1:/export', options: ['rw', 'relatime', 'vers=4.2'] },
      { device: '0:53', root: '/', target: '/var/lib/kubelet/plugins/pv with space/globalmount', fstype: 'fuse.sshfs', source: 'root@127.0.0.1:/srv/box/pvc-1', options: ['rw', 'nosuid', 'nodev', 'relatime', 'user_id=0'] },
      { device: '0:53', root: '/data', target: '/var/lib/kubelet/pods/p1/mount', fstype: 'fuse.sshfs', source: 'root@127.0.0.1:/srv/box/pvc-1', options: ['rw', 'nosuid', 'nodev', 'relatime', 'user_id=0'] },
      { device: '0:54', root: '/', target: '/mnt/no\ttab', fstype: 'tmpfs', source: 'tmpfs', options: ['rw'] },
      { device: '0:55', root: '/', target: '/mnt/gone', fstype: 'tmpfs', source: 'tmpfs', options: ['rw'] },
    ]);
  });

  test('this process\'s own table parses, and has /', async () => {
    expect((await readMountInfo()).some((m) => m.target === '/')).toBe(true);
  });
});
