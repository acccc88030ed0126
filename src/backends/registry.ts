import { invalid } from '../grpc/errors.js';
import { VolumeStore } from '../volumes/store.js';
import type { Backend } from './backend.js';

/** The configured backends by name, each with its volume store. */
export class Backends {
  private readonly stores = new Map<string, VolumeStore>();

  constructor(backends: readonly Backend[]) {
    for (const b of backends) this.stores.set(b.name, new VolumeStore(b));
  }

  /** The store of a backend named in an ID, or undefined (so the ID names nothing that exists). */
  get(name: string): VolumeStore | undefined {
    return this.stores.get(name);
  }

  /** The backend a StorageClass asks for: by name, or the only one there is. */
  choose(name: string | undefined): VolumeStore {
    if (name) {
      const store = this.stores.get(name);
      if (!store) throw invalid(`parameter backend="${name}" names no configured backend; configured: ${this.names().join(', ')}`);
      return store;
    }
    if (this.stores.size === 1) return [...this.stores.values()][0]!;
    throw invalid(`parameter "backend" is required when more than one backend is configured (${this.names().join(', ')})`);
  }

  all(): VolumeStore[] {
    return [...this.stores.values()];
  }

  names(): string[] {
    return [...this.stores.keys()];
  }

  async close(): Promise<void> {
    await Promise.all(this.all().map((s) => s.backend.close()));
  }
}
