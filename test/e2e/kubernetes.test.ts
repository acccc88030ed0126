// tether on a real Kubernetes, as an operator installs it and a team uses it: `helm install` of
// charts/tether with the image built from the Dockerfile, a throwaway SSH server as the storage,
// then the README's examples — a ReadWriteOncePod claim written by a non-root pod with an fsGroup,
// a second pod that must wait, a ReadWriteOnce claim two pods on one node share, a snapshot restored
// with the same data, expansion, the node plugin replaced by a rolling update while a pod writes
// (no error, no gap), the mount keeper replaced (the pod's volume comes back by itself), deletion that archives the data on the server, and `helm uninstall` leaving no
// mount behind. Run by test/e2e/run.sh, which starts the cluster (test/e2e/cluster/cluster.sh).
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { startSshServer, type SshServer } from '../support/sshd.js';
import { cluster, explainPod, find, get, helm, kubectl, mountsBelow, podLog, REPO, rpcLog, say, waitFor } from './kube.js';

/** Each step of the story, and the setup, may take this long. */
const STEP_MS = 300_000;

const example = (name: string) => path.join(REPO, 'examples', name);
let server: SshServer;
/** The directory of a claim's volume on the SSH server. */
const onServer = async (claim: string) => path.join(server.root, (await get('pvc', claim)).spec.volumeName as string);
const phase = async (kind: string, name: string, ns = 'default') => (await find(kind, name, '-n', ns))?.status?.phase as string | undefined;
/** The name of the (one) live pod of a tether component: a pod being deleted does not count. */
const podOf = async (component: string) => {
  const live = (await get('pods', '-n', 'tether', '-l', `app.kubernetes.io/component=${component}`)).items.filter((p: any) => !p.metadata.deletionTimestamp);
  if (live.length !== 1) throw new Error(`expected one live ${component} pod, found ${live.length}`);
  return live[0].metadata.name as string;
};
const lines = async (file: string) => (await readFile(file, 'utf8').catch(() => '')).split('\n').filter(Boolean);

/** A pod (in `default`) that runs `script` once with the claim at /data, as uid 1000 with fsGroup 2000. */
const pod = (name: string, claim: string, script: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name },
    spec: {
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 5,
      securityContext: { runAsUser: 1000, runAsGroup: 1000, fsGroup: 2000 },
      containers: [{ name: 'main', image: 'busybox:1.37.0', command: ['sh', '-c', script], volumeMounts: [{ name: 'v', mountPath: '/data', ...extra }] }],
      volumes: [{ name: 'v', persistentVolumeClaim: { claimName: claim } }],
    },
  });

beforeAll(async () => {
  server = await startSshServer();
  const values = {
    config: {
      backends: [{ name: 'box', type: 'sshfs', host: server.host, port: server.port, user: server.user, path: server.root, hostKey: server.hostKey, privateKey: await readFile(server.clientKeyFile, 'utf8') }],
    },
    storageClasses: [{ name: 'tether-sshfs', backend: 'box', default: true, parameters: { onDelete: 'archive' } }],
    volumeSnapshotClasses: [{ name: 'tether' }],
    node: { kubeletDir: cluster.kubeletDir, stateDir: path.join(cluster.run, 'node-state') },
    // This cluster has no kube-proxy: the controller reaches the API server on the host's loopback.
    controller: { hostNetwork: true, env: [{ name: 'KUBERNETES_SERVICE_HOST', value: '127.0.0.1' }, { name: 'KUBERNETES_SERVICE_PORT', value: '6443' }] },
  };
  await mkdir(cluster.run, { recursive: true });
  await writeFile(path.join(cluster.run, 'my-values.yaml'), JSON.stringify(values, null, 2), { mode: 0o600 });
}, STEP_MS);

afterAll(async () => {
  await server?.stop();
}, STEP_MS);

