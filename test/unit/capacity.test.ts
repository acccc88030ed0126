// src/volumes/capacity.ts: int64 byte counts and the size recorded for a new volume.
import { chooseCapacity, fitsRange, GiB, toBytes, type CapacityRange } from '../../src/volumes/capacity.js';
import { codeName, csiError } from './csi-error.js';

const MiB = 1024 ** 2;

describe('toBytes', () => {
  test.each<[string | number | undefined, number]>([
    [undefined, 0],
    ['0', 0],
    [0, 0],
    ['1073741824', GiB],
    [5 * GiB, 5 * GiB],
    [String(Number.MAX_SAFE_INTEGER), Number.MAX_SAFE_INTEGER],
  ])('%j → %d', (value, bytes) => {
    expect(toBytes(value, 'capacity_range.required_bytes')).toBe(bytes);
  });

  test.each<[string | number]>([['-1'], [-1], ['1.5'], [0.5], ['abc'], ['1e400'], [String(2 ** 63)], ['9007199254740993'], [Number.NaN], [Infinity]])(
    '%j → INVALID_ARGUMENT naming the field',
    (value) => {
      const err = csiError(() => toBytes(value, 'capacity_range.limit_bytes'));
      expect(codeName(err)).toBe('INVALID_ARGUMENT');
      expect(err.message).toContain('capacity_range.limit_bytes');
    },
  );
});

describe('chooseCapacity', () => {
  test.each<[string, CapacityRange | null | undefined, number, number]>([
    ['no range → the 1 GiB default', undefined, 0, GiB],
    ['null range → the default', null, 0, GiB],
    ['empty range (proto-loader zeros) → the default', { required_bytes: '0', limit_bytes: '0' }, 0, GiB],
    ['required only', { required_bytes: String(5 * GiB) }, 0, 5 * GiB],
    ['required below the default is kept (not rounded up)', { required_bytes: String(10 * MiB) }, 0, 10 * MiB],
    ['limit below the default, nothing required → the limit', { limit_bytes: String(100 * MiB) }, 0, 100 * MiB],
    ['limit above the default, nothing required → the default', { limit_bytes: String(10 * GiB) }, 0, GiB],
    ['required equals limit', { required_bytes: String(2 * GiB), limit_bytes: String(2 * GiB) }, 0, 2 * GiB],
    ['required within limit', { required_bytes: String(2 * GiB), limit_bytes: String(3 * GiB) }, 0, 2 * GiB],
    ['minimum above the default, no range', undefined, 3 * GiB, 3 * GiB],
    ['minimum above required', { required_bytes: String(MiB) }, 2 * MiB, 2 * MiB],
    ['required above minimum', { required_bytes: String(4 * GiB) }, 2 * GiB, 4 * GiB],
    ['minimum within the limit', { limit_bytes: String(4 * GiB) }, 2 * GiB, 2 * GiB],
    ['minimum equals the limit', { limit_bytes: String(2 * GiB) }, 2 * GiB, 2 * GiB],
    ['minimum below a small limit, nothing required → the limit', { limit_bytes: String(100 * MiB) }, 10 * MiB, 100 * MiB],
    ['numbers as well as strings', { required_bytes: 7 * MiB, limit_bytes: 8 * MiB }, 0, 7 * MiB],
  ])('%s', (_, range, minimum, expected) => {
    expect(chooseCapacity(range, minimum)).toBe(expected);
  });

  test.each<[string, CapacityRange, number, string]>([
    ['required above limit', { required_bytes: String(2 * GiB), limit_bytes: String(GiB) }, 0, 'INVALID_ARGUMENT'],
    ['negative required', { required_bytes: '-5' }, 0, 'INVALID_ARGUMENT'],
    ['negative limit', { limit_bytes: '-5' }, 0, 'INVALID_ARGUMENT'],
    ['a source bigger than the limit', { limit_bytes: String(GiB) }, 2 * GiB, 'OUT_OF_RANGE'],
    ['a source bigger than the limit, required fits', { required_bytes: String(MiB), limit_bytes: String(GiB) }, GiB + 1, 'OUT_OF_RANGE'],
  ])('%s → %s', (_, range, minimum, code) => {
    expect(codeName(csiError(() => chooseCapacity(range, minimum)))).toBe(code);
  });
});

describe('fitsRange', () => {
  test.each<[number, CapacityRange | null | undefined, boolean]>([
    [GiB, undefined, true],
    [GiB, null, true],
    [GiB, { required_bytes: '0', limit_bytes: '0' }, true],
    [GiB, { required_bytes: String(GiB) }, true],
    [GiB, { required_bytes: String(GiB + 1) }, false],
    [GiB, { limit_bytes: String(GiB) }, true],
    [GiB, { limit_bytes: String(GiB - 1) }, false],
    [GiB, { required_bytes: String(MiB), limit_bytes: String(2 * GiB) }, true],
    [3 * GiB, { required_bytes: String(MiB), limit_bytes: String(2 * GiB) }, false],
    [MiB - 1, { required_bytes: String(MiB), limit_bytes: String(2 * GiB) }, false],
  ])('capacity %d in %j → %s', (capacity, range, fits) => {
    expect(fitsRange(capacity, range)).toBe(fits);
  });
});
