// src/config.ts, the flags of the kubelet registration, the health endpoint and Docker's plugin: each rule, and the
// directory checks loadConfig makes before anything is served (a missing directory is named; a file
// that is not a stale socket at the registration socket's path is refused and left alone).
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { checkRegistrationFlags, ConfigError, loadConfig, type Config, type Mode } from '../../src/config.js';

let dir: string;
let configFile: string;
let registry: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tether-flags-'));
  configFile = path.join(dir, 'config.yaml');
  await writeFile(configFile, stringify({ backends: [{ name: 'filer', type: 'nfs', server: 'nfs.example.com', share: '/export' }] }));
  registry = path.join(dir, 'plugins_registry');
  await mkdir(registry);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** loadConfig with a valid command line plus `flags`. */
const load = (flags: string[], mode: Mode = 'node') => loadConfig(['--endpoint', 'unix:///csi/csi.sock', '--node-id', 'n1', '--mode', mode, '--config', configFile, ...flags]);

/** The ConfigError message of loadConfig (fails if it loads). */
async function refusal(flags: string[], mode: Mode = 'node'): Promise<string> {
  const err = await load(flags, mode).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConfigError);
  expect((err as Error).message).not.toContain('\n');
  return (err as Error).message;
}

describe('checkRegistrationFlags: the rules that need no file system', () => {
  test.each<[string, { dir?: string; path?: string }, Mode, RegExp | undefined]>([
    ['neither flag', {}, 'controller', undefined],
    ['a dir in node mode', { dir: '/registration' }, 'node', undefined],
    ['a dir in all mode', { dir: '/registration' }, 'all', undefined],
    ['a dir and a path', { dir: '/registration', path: '/var/lib/kubelet/plugins/x/csi.sock' }, 'node', undefined],
    ['a dir in controller mode', { dir: '/registration' }, 'controller', /--kubelet-registration-dir registers a node plugin: it needs --mode node or all/],
    ['a path without a dir', { path: '/var/lib/kubelet/plugins/x/csi.sock' }, 'node', /--kubelet-registration-path needs --kubelet-registration-dir/],
    ['an empty dir', { dir: '' }, 'node', /--kubelet-registration-dir must name a directory/],
    ['a relative path', { dir: '/registration', path: 'plugins/csi.sock' }, 'node', /--kubelet-registration-path must be an absolute path .*"plugins\/csi\.sock"/],
    ['a unix:// URL as the path', { dir: '/registration', path: 'unix:///var/lib/kubelet/plugins/x/csi.sock' }, 'node', /must be an absolute path/],
    ['a newline in the path', { dir: '/registration', path: '/a\nb' }, 'node', /must not contain control characters/],
  ])('%s', (_, flags, mode, expected) => {
    if (expected === undefined) expect(() => checkRegistrationFlags(flags, mode)).not.toThrow();
    else expect(() => checkRegistrationFlags(flags, mode)).toThrow(expected);
  });
});

describe('loadConfig: --kubelet-registration-dir and --kubelet-registration-path', () => {
  test('without them, no registration is served', async () => {
    expect((await load([])).kubeletRegistration).toBeUndefined();
  });

  test('the socket is <dir>/<driver>-reg.sock, and the kubelet is told the endpoint\'s socket path by default', async () => {
    const config: Config = await load(['--kubelet-registration-dir', registry]);
    expect(config.kubeletRegistration).toEqual({ dir: registry, socketPath: path.join(registry, 'tether.csi.dev-reg.sock'), endpoint: '/csi/csi.sock' });
  });

  test('--kubelet-registration-path and --driver-name are what GetInfo will say', async () => {
    const config = await load(['--kubelet-registration-dir', registry, '--kubelet-registration-path', '/var/lib/kubelet/plugins/x.example/csi.sock', '--driver-name', 'x.example']);
    expect(config.kubeletRegistration).toEqual({ dir: registry, socketPath: path.join(registry, 'x.example-reg.sock'), endpoint: '/var/lib/kubelet/plugins/x.example/csi.sock' });
  });

  test('the directory is resolved: a relative path, a trailing slash, a symlink', async () => {
    const link = path.join(dir, 'registry-link');
    await symlink(registry, link);
    for (const given of [`${link}/`, path.relative(process.cwd(), registry), `${registry}/../plugins_registry`]) {
      expect((await load(['--kubelet-registration-dir', given])).kubeletRegistration?.socketPath).toBe(path.join(registry, 'tether.csi.dev-reg.sock'));
    }
  });

  test('a directory that does not exist is refused, naming it', async () => {
    const missing = path.join(dir, 'no-such-dir');
    expect(await refusal(['--kubelet-registration-dir', missing])).toBe(`--kubelet-registration-dir ${missing}: no such directory (mount the kubelet's plugins_registry directory there)`);
  });

  test('a file given as the directory is refused', async () => {
    expect(await refusal(['--kubelet-registration-dir', configFile])).toMatch(/--kubelet-registration-dir \S+config\.yaml: not a directory/);
  });

  test('a file at the socket\'s path that is not a socket is refused, and left as it was', async () => {
    const other = path.join(dir, 'other-registry');
    await mkdir(other);
    const squatter = path.join(other, 'tether.csi.dev-reg.sock');
    await writeFile(squatter, 'precious');
    expect(await refusal(['--kubelet-registration-dir', other])).toMatch(/exists and is a regular file, not a socket: tether replaces only a stale socket there/);
    expect(await readFile(squatter, 'utf8')).toBe('precious');
  });

  test('in controller mode the flag is refused', async () => {
    expect(await refusal(['--kubelet-registration-dir', registry], 'controller')).toMatch(/needs --mode node or all/);
  });
});

