// src/grpc/locks.ts: one operation at a time per volume or snapshot; the second gets ABORTED at once.
import { KeyedLocks } from '../../src/grpc/locks.js';
import { codeName, csiError } from './csi-error.js';

describe('KeyedLocks', () => {
  test.each<[string, string, string]>([
    ['box/pvc-1', 'CreateVolume', 'DeleteVolume'],
    ['box/pvc-1', 'NodeStageVolume', 'NodeStageVolume'],
    ['box/.snapshots/s', 'CreateSnapshot', 'DeleteSnapshot'],
  ])('on %s, %s in progress → %s is ABORTED naming it and the key', (key, first, second) => {
    const locks = new KeyedLocks();
    locks.acquire(key, first);
    const err = csiError(() => locks.acquire(key, second));
    expect(codeName(err)).toBe('ABORTED');
    expect(err.message).toContain(first);
    expect(err.message).toContain(key);
    expect(locks.size).toBe(1);
  });

  test.each<[string, string]>([
    ['box/pvc-1', 'box/pvc-2'],
    ['box/pvc-1', 'other/pvc-1'],
    ['box/pvc-1', 'box/.snapshots/pvc-1'],
  ])('different keys do not block each other: %s and %s', (a, b) => {
    const locks = new KeyedLocks();
    locks.acquire(a, 'CreateVolume');
    expect(() => locks.acquire(b, 'CreateVolume')).not.toThrow();
    expect(locks.size).toBe(2);
  });

  test.each<[string, (locks: KeyedLocks, release: () => void) => void, number]>([
    ['release frees the key', (_, release) => release(), 0],
    ['a double release is harmless', (_, release) => (release(), release()), 0],
  ])('%s', (_, act, size) => {
    const locks = new KeyedLocks();
    const lock = locks.acquire('box/pvc-1', 'DeleteVolume');
    act(locks, lock.release);
    expect(locks.size).toBe(size);
    expect(() => locks.acquire('box/pvc-1', 'CreateVolume')).not.toThrow();
  });

  test("a stale release does not free the next holder's lock", () => {
    const locks = new KeyedLocks();
    const first = locks.acquire('box/pvc-1', 'DeleteVolume');
    first.release();
    locks.acquire('box/pvc-1', 'CreateVolume');
    first.release(); // late, duplicate release of the first holder
    const err = csiError(() => locks.acquire('box/pvc-1', 'ControllerPublishVolume'));
    expect(codeName(err)).toBe('ABORTED');
    expect(err.message).toContain('CreateVolume');
  });

  test('releasing one key leaves the others held', () => {
    const locks = new KeyedLocks();
    const a = locks.acquire('a', 'CreateVolume');
    locks.acquire('b', 'CreateVolume');
    a.release();
    expect(locks.size).toBe(1);
    expect(codeName(csiError(() => locks.acquire('b', 'DeleteVolume')))).toBe('ABORTED');
  });

  test('a call that ended keeps its lock until its work stops; the retry hears that it is still stopping', () => {
    const locks = new KeyedLocks();
    const lock = locks.acquire('box/pvc-1', 'ControllerPublishVolume');
    lock.callEnded();
    const err = csiError(() => locks.acquire('box/pvc-1', 'ControllerPublishVolume'));
    expect(codeName(err)).toBe('ABORTED');
    expect(err.message).toMatch(/ControllerPublishVolume for box\/pvc-1 ended [\d.]+ s ago but is still stopping its work/);
    lock.release();
    expect(() => locks.acquire('box/pvc-1', 'ControllerPublishVolume')).not.toThrow();
  });
});
