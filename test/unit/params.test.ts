// src/volumes/params.ts: StorageClass parameters, mutable parameters and snapshot parameters.
import { status } from '@grpc/grpc-js';
import { checkSnapshotParameters, parseMutableParameters, parseVolumeParameters, renderNameTemplate, type VolumeParameters } from '../../src/volumes/params.js';
import { dirForTemplate, parseVolumeId } from '../../src/volumes/ids.js';
import { codeName, csiError } from './csi-error.js';

type Params = Record<string, string> | undefined;

describe('parseVolumeParameters', () => {
  test.each<[string, Params, Params, VolumeParameters]>([
    ['nothing', undefined, undefined, { backend: undefined, onDelete: 'delete' }],
    ['empty maps', {}, {}, { backend: undefined, onDelete: 'delete' }],
    ['a backend', { backend: 'box' }, undefined, { backend: 'box', onDelete: 'delete' }],
    ['an empty backend means "any"', { backend: '' }, undefined, { backend: undefined, onDelete: 'delete' }],
    ['onDelete=delete', { onDelete: 'delete' }, undefined, { backend: undefined, onDelete: 'delete' }],
    ['onDelete=retain', { onDelete: 'retain' }, undefined, { backend: undefined, onDelete: 'retain' }],
    ['onDelete=archive', { backend: 'box', onDelete: 'archive' }, undefined, { backend: 'box', onDelete: 'archive' }],
    ['onDelete as a mutable parameter', { backend: 'box' }, { onDelete: 'retain' }, { backend: 'box', onDelete: 'retain' }],
    ['the mutable onDelete wins over the plain one', { onDelete: 'delete' }, { onDelete: 'archive' }, { backend: undefined, onDelete: 'archive' }],
    ['a Docker sharing mode (kept in the record, read by the Docker plugin)', { dockerSharing: 'onewriterpod' }, undefined, { backend: undefined, onDelete: 'delete' }],
    ['every Docker sharing mode is known', { dockerSharing: 'readonly', backend: 'box' }, undefined, { backend: 'box', onDelete: 'delete' }],
    [
      'external-provisioner metadata keys are accepted',
      {
        'csi.storage.k8s.io/pvc/name': 'data',
        'csi.storage.k8s.io/pvc/namespace': 'default',
        'csi.storage.k8s.io/pv/name': 'pvc-1',
        backend: 'box',
      },
      undefined,
      { backend: 'box', onDelete: 'delete' },
    ],
  ])('%s', (_, params, mutable, expected) => {
    expect(parseVolumeParameters(params, mutable)).toEqual(expected);
  });

  test.each<[string, Params, Params, string]>([
    ['an unknown key', { size: '5Gi' }, undefined, 'size'],
    ['a typo of onDelete', { ondelete: 'retain' }, undefined, 'ondelete'],
    ['a typo of backend', { Backend: 'box' }, undefined, 'Backend'],
    ['a key that only looks like CO metadata', { 'csi.storage.k8s.io': 'x' }, undefined, 'csi.storage.k8s.io'],
    ['another CO prefix', { 'csi.storage.k8s.ioX/pvc/name': 'x' }, undefined, 'csi.storage.k8s.ioX/pvc/name'],
    ['an unknown onDelete value', { onDelete: 'shred' }, undefined, 'shred'],
    ['onDelete in the wrong case', { onDelete: 'Retain' }, undefined, 'Retain'],
    ['an empty onDelete', { onDelete: '' }, undefined, 'onDelete'],
    ['backend as a mutable parameter', undefined, { backend: 'box' }, 'backend'],
    ['an unknown mutable parameter', undefined, { speed: 'fast' }, 'speed'],
    ['CO metadata as a mutable parameter', undefined, { 'csi.storage.k8s.io/pvc/name': 'x' }, 'csi.storage.k8s.io/pvc/name'],
    ['a bad mutable onDelete', undefined, { onDelete: 'never' }, 'never'],
    ['an unknown Docker sharing mode', { dockerSharing: 'none' }, undefined, 'dockerSharing must be one of onewriter, onewriterpod, all, readonly, got "none"'],
    ['a Docker sharing mode in the wrong case', { dockerSharing: 'OneWriter' }, undefined, 'OneWriter'],
    ['the Docker sharing mode as a mutable parameter', undefined, { dockerSharing: 'all' }, 'dockerSharing'],
  ])('%s → INVALID_ARGUMENT naming it', (_, params, mutable, named) => {
    const err = csiError(() => parseVolumeParameters(params, mutable));
    expect(codeName(err)).toBe('INVALID_ARGUMENT');
    expect(err.message).toContain(named);
  });
});