describe('loadConfig: --health-address', () => {
  test.each<[string[], string | undefined]>([
    [[], undefined],
    [['--health-address', '0.0.0.0:9808'], '0.0.0.0:9808'],
    [['--health-address', '[::]:29810', '--metrics-address', '0.0.0.0:9810'], '[::]:29810'],
  ])('%j is served at %s', async (flags, expected) => {
    expect((await load(flags)).healthAddress).toBe(expected);
  });

  test.each<[string[], RegExp]>([
    [['--health-address', '9808'], /--health-address must be HOST:PORT \(for example 0\.0\.0\.0:9808\), got "9808"/],
    [['--health-address', '0.0.0.0:99999'], /--health-address must be HOST:PORT/],
    [['--health-address', '0.0.0.0:9810', '--metrics-address', '127.0.0.1:9810'], /--health-address and --metrics-address must use different ports, both use 9810/],
  ])('%j is refused', async (flags, expected) => {
    expect(await refusal(flags)).toMatch(expected);
  });
});

describe("loadConfig: --mode docker (Docker's volume plugin)", () => {
  const docker = (flags: string[]) => loadConfig(['--mode', 'docker', '--config', configFile, ...flags]);
  const dockerRefusal = async (flags: string[]) => {
    const err = await docker(flags).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).not.toContain('\n');
    return (err as Error).message;
  };

  test('needs no endpoint and no node ID: the socket is /run/docker/plugins/tether.sock, the host its name', async () => {
    const config = await docker([]);
    expect(config).toMatchObject({ mode: 'docker', socketPath: '/run/docker/plugins/tether.sock', nodeId: os.hostname(), orchestrator: 'docker' });
    expect(config.docker).toEqual({ pluginName: 'tether', mountRoot: '/var/lib/tether/docker', mountWaitMs: 90_000, strayAfterMs: 60_000 });
  });

  test('every flag is taken', async () => {
    const config = await docker(['--docker-plugin-name', 'tether-ci', '--docker-mount-root', '/srv/tether/', '--docker-mount-wait', '2.5', '--node-id', 'host-a']);
    expect(config).toMatchObject({ socketPath: '/run/docker/plugins/tether-ci.sock', nodeId: 'host-a', docker: { pluginName: 'tether-ci', mountRoot: '/srv/tether', mountWaitMs: 2500 } });
    expect((await docker(['--endpoint', 'unix:///tmp/p.sock'])).socketPath).toBe('/tmp/p.sock');
  });

  test.each<[string[], RegExp]>([
    [['--docker-plugin-name', 'Tether'], /--docker-plugin-name must be lowercase letters/],
    [['--docker-plugin-name', '../x'], /--docker-plugin-name must be/],
    [['--docker-mount-root', 'relative'], /--docker-mount-root must be an absolute directory other than \//],
    [['--docker-mount-root', '/'], /--docker-mount-root must be an absolute directory other than \//],
    [['--docker-mount-wait', '120'], /--docker-mount-wait must be 0 to 100 seconds \(Docker gives a mount 2 minutes\), got "120"/],
    [['--docker-mount-wait', 'soon'], /--docker-mount-wait must be 0 to 100 seconds/],
    [['--health-address', '0.0.0.0:9808'], /--health-address does not work with --mode docker/],
    [['--mount-keeper', 'unix:///k.sock'], /--mount-keeper does not work with --mode docker/],
    [['--kubelet-registration-dir', '/tmp'], /--kubelet-registration-dir does not work with --mode docker/],
    [['--orchestrator', 'swarm'], /--mode docker is Docker's plugin: --orchestrator must be docker or left out/],
  ])('%j is refused', async (flags, expected) => {
    expect(await dockerRefusal(flags)).toMatch(expected);
  });

  test("Docker's flags with another mode are refused", async () => {
    expect(await refusal(['--docker-mount-wait', '5'])).toMatch(/--docker-mount-wait works with --mode docker only \(got --mode node\)/);
  });

  test('--orchestrator names the words of the messages: kubernetes by default, swarm for a Swarm CSI plugin', async () => {
    expect((await load([])).orchestrator).toBe('kubernetes');
    expect((await load(['--orchestrator', 'swarm'])).orchestrator).toBe('swarm');
    expect(await refusal(['--orchestrator', 'docker'])).toMatch(/--orchestrator must be kubernetes or swarm \(Docker's own plugin is --mode docker\), got "docker"/);
    expect(await refusal(['--orchestrator', 'nomad'])).toMatch(/got "nomad"/);
  });
});
