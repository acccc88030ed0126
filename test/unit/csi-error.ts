// Shared by the unit tests: run something that must fail and hand back the CsiError it threw.
import { status } from '@grpc/grpc-js';
import { CsiError } from '../../src/csi/errors.js';

export { status };

/** The CsiError `fn` throws; fails the test if it returns or throws anything else. */
export function csiError(fn: () => unknown): CsiError {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  return asCsiError(thrown);
}

/** The CsiError the promise rejects with; fails the test if it resolves or rejects with anything else. */
export async function csiErrorAsync(promise: Promise<unknown>): Promise<CsiError> {
  let thrown: unknown;
  try {
    await promise;
  } catch (err) {
    thrown = err;
  }
  return asCsiError(thrown);
}

function asCsiError(thrown: unknown): CsiError {
  if (thrown === undefined) throw new Error('expected a CsiError, but nothing was thrown');
  if (!(thrown instanceof CsiError)) throw new Error(`expected a CsiError, got ${String(thrown)}`);
  return thrown;
}

/** `status` names for readable failures: expect(codeName(err)).toBe('INVALID_ARGUMENT'). */
export const codeName = (err: CsiError) => status[err.code];
