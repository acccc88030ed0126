// src/volumes/params.ts: StorageClass parameters, mutable parameters and snapshot parameters.
import { checkSnapshotParameters, parseMutableParameters, parseVolumeParameters, type VolumeParameters } from '../../src/volumes/params.js';
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
