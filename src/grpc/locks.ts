import { aborted } from '../csi/errors.js';

/**
 * One operation at a time per key (a volume or snapshot): a second call while the first runs gets
 * ABORTED at once, as the CSI spec asks, instead of queueing behind a call that may hang.
 */
export class KeyedLocks {
  private readonly held = new Map<string, string>();

  /** Takes the lock or throws ABORTED naming the operation in progress; returns the release function. */
  acquire(key: string, operation: string): () => void {
    const holder = this.held.get(key);
    if (holder !== undefined) {
      throw aborted(`${holder} is already in progress for ${key}; retry when it finishes`);
    }
    this.held.set(key, operation);
    let released = false;
    return () => {
      if (!released) this.held.delete(key);
      released = true;
    };
  }

  get size(): number {
    return this.held.size;
  }
}