test('helm install runs the controller and the node plugin, and the node plugin registers itself with the kubelet', async () => {
  await helm(['install', 'tether', path.join(REPO, 'charts/tether'), '--namespace', 'tether', '--create-namespace', '-f', path.join(cluster.run, 'my-values.yaml'), '--wait', '--timeout', '180s']);
  const pods = (await get('pods', '-n', 'tether')).items as any[];
  for (const p of pods) say(`pod ${p.metadata.name}: ${p.status.containerStatuses.map((c: any) => `${c.name} ready=${c.ready}`).join(', ')}`);
  expect(pods.map((p) => p.metadata.labels['app.kubernetes.io/component']).sort()).toEqual(['controller', 'mount-keeper', 'node']);
  expect(pods.every((p) => p.status.containerStatuses.every((c: any) => c.ready))).toBe(true);
  const drivers = await waitFor('the CSINode to list tether.csi.dev', async () => ((await find('csinode', cluster.node))?.spec?.drivers ?? []).find((d: any) => d.name === 'tether.csi.dev'), 60_000);
  expect(drivers.nodeID).toBe(cluster.node);
  say('helm install: every pod Ready; CSINode lists tether.csi.dev (registered by tether itself)');
}, STEP_MS);

test('a ReadWriteOncePod claim is bound and written by a pod running as uid 1000 with fsGroup 2000 (README: pvc-rwop.yaml, pod.yaml)', async () => {
  const t0 = Date.now();
  await kubectl(['apply', '-f', example('pvc-rwop.yaml'), '-f', example('pod.yaml')]);
  await waitFor('PVC journal Bound', async () => (await phase('pvc', 'journal')) === 'Bound', 60_000);
  say(`PVC journal Bound after ${Date.now() - t0} ms`);
  await waitFor('pod writer Running', async () => (await phase('pod', 'writer')) === 'Running', 120_000, 500, () => explainPod('writer'));
  say(`pod writer Running after ${Date.now() - t0} ms`);
  const log = path.join(await onServer('journal'), 'data/log.txt');
  await waitFor('the pod to write log.txt on the SSH server', async () => (await lines(log)).length >= 1, 30_000);
  const rpcs = await rpcLog('node');
  const ms = (m: string) => rpcs.find((r) => r.method === m && r.code === 'OK')?.ms;
  say(`kubelet → tether: NodeStageVolume ${ms('NodeStageVolume')} ms, NodePublishVolume ${ms('NodePublishVolume')} ms`);
  expect(ms('NodeStageVolume')).toBeDefined();
  expect(ms('NodePublishVolume')).toBeDefined();
  // The kubelet passed the pod's fsGroup as VOLUME_MOUNT_GROUP: the staged sshfs mount carries gid=2000.
  const staged = await mountsBelow(cluster.kubeletDir, 'fuse.sshfs');
  expect(staged.length).toBeGreaterThanOrEqual(1);
}, STEP_MS);

test('a second pod on the ReadWriteOncePod claim stays Pending while the first holds it', async () => {
  await kubectl(['apply', '-f', '-'], pod('writer-2', 'journal', 'date >> /data/log.txt; sleep 3600'));
  const reason = await waitFor('the scheduler to refuse writer-2', async () => {
    const p = await get('pod', 'writer-2');
    const c = (p.status.conditions ?? []).find((x: any) => x.type === 'PodScheduled');
    return c?.status === 'False' ? (c.message as string) : undefined;
  }, 30_000);
  say(`writer-2: ${reason}`);
  expect(reason).toMatch(/ReadWriteOncePod/);
  await new Promise((r) => setTimeout(r, 5000));
  expect(await phase('pod', 'writer-2')).toBe('Pending');
  await kubectl(['delete', 'pod', 'writer-2', '--wait=true']);
}, STEP_MS);

test('two pods on one node share a ReadWriteOnce claim', async () => {
  const claim = { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'shared' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } };
  await kubectl(['apply', '-f', '-'], JSON.stringify(claim));
  await kubectl(['apply', '-f', '-'], pod('left', 'shared', 'echo left >> /data/both.txt; sleep 3600'));
  await kubectl(['apply', '-f', '-'], pod('right', 'shared', 'echo right >> /data/both.txt; sleep 3600'));
  const file = path.join(await waitFor('PVC shared Bound', async () => (await phase('pvc', 'shared')) === 'Bound' && onServer('shared'), 60_000), 'data/both.txt');
  await waitFor('both pods to write both.txt', async () => (await lines(file)).sort().join() === 'left,right', 120_000, 500, async () => `${await explainPod('left')}\n${await explainPod('right')}`);
  await kubectl(['delete', 'pod', 'left', 'right', '--wait=true']);
  await kubectl(['delete', 'pvc', 'shared', '--wait=true']);
}, STEP_MS);

