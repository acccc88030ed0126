// The container image's recipe. This machine has no container engine, so the Dockerfile is checked
// in two ways that need none: its text (pinned base, the programs tether runs, the entrypoint, every
// COPY source present), and its runtime stage rebuilt in a scratch directory the way the image lays
// it out — production dependencies only (npm ci --omit=dev), the compiled driver, the proto — where
// the entrypoint must start and answer a bad flag with its one-line error.
import { cp, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

let text: string;
const instructions = () =>
  text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));

beforeAll(async () => {
  text = await readFile(path.join(ROOT, 'Dockerfile'), 'utf8');
});

describe('Dockerfile', () => {
  test('multi-stage, both stages on one Node 20 slim base pinned to an exact release; no "latest", no HEALTHCHECK', () => {
    const base = /^ARG NODE_IMAGE=(\S+)$/m.exec(text)?.[1];
    expect(base).toMatch(/^node:20\.\d+\.\d+-bookworm-slim$/);
    const froms = instructions().filter((l) => l.startsWith('FROM '));
    expect(froms).toEqual(['FROM ${NODE_IMAGE} AS build', 'FROM ${NODE_IMAGE}']);
    expect(text).not.toMatch(/:latest\b/);
    expect(instructions().some((l) => l.startsWith('HEALTHCHECK'))).toBe(false);
  });

  test('installs the programs tether runs: sshfs, fuse3, mount.nfs, util-linux, ssh, ss', () => {
    const install = instructions().find((l) => l.includes('apt-get install'));
    for (const pkg of ['sshfs', 'fuse3', 'nfs-common', 'util-linux', 'openssh-client', 'iproute2']) expect(install).toMatch(new RegExp(`\\b${pkg}\\b`));
  });

  test('the entrypoint is the compiled driver, and every COPY from the build context exists', async () => {
    expect(instructions()).toContain('ENTRYPOINT ["node", "/app/dist/src/main.js"]');
    const sources = instructions()
      .filter((l) => l.startsWith('COPY ') && !l.includes('--from='))
      .flatMap((l) => l.split(/\s+/).slice(1, -1));
    expect(sources.length).toBeGreaterThan(3);
    for (const source of sources) await stat(path.join(ROOT, source));
  });

  test('the runtime stage\'s layout starts with production dependencies only', async () => {
    const app = await mkdtemp(path.join(tmpdir(), 'tether-image-'));
    try {
      for (const file of ['package.json', 'package-lock.json']) await cp(path.join(ROOT, file), path.join(app, file));
      await execa('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: app, timeout: 180_000 });
      await cp(path.join(ROOT, 'dist/src'), path.join(app, 'dist/src'), { recursive: true });
      await cp(path.join(ROOT, 'proto'), path.join(app, 'proto'), { recursive: true });
      expect(await stat(path.join(app, 'node_modules/jest')).catch(() => undefined)).toBeUndefined();
      const run = await execa('node', [path.join(app, 'dist/src/main.js'), '--mode', 'all'], { cwd: '/', timeout: 30_000, reject: false, env: { NODE_ENV: 'production' } });
      expect(run.exitCode).toBe(2);
      expect(run.stderr.trim()).toMatch(/^tether-csi: --endpoint is required/);
    } finally {
      await rm(app, { recursive: true, force: true });
    }
  }, 240_000);
});
