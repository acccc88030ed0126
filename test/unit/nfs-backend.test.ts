// How a node mounts an NFS volume: the mount(8) arguments the NFS backend hands the mounter.
import { pino } from 'pino';
import { NfsBackend } from '../../src/backends/nfs.js';

const backend = (mountOptions: string[] = []) => new NfsBackend({ name: 'filer', type: 'nfs', server: 'nfs.example.com', share: '/export/k8s', mountOptions }, '/run/tether-test', pino({ level: 'silent' }));
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
});
