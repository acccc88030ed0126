// src/docker/options.ts, src/volumes/sharing.ts and src/docker/names.ts: what `docker volume create`
// may say, what each sharing mode means in CSI terms, and how Docker names map to tether volumes.
import { checkDockerName, DockerOptionError, parseCreateOptions, parseSize, type CreateOptions } from '../../src/docker/options.js';
import { dockerNameOf } from '../../src/docker/names.js';
import { accessModeOf, oneContainer, oneHost, SHARING_MODES, sharingOf } from '../../src/volumes/sharing.js';
import { dirForName } from '../../src/volumes/ids.js';

const failure = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(DockerOptionError);
    return (err as Error).message;
  }
  throw new Error('expected a DockerOptionError');
};

describe('parseCreateOptions: -o KEY=VALUE of docker volume create', () => {
  test.each<[string, Record<string, unknown> | null | undefined, CreateOptions]>([
    ['none (Docker sends null)', null, {}],
    ['none (an empty map)', {}, {}],
    ['a backend', { backend: 'box' }, { backend: 'box' }],
    ['an empty backend: the only one there is', { backend: '' }, {}],
    ['a size in G', { size: '10G' }, { sizeBytes: 10 * 2 ** 30 }],
    ['every option at once', { backend: 'nas', size: '512Mi', sharing: 'onewriterpod', onDelete: 'archive' }, { backend: 'nas', sizeBytes: 512 * 2 ** 20, sharing: 'onewriterpod', onDelete: 'archive' }],
    ['sharing all', { sharing: 'all' }, { sharing: 'all' }],
    ['sharing readonly', { sharing: 'readonly' }, { sharing: 'readonly' }],
  ])('%s', (_, opts, expected) => {
    expect(parseCreateOptions(opts)).toEqual(expected);
  });

  test.each<[string, Record<string, unknown>, string]>([
    ['an unknown key, with the known ones listed', { ssh_command: 'sh -c id' }, 'unknown option "ssh_command": tether accepts -o backend=…, -o size=…, -o sharing=…, -o onDelete=…'],
    ['a mount option smuggled as a key', { o: 'ProxyCommand=sh' }, 'unknown option "o"'],
    ['an unknown sharing mode (Swarm has "none")', { sharing: 'none' }, 'sharing must be one of onewriter, onewriterpod, all, readonly, got "none"'],
    ['a sharing mode in the wrong case', { sharing: 'OneWriter' }, '"OneWriter"'],
    ['a size that is no size', { size: 'big' }, 'size must be a positive number of bytes'],
    ['a zero size', { size: '0' }, 'got "0"'],
    ['a value that is not a string', { size: 10 }, 'option size must be a string'],
  ])('%s → refused, naming it', (_, opts, message) => {
    expect(failure(() => parseCreateOptions(opts))).toContain(message);
  });
});

describe('parseSize: sizes as Docker users write them (powers of 1024)', () => {
  test.each<[string, number]>([
    ['1', 1],
    ['4096', 4096],
    ['1k', 1024],
    ['1K', 1024],
    ['1KiB', 1024],
    ['1kb', 1024],
    ['10M', 10 * 2 ** 20],
    ['1.5G', 1.5 * 2 ** 30],
    ['2Gi', 2 * 2 ** 30],
    ['1T', 2 ** 40],
    [' 3 G ', 3 * 2 ** 30],
  ])('%j → %d bytes', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  test.each([[''], ['-1G'], ['G'], ['1X'], ['1e9'], ['9'.repeat(30)], ['0.0000001']])('%j is refused', (text) => {
    expect(failure(() => parseSize(text))).toContain('size must be a positive number of bytes');
  });
});

describe('checkDockerName: the names Docker itself gives volumes', () => {
  test.each([['journal'], ['Journal'], ['my_vol.2-x'], ['a1'], ['pvc-0b8c4c0e-6d8a-4b8e-9a55-0a4c0f6f2b11']])('%j is a name', (name) => {
    expect(checkDockerName(name)).toBe(name);
  });

  test.each<[unknown]>([[''], ['a'], ['-x'], ['.hidden'], ['a/b'], ['../etc'], ['a b'], ['x'.repeat(129)], [undefined], [42]])('%j is refused', (name) => {
    expect(failure(() => checkDockerName(name))).toMatch(/is not a valid volume name|is longer than 128 characters/);
  });
});

describe('sharing modes: what each asks of CSI', () => {
  test.each<[string, string, boolean, boolean]>([
    ['onewriter', 'SINGLE_NODE_MULTI_WRITER', true, false],
    ['onewriterpod', 'SINGLE_NODE_SINGLE_WRITER', true, true],
    ['all', 'MULTI_NODE_MULTI_WRITER', false, false],
    ['readonly', 'MULTI_NODE_READER_ONLY', false, false],
  ])('%s → %s, one host: %s, one container: %s', (sharing, mode, host, container) => {
    const s = sharing as (typeof SHARING_MODES)[number];
    expect(accessModeOf(s)).toBe(mode);
    expect(oneHost(s)).toBe(host);
    expect(oneContainer(s)).toBe(container);
  });

  test.each<[Record<string, string>, string]>([
    [{}, 'onewriter'],
    [{ dockerSharing: '' }, 'onewriter'],
    [{ dockerSharing: 'all' }, 'all'],
    [{ dockerSharing: 'some-later-mode' }, 'onewriterpod'],
  ])('a record with %j is mounted as %s (made elsewhere: the default; unknown: the strictest)', (parameters, sharing) => {
    expect(sharingOf(parameters)).toBe(sharing);
  });
});

describe('dockerNameOf: the name Docker sees for a tether volume', () => {
  test.each<[string, string, string]>([
    ['made by Docker with a plain name', 'journal', 'journal'],
    ['made by Docker with capitals: its directory is hashed, its name kept', 'Journal', 'Journal'],
    ['made by Kubernetes', 'pvc-0b8c4c0e-6d8a-4b8e-9a55-0a4c0f6f2b11', 'pvc-0b8c4c0e-6d8a-4b8e-9a55-0a4c0f6f2b11'],
  ])('%s', (_, name, expected) => {
    expect(dockerNameOf({ name }, dirForName(name))).toBe(expected);
  });

  test('a volume whose directory a StorageClass template named: the directory', () => {
    expect(dockerNameOf({ name: 'pvc-1' }, 'default-data-1a2b3c4d')).toBe('default-data-1a2b3c4d');
  });

  test('a CO name Docker could not use (a slash): the directory', () => {
    const dir = dirForName('team/a');
    expect(dockerNameOf({ name: 'team/a' }, dir)).toBe(dir);
  });
});
