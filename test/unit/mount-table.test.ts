// src/mounts/mount-table.ts: reading `findmnt --list --json --output TARGET,SOURCE,FSTYPE,OPTIONS,MAJ:MIN`, and /proc/self/mountinfo.
import { isReadOnly, mountAt, parseFindmnt, parseMountInfo, readMountInfo, bindsOf, sourceMatches, type MountEntry } from '../../src/mounts/mount-table.js';

const STAGING = '/var/lib/kubelet/plugins/kubernetes.io/csi/tether.csi.dev/0f3c/globalmount';
const POD_A = '/var/lib/kubelet/pods/1111-aaaa/volumes/kubernetes.io~csi/pvc-1/mount';
const POD_B = '/var/lib/kubelet/pods/2222-bbbb/volumes/kubernetes.io~csi/pvc-1/mount';
const NFS_STAGING = '/var/lib/kubelet/plugins/kubernetes.io/csi/tether.csi.dev/77aa/globalmount';
const NFS_POD = '/var/lib/kubelet/pods/3333-cccc/volumes/kubernetes.io~csi/pvc-2/mount';
const NFS_OTHER = '/var/lib/kubelet/plugins/kubernetes.io/csi/tether.csi.dev/88bb/globalmount';

/** As util-linux 2.38 prints it: a staged sshfs volume, two bind mounts of it, one of a subdirectory. */
const FINDMNT = `{
   "filesystems": [
      {
         "target": "/",
         "source": "/dev/sda1",
         "fstype": "ext4",
         "options": "rw,relatime,errors=remount-ro",
         "maj:min": "8:1"
      },{
         "target": "/proc",
         "source": "proc",
         "fstype": "proc",
         "options": "rw,nosuid,nodev,noexec,relatime",
         "maj:min": "0:21"
      },{
         "target": "/var/lib/kubelet",
         "source": "/dev/sda1[/var/lib/kubelet]",
         "fstype": "ext4",
         "options": "rw,relatime,errors=remount-ro",
         "maj:min": "8:1"
      },{
         "target": "${STAGING}",
         "source": "root@127.0.0.1:/srv/x",
         "fstype": "fuse.sshfs",
         "options": "rw,nosuid,nodev,relatime,user_id=0,group_id=0,allow_other",
         "maj:min": "0:52"
      },{
         "target": "${POD_A}",
         "source": "root@127.0.0.1:/srv/x",
         "fstype": "fuse.sshfs",
         "options": "ro,nosuid,nodev,relatime,user_id=0,group_id=0,allow_other",
         "maj:min": "0:52"
      },{
         "target": "${POD_B}",
         "source": "root@127.0.0.1:/srv/x[/data]",
         "fstype": "fuse.sshfs",
         "options": "rw,nosuid,nodev,relatime,user_id=0,group_id=0,allow_other",
         "maj:min": "0:52"
      },{
         "target": "/mnt/stacked",
         "source": "tmpfs",
         "fstype": "tmpfs",
         "options": "rw,relatime",
         "maj:min": "0:60"
      },{
         "target": "/mnt/stacked",
         "source": "root@127.0.0.1:/srv/y",
         "fstype": "fuse.sshfs",
         "options": "rw,relatime,user_id=0,group_id=0",
         "maj:min": "0:61"
      },{
         "target": "/mnt/odd",
         "source": null,
         "fstype": "none",
         "options": null,
         "maj:min": null
      },{
         "target": "${NFS_STAGING}",
         "source": "10.0.0.5:/export/pvc-2",
         "fstype": "nfs4",
         "options": "rw,relatime,vers=4.2,hard,proto=tcp",
         "maj:min": "0:70"
      },{
         "target": "${NFS_POD}",
         "source": "10.0.0.5:/export/pvc-2/data",
         "fstype": "nfs4",
         "options": "rw,relatime,vers=4.2,hard,proto=tcp",
         "maj:min": "0:70"
      },{
         "target": "${NFS_OTHER}",
         "source": "10.0.0.5:/export/pvc-20",
         "fstype": "nfs4",
         "options": "rw,relatime,vers=4.2,hard,proto=tcp",
         "maj:min": "0:70"
      }
   ]
}`;

const table = parseFindmnt(FINDMNT);

describe('parseFindmnt', () => {
  test('reads every row', () => {
    expect(table).toHaveLength(12);
  });

  test.each<[number, MountEntry]>([
    [3, { target: STAGING, source: 'root@127.0.0.1:/srv/x', fstype: 'fuse.sshfs', options: ['rw', 'nosuid', 'nodev', 'relatime', 'user_id=0', 'group_id=0', 'allow_other'], device: '0:52' }],
    [5, { target: POD_B, source: 'root@127.0.0.1:/srv/x[/data]', fstype: 'fuse.sshfs', options: ['rw', 'nosuid', 'nodev', 'relatime', 'user_id=0', 'group_id=0', 'allow_other'], device: '0:52' }],
    [0, { target: '/', source: '/dev/sda1', fstype: 'ext4', options: ['rw', 'relatime', 'errors=remount-ro'], device: '8:1' }],
  ])('row %d', (index, entry) => {
    expect(table[index]).toEqual(entry);
  });

  test('null columns become empty strings', () => {
    expect(table[8]).toMatchObject({ target: '/mnt/odd', source: '', fstype: 'none', device: '' });
  });

  test.each<[string, string]>([
    ['no filesystems', '{}'],
    ['an empty list', '{"filesystems": []}'],
  ])('%s → an empty table', (_, json) => {
    expect(parseFindmnt(json)).toEqual([]);
  });

  test('not JSON → throws', () => {
    expect(() => parseFindmnt('findmnt: can not find')).toThrow();
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
    '',
  ].join('\n');

  test('reads mount point, root, type, source and device of each line; optional fields and escapes handled', () => {
    expect(parseMountInfo(text)).toEqual([
      { device: '0:21', root: '/', target: '/proc', fstype: 'proc', source: 'proc' },
      { device: '0:52', root: '/', target: '/run/tether/controller/nfs', fstype: 'nfs4', source: '127.0.0.1:/export' },
      { device: '0:53', root: '/', target: '/var/lib/kubelet/plugins/pv with space/globalmount', fstype: 'fuse.sshfs', source: 'root@127.0.0.1:/srv/box/pvc-1' },
      { device: '0:53', root: '/data', target: '/var/lib/kubelet/pods/p1/mount', fstype: 'fuse.sshfs', source: 'root@127.0.0.1:/srv/box/pvc-1' },
      { device: '0:54', root: '/', target: '/mnt/no\ttab', fstype: 'tmpfs', source: 'tmpfs' },
    ]);
  });

  test('this process\'s own table parses, and has /', async () => {
    expect((await readMountInfo()).some((m) => m.target === '/')).toBe(true);
  });
});
