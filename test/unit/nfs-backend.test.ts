// How tether mounts NFS: the mount(8) arguments the NFS backend hands the mounter for a node's
// volume mount, and for the controller's own mount of the export (through a stand-in mount(8)).
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { NfsBackend } from '../../src/backends/nfs.js';
import { toCsiError } from '../../src/csi/errors.js';
import { codeName } from './csi-error.js';

const backend = (mountOptions: string[] = [], runtimeDir = '/run/tether-test') =>
  new NfsBackend({ name: 'filer', type: 'nfs', server: 'nfs.example.com', share: '/export/k8s', mountOptions }, runtimeDir, pino({ level: 'silent' }));
const optionsOf = (args: string[]) => args[args.indexOf('-o') + 1]!.split(',');

describe('NFS node mounts', () => {
  test.each<[string, string[], string[], boolean, string[]]>([
    ['defaults: a superblock of its own (a fence stops this volume only)', [], [], false, ['nosharecache']],
    ['read-only', [], [], true, ['nosharecache', 'ro']],
    ['StorageClass flags after it', [], ['vers=4.2', 'noatime'], false, ['nosharecache', 'vers=4.2', 'noatime']],
    ['a StorageClass that asks for sharecache gets it (the later option wins)', [], ['sharecache'], false, ['nosharecache', 'sharecache']],
    ['backend options last', ['hard', 'timeo=600'], ['noatime'], false, ['nosharecache', 'noatime', 'hard', 'timeo=600']],
  ])('%s', (_, backendOptions, flags, readonly, expected) => {
    const spec = backend(backendOptions).mountSpec('pvc-1', { flags, readonly });
    const args = spec.args('/var/lib/kubelet/staging', '/unused');
    expect(optionsOf(args)).toEqual(expected);
    expect(args.slice(-2)).toEqual(['nfs.example.com:/export/k8s/pvc-1', '/var/lib/kubelet/staging']);
    expect(spec.server).toEqual({ host: 'nfs.example.com', port: 2049 });
    expect(spec.cutoff).toBe('force-if-unresponsive');
  });

  // mount(8) and the kernel take the last of `ro` and `rw`: a read-only stage must end with `ro` and carry no `rw` at all.
  test.each<[string, string[], string[], string[]]>([
    ['a backend rw', ['rw'], [], ['nosharecache', 'ro']],
    ['a StorageClass rw', [], ['rw'], ['nosharecache', 'ro']],
    ['a StorageClass ro and a backend rw', ['rw'], ['ro'], ['nosharecache', 'ro']],
    ['rw inside a comma-joined backend option', ['hard,rw,timeo=600'], ['noatime'], ['nosharecache', 'noatime', 'hard', 'timeo=600', 'ro']],
    ['rw on both sides, with a backend ro between', ['rw', 'ro', 'rw'], ['rw'], ['nosharecache', 'ro']],
  ])('a read-only stage is read-only whatever the options say: %s', (_, backendOptions, flags, expected) => {
    const options = optionsOf(backend(backendOptions).mountSpec('pvc-1', { flags, readonly: true }).args('/staging', '/unused'));
    expect(options).toEqual(expected);
    expect(options).not.toContain('rw');
    expect(options.at(-1)).toBe('ro');
  });
});

/**
 * The controller's mount of the export, through the real NfsBackend, ExportMount and Mounter, with a
 * stand-in mount(8) first on PATH (this host has no NFS client): it records its arguments and fails
 * with `stderr`, as mount.nfs does.
 */
async function controllerMount(mountOptions: string[], stderr = 'mount.nfs: Connection timed out'): Promise<{ args: string[]; error: unknown }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'tether-nfs-unit-'));
  const fakeMount = path.join(dir, 'bin', 'mount');
  await mkdir(path.dirname(fakeMount));
  await writeFile(fakeMount, `#!/bin/sh\nprintf '%s\\n' "$@" > '${dir}/args'\necho '${stderr}' >&2\nexit 32\n`);
  await chmod(fakeMount, 0o755);
  const savedPath = process.env.PATH;
  process.env.PATH = `${path.dirname(fakeMount)}:${savedPath ?? ''}`;
  try {
    const nfs = backend(mountOptions, path.join(dir, 'run'));
    const error = await nfs.fs.exists('pvc-1').then(
      () => undefined,
      (err: unknown) => err,
    );
    const args = (await readFile(path.join(dir, 'args'), 'utf8')).trimEnd().split('\n');
    return { args, error };
  } finally {
    process.env.PATH = savedPath;
    await rm(dir, { recursive: true, force: true });
  }
}

/** The controller's own options: soft and bounded (a dead server fails a call, never holds a thread), no directory or negative-lookup cache. */
const CONTROLLER = ['soft', 'timeo=50', 'retrans=2', 'retry=0', 'acdirmin=0', 'acdirmax=0', 'lookupcache=positive'];

describe("the controller's mount of the export", () => {
  // Every backend option that sets what the controller sets (hard/soft, softreval, intr, timeo,
  // retrans, retry, the directory attribute cache, lookupcache) is dropped, whatever its position;
  // the rest (how to reach the server) is kept in order, and the controller's options come last.
  test.each<[string, string[], string[]]>([
    ['hard', ['hard'], []],
    ['hard with long timeouts and retries', ['hard', 'timeo=600', 'retrans=10', 'retry=5'], []],
    ['comma-joined', ['hard,timeo=600,vers=4.2'], ['vers=4.2']],
    ['softreval (would answer from the cache when the server is down)', ['softreval'], []],
    ['nosoftreval', ['nosoftreval'], []],
    ['intr and nointr', ['intr', 'nointr'], []],
    ['actimeo (sets the directory cache times too)', ['actimeo=600'], []],
    ['acdirmin and acdirmax', ['acdirmin=30', 'acdirmax=60'], []],
    ['lookupcache=all (negative entries would hide new records)', ['lookupcache=all'], []],
    ['soft with other values', ['soft', 'timeo=10'], []],
    ['transport and version options are kept, in order', ['vers=4.1', 'hard', 'proto=tcp', 'nconnect=4', 'port=2049'], ['vers=4.1', 'proto=tcp', 'nconnect=4', 'port=2049']],
    ['noac only caches less: kept', ['noac', 'hard'], ['noac']],
  ])('backend options: %s', async (_, mountOptions, kept) => {
    const { args } = await controllerMount(mountOptions);
    expect(args).toEqual(['-t', 'nfs', '-o', [...kept, ...CONTROLLER].join(','), 'nfs.example.com:/export/k8s', expect.stringMatching(/\/run\/controller\/filer$/)]);
  });

  // A failed mount of the export means the controller cannot reach the backend at all: UNAVAILABLE
  // (a retry may work), naming the backend and saying what mount.nfs said — never NOT_FOUND (no
  // volume is missing) nor INTERNAL.
  test.each<[string]>([
    ['mount.nfs: Connection timed out'],
    ['mount.nfs: No route to host'],
    ['mount.nfs: Connection refused'],
    ['mount.nfs: mounting nfs.example.com:/export/k8s failed, reason given by server: No such file or directory'],
    ['mount.nfs: access denied by server while mounting nfs.example.com:/export/k8s'],
  ])('a failed mount (%s) is UNAVAILABLE, with the backend and the reason', async (stderr) => {
    const { error } = await controllerMount([], stderr);
    const err = toCsiError(error);
    expect(codeName(err)).toBe('UNAVAILABLE');
    expect(err.message).toContain('backend "filer" (nfs.example.com:/export/k8s)');
    expect(err.message).toContain(stderr);
  });
});
