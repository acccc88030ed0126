import { dirForName, isDirName, volumeId } from '../volumes/ids.js';
import type { VolumeRecord } from '../volumes/records.js';
import type { Backends, FoundVolume } from '../volumes/registry.js';
import { isDockerName } from './options.js';

/**
 * Docker knows a volume by a name; tether by `<backend>/<directory>`. The directory of a volume made
 * by name is that name made safe (ids.ts dirForName), so a volume's Docker name is the name it was
 * made with whenever that leads back to its directory — `docker volume create journal`, or a
 * Kubernetes volume such as pvc-… — and otherwise its directory (a StorageClass's volumeNameTemplate
 * names directories after claims). Either way the name finds the volume again, on any backend.
 */
export function dockerNameOf(record: Pick<VolumeRecord, 'name'>, dir: string): string {
  return dirForName(record.name) === dir && isDockerName(record.name) ? record.name : dir;
}

export interface NamedVolume {
  id: string;
  found: FoundVolume;
}

/** The live volume Docker calls `name`: on the first backend, in the config's order, that has it. */
export async function findByName(backends: Backends, name: string, signal?: AbortSignal): Promise<NamedVolume | undefined> {
  const dirs = [...new Set([dirForName(name), ...(isDirName(name) ? [name] : [])])];
  for (const store of backends.all()) {
    for (const dir of dirs) {
      const id = volumeId({ backend: store.backend.name, dir });
      const found = await backends.findVolume(id, signal);
      if (found && dockerNameOf(found.record, dir) === name) return { id, found };
    }
  }
  return undefined;
}