test('a snapshot restores into a new claim with the same data (README: snapshot.yaml, restore.yaml)', async () => {
  const source = path.join(await onServer('journal'), 'data/log.txt');
  await kubectl(['apply', '-f', example('snapshot.yaml')]);
  await waitFor('VolumeSnapshot journal-snap readyToUse', async () => (await find('volumesnapshot', 'journal-snap'))?.status?.readyToUse === true, 60_000);
  const atSnapshot = await lines(source);
  await kubectl(['apply', '-f', example('restore.yaml')]);
  await waitFor('PVC journal-restored Bound', async () => (await phase('pvc', 'journal-restored')) === 'Bound', 60_000);
  // A pod reads the restored volume through Kubernetes: what it prints is what the source held.
  await kubectl(['apply', '-f', '-'], pod('reader', 'journal-restored', 'cat /data/log.txt; echo END'));
  await waitFor('pod reader to finish', async () => ['Succeeded', 'Failed'].includes((await phase('pod', 'reader')) ?? ''), 120_000, 500, () => explainPod('reader'));
  const read = (await podLog('default', 'reader', 'main')).filter((l) => l !== 'END');
  say(`restored volume: ${read.length} lines, the source had ${atSnapshot.length} when the snapshot was ready`);
  expect(read.length).toBeGreaterThanOrEqual(1);
  expect(atSnapshot.slice(0, read.length)).toEqual(read);
  await kubectl(['delete', 'pod', 'reader', '--wait=true']);
}, STEP_MS);

test('the claim grows online to 2Gi', async () => {
  await kubectl(['patch', 'pvc', 'journal', '-p', '{"spec":{"resources":{"requests":{"storage":"2Gi"}}}}']);
  await waitFor('PVC journal capacity 2Gi', async () => (await get('pvc', 'journal')).status?.capacity?.storage === '2Gi', 60_000);
  const pv = await get('pv', (await get('pvc', 'journal')).spec.volumeName);
  expect(pv.spec.capacity.storage).toBe('2Gi');
  // The volume's record on the server (its newest generation, volume.<n>.json) says so too.
  const dir = await onServer('journal');
  const newest = (await readdir(dir)).filter((f) => /^volume\.\d+\.json$/.test(f)).sort((a, b) => parseInt(a.slice(7)) - parseInt(b.slice(7))).at(-1);
  expect(JSON.parse(await readFile(path.join(dir, newest!), 'utf8')).capacityBytes).toBe(2 * 1024 ** 3);
}, STEP_MS);

test('a rolling update replaces the node plugin while a pod writes: no error, no gap', async () => {
  // A writer that numbers its lines 5 times a second and says so on stdout when a write fails.
  await kubectl(['apply', '-f', '-'], pod('counter', 'journal-restored', 'i=0; while true; do i=$((i+1)); echo $i >> /data/seq.txt || echo "write $i failed"; sleep 0.2; done', { mountPropagation: 'HostToContainer' }));
  const seq = path.join(await onServer('journal-restored'), 'data/seq.txt');
  await waitFor('pod counter writing', async () => (await lines(seq)).length >= 5, 120_000, 500, () => explainPod('counter'));
  const before = await podOf('node');
  const keeper = await podOf('mount-keeper');
  await kubectl(['rollout', 'restart', 'daemonset/tether-node', '-n', 'tether']);
  await kubectl(['rollout', 'status', 'daemonset/tether-node', '-n', 'tether', '--timeout=120s'], undefined, 130_000);
  // `rollout status` can return while the old pod is still being deleted: wait until it is gone.
  const after = await waitFor('the old node plugin pod gone', async () => {
    const name = await podOf('node');
    return name !== before && !(await find('pod', before, '-n', 'tether')) && name;
  }, 60_000);
  expect(await podOf('mount-keeper')).toBe(keeper); // the sshfs daemons live there, untouched by the node plugin's update
  const count = (await lines(seq)).length;
  await waitFor('25 more lines after the new node plugin is Ready', async () => (await lines(seq)).length >= count + 25, 30_000);
  const numbers = (await lines(seq)).map(Number);
  expect(numbers).toEqual(numbers.map((_, i) => i + 1));
  expect((await podLog('default', 'counter', 'main')).filter((l) => l.includes('failed'))).toEqual([]);
  say(`node plugin ${before} → ${after}; the pod wrote ${numbers.length} lines with no gap and no error`);
}, STEP_MS);

