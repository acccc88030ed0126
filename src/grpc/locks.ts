import { aborted } from '../csi/errors.js';

/** A held lock: released when the call's work has stopped, not merely when the call has ended. */
export interface Lock {
  /** The call has been answered (deadline, cancel) but its handler is still finishing. */
  callEnded(): void;
  release(): void;
}

/**
 * One operation at a time per key (a volume or snapshot): a second call while the first runs gets
 * ABORTED at once, as the CSI spec asks, instead of queueing behind a call that may hang. A call
 * whose deadline passed keeps the lock until its handler has stopped (every backend request checks
 * the call's signal, so that is soon): a retry must never run beside the work it retries.
 */
export class KeyedLocks {
  private readonly held = new Map<string, { operation: string; endedAt?: number }>();

  /** Takes the lock or throws ABORTED naming the operation in progress. */
  acquire(key: string, operation: string): Lock {
    const holder = this.held.get(key);
    if (holder?.endedAt !== undefined) {
      const seconds = ((Date.now() - holder.endedAt) / 1000).toFixed(1);
      throw aborted(`${holder.operation} for ${key} ended ${seconds} s ago but is still stopping its work; retry shortly`);
    }
    if (holder) throw aborted(`${holder.operation} is already in progress for ${key}; retry when it finishes`);
    const entry: { operation: string; endedAt?: number } = { operation };
    this.held.set(key, entry);
    return {
      callEnded: () => {
        entry.endedAt ??= Date.now();
      },
      release: () => {
        if (this.held.get(key) === entry) this.held.delete(key);
      },
    };
  }

  get size(): number {
    return this.held.size;
  }
}
