// The Helm chart (charts/tether), as a cluster operator meets it: the real helm (installed by
// test/tools/install.sh with `go install`) lints and renders it for several values files, and every
// rendered object — and every file in examples/ — is validated against the Kubernetes API schemas of
// a current release (kubernetes-models; the VolumeSnapshot CRDs of external-snapshotter for the
// snapshot kinds). Then the things that break installs are asserted: the CSIDriver's fields, the
// socket paths the driver and its sidecars share, the kubelet registration and /healthz (tether's own
// by default, the kubernetes-csi sidecars' when enabled), the attacher, images pinned to what the e2e
// runs, secrets kept out of ConfigMaps, the config Secret mounted read-only — and the rendered config
// is one tether accepts.
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { execa } from 'execa';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { loadConfig, parseConfigText } from '../../src/config.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const HELM = path.join(ROOT, '.tools/bin/helm');
const CHART = path.join(ROOT, 'charts/tether');
const VALUES = path.join(ROOT, 'test/chart/values');
const CRDS = path.join(ROOT, '.tools/crds');
const KUBE_VERSION = '1.34.0';

type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; annotations?: Record<string, string> }; [key: string]: any };

async function render(valuesFile: string, ...extra: string[]): Promise<K8sObject[]> {
  const { stdout } = await execa(HELM, ['template', 'tether', CHART, '--namespace', 'storage', '--kube-version', KUBE_VERSION, '-f', path.join(VALUES, valuesFile), ...extra], { timeout: 60_000 });
  return parseAllDocuments(stdout)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

const byKind = (objects: K8sObject[], kind: string) => objects.filter((o) => o.kind === kind);
const one = (objects: K8sObject[], kind: string, name?: string) => {
  const found = byKind(objects, kind).filter((o) => name === undefined || o.metadata.name.endsWith(name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` named *${name}` : ''}, found ${found.length}`);
  return found[0]!;
};
const podSpec = (o: K8sObject) => o.spec.template.spec;
const containers = (o: K8sObject): any[] => podSpec(o).containers;
const container = (o: K8sObject, name: string) => containers(o).find((c) => c.name === name);

/** The VolumeSnapshot CRDs' schemas, made strict: unknown fields are errors, as in a real API server. */
type Check = ((data: unknown) => boolean) & { errors?: unknown };
const crdValidators = new Map<string, Check>();
async function loadCrds(): Promise<void> {
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  for (const file of await readdir(CRDS)) {
    if (!file.endsWith('.yaml')) continue;
    const crd = parseAllDocuments(await readFile(path.join(CRDS, file), 'utf8')).map((d) => d.toJS()).find((d) => d?.kind === 'CustomResourceDefinition');
    for (const version of crd.spec.versions) {
      const schema = strictSchema(version.schema.openAPIV3Schema);
      crdValidators.set(`${crd.spec.group}/${version.name}/${crd.spec.names.kind}`, ajv.compile(schema) as Check);
    }
  }
}
function strictSchema(schema: any): any {
  if (Array.isArray(schema)) return schema.map(strictSchema);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: any = Object.fromEntries(Object.entries(schema).map(([k, v]) => [k, k === 'properties' ? Object.fromEntries(Object.entries(v as object).map(([p, s]) => [p, strictSchema(s)])) : strictSchema(v)]));
  if (out.properties && out.additionalProperties === undefined && !out['x-kubernetes-preserve-unknown-fields']) out.additionalProperties = false;
  return out;
}

/** Validates one object against its kind's schema; throws with the object's name and the schema's complaint. */
async function validate(o: K8sObject): Promise<void> {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
  const crd = crdValidators.get(`${group}/${version}/${o.kind}`);
  if (crd) {
    if (!crd(o)) throw new Error(`${o.kind} ${o.metadata.name}: ${JSON.stringify(crd.errors)}`);
    return;
  }
  const module = group === 'monitoring.coreos.com' ? `@kubernetes-models/prometheus-operator/${o.apiVersion}/${o.kind}` : `kubernetes-models/${o.apiVersion}/${o.kind}`;
  const model = (await import(module).catch(() => undefined))?.[o.kind];
  if (!model) throw new Error(`no schema for ${o.apiVersion} ${o.kind}`);
  try {
    new model(o).validate();
  } catch (err) {
    throw new Error(`${o.kind} ${o.metadata.name}: ${(err as Error).message}`);
  }
}

const VALUES_FILES = ['minimal.yaml', 'two-backends.yaml', 'existing-secret.yaml', 'snapshotter-off.yaml', 'kubelet-dir.yaml', 'sidecars.yaml'];
/** The values files that leave the two optional sidecars off (the chart's default). */
const SELF_SERVING = VALUES_FILES.filter((f) => f !== 'sidecars.yaml');
const rendered = new Map<string, K8sObject[]>();

beforeAll(async () => {
  await loadCrds();
  for (const file of VALUES_FILES) rendered.set(file, await render(file));
}, 120_000);

describe('helm lint and helm template', () => {
  test.each(VALUES_FILES)('helm lint --strict passes with %s', async (file) => {
    const lint = await execa(HELM, ['lint', '--strict', CHART, '--kube-version', KUBE_VERSION, '-f', path.join(VALUES, file)], { timeout: 60_000, reject: false });
    expect(lint.stdout).toContain('0 chart(s) failed');
    expect(lint.exitCode).toBe(0);
  }, 60_000);

  test.each(VALUES_FILES)('every object rendered with %s is valid against the Kubernetes API schema', async (file) => {
    const objects = rendered.get(file)!;
    expect(objects.length).toBeGreaterThan(5);
    for (const o of objects) await validate(o);
  });

  test('the validation is real: a broken object is caught', async () => {
    const deployment = one(rendered.get('minimal.yaml')!, 'Deployment');
    const broken = structuredClone(deployment);
    broken.spec.replicas = 'two';
    await expect(validate(broken)).rejects.toThrow(/replicas must be integer/);
    const snapshotClass: K8sObject = { apiVersion: 'snapshot.storage.k8s.io/v1', kind: 'VolumeSnapshotClass', metadata: { name: 'x' }, driver: 'tether.csi.dev', deletionPolicy: 'Delete', deletionPolicyy: 'typo' };
    await expect(validate(snapshotClass)).rejects.toThrow(/additional/);
  });

  test.each<[string, string[], RegExp]>([
    ['the bare defaults, with no backend', ['-f', '/dev/null'], /config\.backends: configure at least one backend, or name an existingSecret/],
    ['an image tag "latest"', ['--set', 'image.tag=latest'], /image\/tag/],
    ['a sidecar on "latest"', ['--set', 'sidecars.attacher.image=registry.k8s.io/sig-storage/csi-attacher:latest'], /sidecars\/attacher\/image/],
    ['an unknown value (a typo)', ['--set', 'controller.replica=2'], /additional properties 'replica' not allowed|replica/],
    ['an sshfs backend without its key', ['--set-json', 'config.backends=[{"name":"b","type":"sshfs","host":"h","user":"u","path":"/p","hostKey":"ssh-ed25519 AAAA"}]'], /privateKey|oneOf/],
    ['a sidecar switch that is not a boolean', ['--set-string', 'sidecars.livenessProbe.enabled=yes'], /sidecars\/livenessProbe\/enabled/],
    ['a misspelt sidecar switch', ['--set', 'sidecars.nodeDriverRegistrar.enable=true'], /additional properties 'enable' not allowed/],
    ['a switch on a sidecar that is not optional', ['--set', 'sidecars.attacher.enabled=false'], /additional properties 'enabled' not allowed/],
    ['a privileged controller health port', ['--set', 'controller.healthPort=808'], /controller\/healthPort/],
    ['a controller health port out of range', ['--set', 'controller.healthPort=70000'], /controller\/healthPort/],
    ['a controller health port that is not a number', ['--set-string', 'controller.healthPort=9808'], /controller\/healthPort/],
    ['the controller\'s health port on its metrics port', ['--set', 'controller.healthPort=9810'], /controller\.healthPort and metrics\.port must differ: both are 9810/],
    ['a relative node state directory', ['--set', 'node.stateDir=run/tether'], /node\/stateDir/],
    ['a controller env entry without a name', ['--set-json', 'controller.env=[{"value":"x"}]'], /controller\/env/],
    ['controller.hostNetwork that is not a boolean', ['--set-string', 'controller.hostNetwork=yes'], /controller\/hostNetwork/],
  ])('refuses %s with a message naming the problem', async (_, args, message) => {
    const file = args[1] === '/dev/null' ? [] : ['-f', path.join(VALUES, 'minimal.yaml')];
    const result = await execa(HELM, ['template', 'tether', CHART, '--kube-version', KUBE_VERSION, ...file, ...args.filter((a) => a !== '-f' && a !== '/dev/null')], { timeout: 60_000, reject: false });
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toMatch(message);
  }, 60_000);
});

describe('what the rendered objects must get right', () => {
  test('the CSIDriver: attachRequired, podInfoOnMount, fsGroupPolicy File, Persistent volumes', () => {
    const driver = one(rendered.get('minimal.yaml')!, 'CSIDriver');
    expect(driver.metadata.name).toBe('tether.csi.dev');
    expect(driver.spec).toEqual({ attachRequired: true, podInfoOnMount: true, fsGroupPolicy: 'File', volumeLifecycleModes: ['Persistent'] });
  });

  test.each(VALUES_FILES)('the driver and every sidecar share one socket, and kubelet is told its host path (%s)', (file) => {
    const objects = rendered.get(file)!;
    const kubeletDir = file === 'kubelet-dir.yaml' ? '/var/lib/k0s/kubelet' : '/var/lib/kubelet';
    for (const workload of [one(objects, 'Deployment'), one(objects, 'DaemonSet', '-node')]) {
      const tether = container(workload, 'tether');
      expect(tether.args).toContain('--endpoint=unix:///csi/csi.sock');
      for (const c of containers(workload).filter((c) => c.name !== 'tether' && c.name !== 'log-shipper' /* the values file's extra container */)) {
        expect({ name: c.name, args: c.args }).toEqual({ name: c.name, args: expect.arrayContaining(['--csi-address=/csi/csi.sock']) });
        expect(c.volumeMounts).toContainEqual({ name: 'socket-dir', mountPath: '/csi' });
      }
      expect(tether.volumeMounts).toContainEqual({ name: 'socket-dir', mountPath: '/csi' });
    }
    const node = one(objects, 'DaemonSet', '-node');
    const volumes = Object.fromEntries(podSpec(node).volumes.map((v: any) => [v.name, v]));
    expect(volumes['socket-dir'].hostPath.path).toBe(`${kubeletDir}/plugins/tether.csi.dev`);
    expect(volumes['runtime-dir'].hostPath).toEqual({ path: '/run/tether/tether.csi.dev', type: 'DirectoryOrCreate' });
    expect(volumes['registration-dir'].hostPath).toEqual({ path: `${kubeletDir}/plugins_registry`, type: 'Directory' });
    // Whoever registers — tether or node-driver-registrar — mounts plugins_registry and tells the kubelet the socket's host path.
    const registrar = file === 'sidecars.yaml' ? container(node, 'node-driver-registrar') : container(node, 'tether');
    const registrationPath = `--kubelet-registration-path=${kubeletDir}/plugins/tether.csi.dev/csi.sock`;
    expect(registrar.args).toContain(registrationPath);
    expect(registrar.volumeMounts).toContainEqual({ name: 'registration-dir', mountPath: '/registration' });
    expect(containers(node).filter((c) => c.args?.includes(registrationPath)).map((c) => c.name)).toEqual([registrar.name]);
    expect(container(node, 'tether').volumeMounts).toContainEqual({ name: 'kubelet-dir', mountPath: kubeletDir, mountPropagation: 'Bidirectional' });
  });

  test('the controller runs provisioner (with --extra-create-metadata), attacher, resizer, snapshotter; the node runs tether alone', () => {
    const objects = rendered.get('two-backends.yaml')!;
    const controller = one(objects, 'Deployment');
    expect(containers(controller).map((c) => c.name)).toEqual(['tether', 'csi-provisioner', 'csi-attacher', 'csi-resizer', 'csi-snapshotter']);
    expect(container(controller, 'csi-provisioner').args).toContain('--extra-create-metadata');
    expect(container(controller, 'tether').args).toContain('--mode=controller');
    expect(controller.spec.replicas).toBe(2);
    for (const c of containers(controller).filter((c) => c.name.startsWith('csi-'))) expect(c.args).toContain('--leader-election');
    const node = one(objects, 'DaemonSet', '-node');
    expect(containers(node).map((c) => c.name)).toEqual(['tether']);
    expect(container(node, 'tether').args).toEqual(expect.arrayContaining(['--mode=node', '--node-id=$(NODE_NAME)']));
    const withoutSnapshots = rendered.get('snapshotter-off.yaml')!;
    expect(containers(one(withoutSnapshots, 'Deployment')).map((c) => c.name)).not.toContain('csi-snapshotter');
    expect(byKind(withoutSnapshots, 'Role')).toEqual([]); // no leader election, no lease rights
  });

  test.each(SELF_SERVING)('by default tether registers the node plugin and serves /healthz itself: no registrar, no livenessprobe (%s)', (file) => {
    const objects = rendered.get(file)!;
    const kubeletDir = file === 'kubelet-dir.yaml' ? '/var/lib/k0s/kubelet' : '/var/lib/kubelet';
    const node = one(objects, 'DaemonSet', '-node');
    const controller = one(objects, 'Deployment');
    const all = [...containers(node), ...containers(controller)].map((c) => c.name);
    expect(all).not.toContain('node-driver-registrar');
    expect(all).not.toContain('liveness-probe');
    expect(container(node, 'tether').args).toEqual(
      expect.arrayContaining(['--health-address=0.0.0.0:29810', '--kubelet-registration-dir=/registration', `--kubelet-registration-path=${kubeletDir}/plugins/tether.csi.dev/csi.sock`]),
    );
    expect(container(controller, 'tether').args).toContain('--health-address=0.0.0.0:9808');
    expect(container(controller, 'tether').args.join(' ')).not.toMatch(/--kubelet-registration/);
  });

  test('with the sidecars enabled, they register and serve /healthz, and tether gets none of those flags', () => {
    const objects = rendered.get('sidecars.yaml')!;
    const node = one(objects, 'DaemonSet', '-node');
    const controller = one(objects, 'Deployment');
    expect(containers(node).map((c) => c.name)).toEqual(['tether', 'node-driver-registrar', 'liveness-probe']);
    expect(containers(controller).map((c) => c.name)).toEqual(['tether', 'csi-provisioner', 'csi-attacher', 'csi-resizer', 'csi-snapshotter', 'liveness-probe']);
    for (const workload of [node, controller]) {
      const flags = container(workload, 'tether').args.join(' ');
      expect(flags).not.toMatch(/--health-address|--kubelet-registration/);
      expect(container(workload, 'tether').volumeMounts.map((m: any) => m.name)).not.toContain('registration-dir');
    }
    expect(container(node, 'liveness-probe').args).toContain('--health-port=29810');
    expect(container(controller, 'liveness-probe').args).toContain('--health-port=19808');
    expect(container(controller, 'tether').ports).toContainEqual({ name: 'healthz', containerPort: 19808 });
    expect(container(node, 'node-driver-registrar').volumeMounts).toContainEqual({ name: 'registration-dir', mountPath: '/registration' });
  });

  test.each<[string, string, string[], string[]]>([
    ['nodeDriverRegistrar', 'node-driver-registrar', ['tether', 'node-driver-registrar'], ['--health-address=0.0.0.0:29810']],
    ['livenessProbe', 'liveness-probe', ['tether', 'liveness-probe'], ['--kubelet-registration-dir=/registration', '--kubelet-registration-path=/var/lib/kubelet/plugins/tether.csi.dev/csi.sock']],
  ])('enabling %s alone renders its sidecar and takes only its flags from tether', async (value, name, nodeContainers, kept) => {
    const objects = await render('minimal.yaml', '--set', `sidecars.${value}.enabled=true`);
    const node = one(objects, 'DaemonSet', '-node');
    expect(containers(node).map((c) => c.name)).toEqual(nodeContainers);
    const nodeFlags: string[] = container(node, 'tether').args;
    expect(nodeFlags.filter((a) => /^--(health-address|kubelet-registration)/.test(a))).toEqual(kept);
    const controllerFlags: string[] = container(one(objects, 'Deployment'), 'tether').args;
    expect(controllerFlags.includes('--health-address=0.0.0.0:9808')).toBe(name !== 'liveness-probe');
    for (const o of objects) await validate(o);
  }, 60_000);

  test('every kubernetes-csi sidecar the e2e runs is pinned to the version the e2e builds (test/e2e/build/go.mod), and the CRDs come from that snapshotter', async () => {
    const goMod = await readFile(path.join(ROOT, 'test/e2e/build/go.mod'), 'utf8');
    const built = (module: string) => new RegExp(`^\\s*github\\.com/kubernetes-csi/${module} (v[0-9.]+)$`, 'm').exec(goMod)?.[1];
    const sidecars: Record<string, string> = { 'csi-provisioner': 'external-provisioner/v6', 'csi-attacher': 'external-attacher/v4', 'csi-resizer': 'external-resizer/v2', 'csi-snapshotter': 'external-snapshotter/v8' };
    const controller = one(rendered.get('minimal.yaml')!, 'Deployment');
    for (const [name, module] of Object.entries(sidecars)) {
      const version = built(module);
      expect({ name, version }).toEqual({ name, version: expect.stringMatching(/^v\d+\.\d+\.\d+$/) });
      expect(container(controller, name).image).toBe(`registry.k8s.io/sig-storage/${name}:${version}`);
    }
    const install = await readFile(path.join(ROOT, 'test/tools/install.sh'), 'utf8');
    expect(/^SNAPSHOTTER_VERSION=(\S+)/m.exec(install)?.[1]).toBe(built('external-snapshotter/v8'));
    const values = parseYaml(await readFile(path.join(CHART, 'values.yaml'), 'utf8'));
    expect(values.sidecars.livenessProbe).toEqual({ enabled: false, image: 'registry.k8s.io/sig-storage/livenessprobe:v2.15.0' });
    expect(values.sidecars.nodeDriverRegistrar).toEqual({ enabled: false, image: 'registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.13.0' });
  });

  test.each<[string, string, object]>([
    ['kubelet-dir.yaml', 'DaemonSet', { mode: 'node', healthAddress: '0.0.0.0:29810', kubeletRegistration: { endpoint: '/var/lib/k0s/kubelet/plugins/tether.csi.dev/csi.sock' } }],
    ['kubelet-dir.yaml', 'Deployment', { mode: 'controller', healthAddress: '0.0.0.0:9808', metricsAddress: '0.0.0.0:9810', kubeletRegistration: undefined }],
    ['sidecars.yaml', 'DaemonSet', { mode: 'node', healthAddress: undefined, kubeletRegistration: undefined }],
  ])('tether accepts the command line the chart gives it (%s, %s)', async (file, kind, expected) => {
    const objects = rendered.get(file)!;
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tether-chart-args-'));
    try {
      await writeFile(path.join(dir, 'config.yaml'), one(objects, 'Secret').stringData['config.yaml']);
      await mkdir(path.join(dir, 'registration'));
      // The container's paths, moved into a scratch directory; $(NODE_NAME) as the kubelet expands it.
      const args = (container(one(objects, kind, kind === 'DaemonSet' ? '-node' : undefined), 'tether').args as string[]).map((a) =>
        a.replace('=/etc/tether/', `=${dir}/`).replace('--kubelet-registration-dir=/registration', `--kubelet-registration-dir=${dir}/registration`).replace('$(NODE_NAME)', 'node-a'),
      );
      const config = await loadConfig(args);
      expect(config).toMatchObject(expected);
      if (config.kubeletRegistration) expect(config.kubeletRegistration.socketPath).toBe(path.join(dir, 'registration', 'tether.csi.dev-reg.sock'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('the node pod is on the host network, so NFS and ssh connections outlive it; its health port is its own, not the controller\'s', () => {
    const node = one(rendered.get('minimal.yaml')!, 'DaemonSet', '-node');
    expect(podSpec(node)).toMatchObject({ hostNetwork: true, dnsPolicy: 'ClusterFirstWithHostNet' });
    expect(container(node, 'tether').ports).toContainEqual({ name: 'healthz', containerPort: 29810 });
    const controller = one(rendered.get('minimal.yaml')!, 'Deployment');
    expect(podSpec(controller).hostNetwork).toBeUndefined();
    expect(container(controller, 'tether').ports).toContainEqual({ name: 'healthz', containerPort: 9808 });
    for (const workload of [node, controller]) expect(container(workload, 'tether').livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'healthz' });
  });

  test('Node.js flags per workload: a small young generation and memory over speed for the node plugin and keeper, V8 defaults for the controller; only --flags pass', async () => {
    const FLAGS = ['--max-semi-space-size=1', '--optimize-for-size'];
    const entrypoint = JSON.parse(/^ENTRYPOINT (.+)$/m.exec(await readFile(path.join(CHART, '../../Dockerfile'), 'utf8'))![1]!) as string[];
    const command = (o: K8sObject, name: string) => container(o, name).command as string[] | undefined;
    const objects = rendered.get('minimal.yaml')!;
    // The image's own entrypoint, with the flags before its script.
    expect(command(one(objects, 'DaemonSet', '-node'), 'tether')).toEqual([entrypoint[0], ...FLAGS, ...entrypoint.slice(1)]);
    expect(command(one(objects, 'DaemonSet', '-mount-keeper'), 'mount-keeper')).toEqual([entrypoint[0], ...FLAGS, ...entrypoint.slice(1)]);
    expect(command(one(objects, 'Deployment'), 'tether')).toBeUndefined();
    const set = await render('minimal.yaml', '--set', 'controller.nodeFlags=--max-old-space-size=256 --max-semi-space-size=4', '--set', 'node.nodeFlags=');
    expect(command(one(set, 'Deployment'), 'tether')).toEqual([entrypoint[0], '--max-old-space-size=256', '--max-semi-space-size=4', ...entrypoint.slice(1)]);
    expect(command(one(set, 'DaemonSet', '-node'), 'tether')).toBeUndefined();
    for (const bad of ['--require=/tmp/x.js;id', '--a  --b', 'x']) {
      const result = await execa(HELM, ['template', 'x', CHART, '--kube-version', KUBE_VERSION, '-f', path.join(VALUES, 'minimal.yaml'), '--set', `node.nodeFlags=${bad}`], { timeout: 60_000, reject: false });
      expect(result.exitCode).not.toBe(0);
      expect(result.stderr).toMatch(/nodeFlags/);
    }
  }, 60_000);

  test('privileged only where mounting needs it: the node plugin; the controller only for NFS backends', () => {
    const privileged = (o: K8sObject) => containers(o).filter((c) => c.securityContext?.privileged).map((c) => c.name);
    expect(privileged(one(rendered.get('minimal.yaml')!, 'Deployment'))).toEqual([]); // sshfs: SFTP only
    expect(privileged(one(rendered.get('two-backends.yaml')!, 'Deployment'))).toEqual(['tether']); // NFS: mounts the export
    expect(privileged(one(rendered.get('existing-secret.yaml')!, 'Deployment'))).toEqual(['tether']);
    for (const file of VALUES_FILES) expect(privileged(one(rendered.get(file)!, 'DaemonSet', '-node'))).toEqual(['tether']);
    const devFuse = podSpec(one(rendered.get('minimal.yaml')!, 'DaemonSet', '-node')).volumes.find((v: any) => v.name === 'dev-fuse');
    expect(devFuse.hostPath).toEqual({ path: '/dev/fuse', type: 'CharDevice' });
  });

  test.each(VALUES_FILES)('every image is pinned to a version, none is "latest" (%s)', (file) => {
    const images = rendered.get(file)!.flatMap((o) => (o.spec?.template ? containers(o).map((c) => c.image as string) : []));
    expect(images.length).toBeGreaterThan(3);
    for (const image of images) expect(image).toMatch(/:v?\d+\.\d+\.\d+$/);
    expect(images).toContain('ghcr.io/tether-csi/tether:0.1.0');
  });

  test('chart version and appVersion move together, and match the package', async () => {
    const chart = parseYaml(await readFile(path.join(CHART, 'Chart.yaml'), 'utf8'));
    const pkg = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8'));
    expect(chart.version).toBe(chart.appVersion);
    expect(chart.appVersion).toBe(pkg.version);
  });

  test('the config and the keys live in a Secret, mounted read-only; no ConfigMap holds a secret', () => {
    for (const file of VALUES_FILES) {
      const objects = rendered.get(file)!;
      for (const map of byKind(objects, 'ConfigMap')) expect(JSON.stringify(map)).not.toMatch(/PRIVATE KEY|TESTKEYSECRETVALUE/);
      for (const workload of [one(objects, 'Deployment'), ...byKind(objects, 'DaemonSet')]) {
        const secretName = file === 'existing-secret.yaml' ? 'my-tether-config' : 'tether-config';
        expect(podSpec(workload).volumes).toContainEqual({ name: 'config', secret: { secretName, defaultMode: 0o400 } });
        expect(containers(workload)[0].volumeMounts).toContainEqual({ name: 'config', mountPath: '/etc/tether', readOnly: true });
        expect(JSON.stringify(workload)).not.toContain('TESTKEYSECRETVALUE');
      }
    }
    expect(byKind(rendered.get('existing-secret.yaml')!, 'Secret')).toEqual([]);
  });

  test('the rendered config.yaml is one tether itself accepts, with each sshfs key as a file beside it', () => {
    const secret = one(rendered.get('two-backends.yaml')!, 'Secret');
    const config = parseConfigText(secret.stringData['config.yaml'], 'config.yaml');
    expect(config.backends.map((b) => [b.name, b.type])).toEqual([['box', 'sshfs'], ['filer', 'nfs']]);
    const box = config.backends[0]!;
    expect(box.type === 'sshfs' && box.privateKeyFile).toBe('/etc/tether/box.key');
    expect(secret.stringData['box.key']).toContain('TESTKEYSECRETVALUE');
    expect(secret.stringData['config.yaml']).not.toContain('TESTKEYSECRETVALUE');
    expect(config.maxVolumesPerNode).toBe(50);
    expect(config.lease).toEqual({ termSeconds: 30, renewSeconds: 4, fenceMarginSeconds: 5 }); // one value set, the chart's defaults for the rest
  });

  test('StorageClasses and the VolumeSnapshotClass come from values, with the driver as provisioner', () => {
    const objects = rendered.get('two-backends.yaml')!;
    const box = one(objects, 'StorageClass', 'tether-box');
    expect(box).toMatchObject({ provisioner: 'tether.csi.dev', parameters: { backend: 'box', onDelete: 'archive' }, reclaimPolicy: 'Delete', allowVolumeExpansion: true });
    expect(box.metadata.annotations?.['storageclass.kubernetes.io/is-default-class']).toBe('true');
    const nfs = one(objects, 'StorageClass', 'tether-nfs');
    expect(nfs).toMatchObject({ parameters: { backend: 'filer', volumeNameTemplate: '${pvc.metadata.namespace}-${pvc.metadata.name}' }, reclaimPolicy: 'Retain', volumeBindingMode: 'WaitForFirstConsumer', mountOptions: ['nconnect=4'] });
    expect(one(objects, 'VolumeSnapshotClass')).toMatchObject({ driver: 'tether.csi.dev', deletionPolicy: 'Delete' });
    expect(one(objects, 'ServiceMonitor').spec.endpoints).toEqual([{ port: 'metrics', interval: '30s' }]);
  });

  test('the node plugin gets no API access; the controller\'s rights are the sidecars\' and no more', () => {
    const objects = rendered.get('two-backends.yaml')!;
    const nodeAccount = one(objects, 'ServiceAccount', 'tether-node');
    expect(nodeAccount.automountServiceAccountToken).toBe(false);
    expect(podSpec(one(objects, 'DaemonSet', '-node')).automountServiceAccountToken).toBe(false);
    const rules = one(objects, 'ClusterRole').rules as { resources: string[]; verbs: string[] }[];
    expect(rules.flatMap((r) => r.verbs)).not.toContain('*');
    expect(rules.flatMap((r) => r.resources)).not.toContain('secrets');
    expect(one(objects, 'Role').rules).toEqual([{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'watch', 'list', 'delete', 'update', 'create'] }]);
  });

  test('an extra long-lived container (node.extraContainers) slots into the node pod beside tether', () => {
    const node = one(rendered.get('kubelet-dir.yaml')!, 'DaemonSet', '-node');
    expect(containers(node).map((c) => c.name)).toEqual(['tether', 'log-shipper']);
  });
});

describe('the mount keeper (mountKeeper.enabled, the default)', () => {
  const keeperOf = (objects: K8sObject[]) => one(objects, 'DaemonSet', '-mount-keeper');

  test.each(VALUES_FILES)('its own DaemonSet, updated only OnDelete, beside the node plugin, on the same socket directory (%s)', (file) => {
    const objects = rendered.get(file)!;
    const kubeletDir = file === 'kubelet-dir.yaml' ? '/var/lib/k0s/kubelet' : '/var/lib/kubelet';
    const keeper = keeperOf(objects);
    const node = one(objects, 'DaemonSet', '-node');
    expect(keeper.spec.updateStrategy).toEqual({ type: 'OnDelete' });
    expect(node.spec.updateStrategy).toEqual({ type: 'RollingUpdate' });
    expect(containers(keeper).map((c) => c.name)).toEqual(['mount-keeper']);
    const c = container(keeper, 'mount-keeper');
    expect(c.args).toEqual(['--mode=keeper', '--endpoint=unix:///csi/keeper/keeper.sock', '--config=/etc/tether/config.yaml', '--driver-name=tether.csi.dev', '--log-level=info', `--keeper-allowed-root=${kubeletDir}`]);
    expect(container(node, 'tether').args).toContain('--mount-keeper=unix:///csi/keeper/keeper.sock');
    // Both pods see the driver's plugin directory at /csi: the keeper's socket is where the node plugin looks.
    const volumesOf = (o: K8sObject) => Object.fromEntries(podSpec(o).volumes.map((v: any) => [v.name, v]));
    expect(volumesOf(keeper)['socket-dir']).toEqual(volumesOf(node)['socket-dir']);
    expect(c.volumeMounts).toContainEqual({ name: 'socket-dir', mountPath: '/csi' });
    expect(c.volumeMounts).toContainEqual({ name: 'kubelet-dir', mountPath: kubeletDir, mountPropagation: 'Bidirectional' });
    expect(c.volumeMounts).toContainEqual({ name: 'dev-fuse', mountPath: '/dev/fuse' });
    expect(c.volumeMounts).toContainEqual({ name: 'config', mountPath: '/etc/tether', readOnly: true });
    expect(volumesOf(keeper)['dev-fuse'].hostPath).toEqual({ path: '/dev/fuse', type: 'CharDevice' });
    expect(volumesOf(keeper)['kubelet-dir'].hostPath).toEqual({ path: kubeletDir, type: 'Directory' });
  });

  test('privileged, on the host network, no API token, pause as PID 1 (it reaps sshfs), its own runtime tmpfs, no liveness probe', () => {
    const keeper = keeperOf(rendered.get('minimal.yaml')!);
    expect(podSpec(keeper)).toMatchObject({ hostNetwork: true, dnsPolicy: 'ClusterFirstWithHostNet', shareProcessNamespace: true, automountServiceAccountToken: false, priorityClassName: 'system-node-critical' });
    const c = container(keeper, 'mount-keeper');
    expect(c.securityContext).toEqual({ privileged: true });
    expect(c.livenessProbe).toBeUndefined(); // a restart would end every sshfs mount on the node
    expect(podSpec(keeper).volumes).toContainEqual({ name: 'runtime-dir', emptyDir: { medium: 'Memory' } });
    expect(c.volumeMounts).toContainEqual({ name: 'runtime-dir', mountPath: '/run/tether' });
  });

  test("the node plugin's state (leases, fences, what it staged) is on the host: it outlives a rolling update of the node pod, as the keeper's mounts do", () => {
    const node = one(rendered.get('minimal.yaml')!, 'DaemonSet', '-node');
    expect(podSpec(node).volumes).toContainEqual({ name: 'runtime-dir', hostPath: { path: '/run/tether/tether.csi.dev', type: 'DirectoryOrCreate' } });
    expect(container(node, 'tether').volumeMounts).toContainEqual({ name: 'runtime-dir', mountPath: '/run/tether' });
  });

  test('mountKeeper.enabled=false: no keeper, and the node plugin mounts sshfs itself', async () => {
    const objects = await render('minimal.yaml', '--set', 'mountKeeper.enabled=false');
    expect(byKind(objects, 'DaemonSet').map((o) => o.metadata.name)).toEqual(['tether-node']);
    expect(container(one(objects, 'DaemonSet', '-node'), 'tether').args.join(' ')).not.toContain('--mount-keeper');
  }, 60_000);
});

describe('examples/: the user\'s first ten minutes', () => {
  test('every example is valid against the Kubernetes API schema, and names tether\'s classes', async () => {
    const dir = path.join(ROOT, 'examples');
    const files = (await readdir(dir)).filter((f) => f.endsWith('.yaml'));
    expect(files.length).toBeGreaterThanOrEqual(7);
    const kinds: string[] = [];
    for (const file of files) {
      for (const doc of parseAllDocuments(await readFile(path.join(dir, file), 'utf8'))) {
        const o = doc.toJS() as K8sObject;
        await validate(o);
        kinds.push(o.kind);
      }
    }
    expect(new Set(kinds)).toEqual(new Set(['StorageClass', 'PersistentVolumeClaim', 'Pod', 'VolumeSnapshot', 'VolumeSnapshotClass']));
  });
});