test('the mount keeper\'s pod is replaced (its OnDelete upgrade): the running pod\'s volume comes back by itself', async () => {
  const seq = path.join(await onServer('journal-restored'), 'data/seq.txt');
  const keeper = await podOf('mount-keeper');
  const t0 = Date.now();
  await kubectl(['delete', 'pod', '-n', 'tether', keeper, '--wait=true']);
  await waitFor('a new mount keeper Ready', async () => {
    const p = (await get('pods', '-n', 'tether', '-l', 'app.kubernetes.io/component=mount-keeper')).items.find((x: any) => x.metadata.name !== keeper);
    return p?.status?.containerStatuses?.[0]?.ready === true;
  }, 60_000);
  // Its sshfs daemon died with it: the pod's writes fail until the node plugin mounts the volume again
  // through the new keeper and stacks the new mount on the pod's (HostToContainer) target.
  const count = (await lines(seq)).length;
  await waitFor('the pod writing again', async () => (await lines(seq)).length >= count + 10, 60_000);
  const failed = (await podLog('default', 'counter', 'main')).filter((l) => l.includes('failed'));
  const recovered = (await podLog('tether', await podOf('node'), 'tether')).some((l) => l.includes('"event":"mount-recovered"'));
  say(`mount keeper replaced; the pod wrote again ${Date.now() - t0} ms after the delete (${failed.length} writes failed meanwhile)`);
  expect(recovered).toBe(true);
  await kubectl(['delete', 'pod', 'counter', '--wait=true']);
}, STEP_MS);

test('deleting the claims removes the volumes from Kubernetes and archives their data on the server', async () => {
  const journal = await onServer('journal');
  await kubectl(['delete', 'pod', 'writer', '--wait=true'], undefined, 90_000);
  await kubectl(['delete', 'pvc', 'journal-restored', '--wait=true']);
  await kubectl(['delete', 'volumesnapshot', 'journal-snap', '--wait=true']);
  await waitFor('VolumeSnapshotContents gone (DeleteSnapshot)', async () => ((await get('volumesnapshotcontents')).items as unknown[]).length === 0, 60_000);
  await kubectl(['delete', 'pvc', 'journal', '--wait=true']);
  await waitFor('every PV gone (DeleteVolume)', async () => ((await get('pv')).items as unknown[]).length === 0, 60_000);
  await expect(stat(journal)).rejects.toThrow();
  const archived = (await readdir(path.join(server.root, '.archive'))).filter((d) => d.startsWith(path.basename(journal)));
  expect(archived).toHaveLength(1);
  expect((await lines(path.join(server.root, '.archive', archived[0]!, 'data/log.txt'))).length).toBeGreaterThanOrEqual(1);
  say(`data archived at .archive/${archived[0]}`);
}, STEP_MS);

test('helm uninstall leaves no mount and no registration behind', async () => {
  await helm(['uninstall', 'tether', '--namespace', 'tether', '--wait', '--timeout', '120s']);
  await waitFor('the tether pods gone', async () => ((await get('pods', '-n', 'tether')).items as unknown[]).length === 0, 90_000);
  expect(await mountsBelow(cluster.kubeletDir, 'fuse.sshfs')).toEqual([]);
  await waitFor('the CSINode to drop tether.csi.dev', async () => !((await find('csinode', cluster.node))?.spec?.drivers ?? []).some((d: any) => d.name === 'tether.csi.dev'), 60_000);
}, STEP_MS);