describe('parseMutableParameters', () => {
  test.each<[Params, { onDelete?: string }]>([
    [undefined, {}],
    [{}, {}],
    [{ onDelete: 'retain' }, { onDelete: 'retain' }],
    [{ onDelete: 'archive' }, { onDelete: 'archive' }],
    [{ onDelete: 'delete' }, { onDelete: 'delete' }],
  ])('%j → %j', (mutable, expected) => {
    expect(parseMutableParameters(mutable)).toEqual(expected);
  });

  test.each<[Params]>([[{ backend: 'box' }], [{ onDelete: 'bogus' }], [{ onDelete: 'retain', extra: 'x' }], [{ 'csi.storage.k8s.io/pvc/name': 'x' }]])(
    '%j → INVALID_ARGUMENT',
    (mutable) => {
      expect(codeName(csiError(() => parseMutableParameters(mutable)))).toBe('INVALID_ARGUMENT');
    },
  );
});

describe('checkSnapshotParameters', () => {
  test.each<[Params]>([
    [undefined],
    [{}],
    [{ 'csi.storage.k8s.io/volumesnapshot/name': 's', 'csi.storage.k8s.io/volumesnapshot/namespace': 'ns', 'csi.storage.k8s.io/volumesnapshotcontent/name': 'c' }],
  ])('%j is accepted', (params) => {
    expect(() => checkSnapshotParameters(params)).not.toThrow();
  });

  test.each<[Params, string]>([
    [{ backend: 'box' }, 'backend'],
    [{ onDelete: 'retain' }, 'onDelete'],
    [{ 'csi.storage.k8s.io/volumesnapshot/name': 's', compress: 'yes' }, 'compress'],
  ])('%j → INVALID_ARGUMENT naming %s', (params, named) => {
    const err = csiError(() => checkSnapshotParameters(params));
    expect(codeName(err)).toBe('INVALID_ARGUMENT');
    expect(err.message).toContain(named);
  });
});

describe('volumeNameTemplate', () => {
  const meta = { 'csi.storage.k8s.io/pvc/name': 'data-db-0', 'csi.storage.k8s.io/pvc/namespace': 'shop', 'csi.storage.k8s.io/pv/name': 'pvc-1234' };

  test.each<[string, string]>([
    ['${pvc.metadata.namespace}-${pvc.metadata.name}', 'shop-data-db-0'],
    ['${pv.metadata.name}', 'pvc-1234'],
    ['fixed', 'fixed'],
  ])('%s renders as %s', (template, rendered) => {
    expect(renderNameTemplate(template, meta)).toBe(rendered);
    expect(parseVolumeParameters({ volumeNameTemplate: template, ...meta }, undefined).directory).toBe(rendered);
  });

  test.each<[string, Record<string, string>, RegExp]>([
    ['${pvc.metadata.labels}', meta, /unknown variable/],
    ['${pvc.metadata.name}', {}, /--extra-create-metadata/],
    ['${pvc.metadata.name', meta, /unclosed/],
  ])('%s is INVALID_ARGUMENT', (template, params, message) => {
    const err = csiError(() => renderNameTemplate(template, params));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.message).toMatch(message);
  });
});

describe('dirForTemplate', () => {
  test.each<[string, string]>([
    ['shop-data-db-0', 'pvc-a'],
    ['Shop/../../etc', 'pvc-b'],
    ['..', 'pvc-c'],
    ['x'.repeat(300), 'pvc-d'],
    ['', 'pvc-e'],
  ])('%j stays a safe, bounded directory name', (rendered, name) => {
    const dir = dirForTemplate(rendered, name);
    expect(parseVolumeId(`box/${dir}`)).toEqual({ backend: 'box', dir });
    expect(dir.length).toBeLessThanOrEqual(69);
  });

  test('two PVCs that render alike get two directories; a retry gets the same one', () => {
    expect(dirForTemplate('a-b-c', 'pvc-1')).not.toBe(dirForTemplate('a-b-c', 'pvc-2'));
    expect(dirForTemplate('a-b-c', 'pvc-1')).toBe(dirForTemplate('a-b-c', 'pvc-1'));
    expect(dirForTemplate('shop-data-db-0', 'pvc-1')).toMatch(/^shop-data-db-0-[0-9a-f]{8}$/);
  });
});
