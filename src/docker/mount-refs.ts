import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { isNoteTemp, writeNote } from '../util/atomic-file.js';

/** One volume's mounts on this host: Docker's mount IDs (one per container mount), with when each came. */
export interface VolumeRefs {
  volumeId: string;
  /** The name Docker knows the volume by. */
  name: string;
  mounts: Record<string, string>;
}

/**
 * Which containers on this host have each volume mounted, by Docker's mount ID, noted under the
 * runtime directory (a tmpfs: the notes go with the mounts at reboot) and written atomically, so
 * that a restarted plugin knows them. A set, not a counter: Docker mounts again with an ID it used
 * before (a container restarted after a daemon restart), and never unmounts some (the containers a
 * daemon restart stopped), which the plugin finds out by looking (see users.ts).
 */
export class MountRefs {
  constructor(private readonly dir: string) {}

  async get(volumeId: string): Promise<VolumeRefs | undefined> {
    const text = await readFile(this.fileOf(volumeId), 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (text === undefined) return undefined;
    const refs = parse(text);
    return refs?.volumeId === volumeId ? refs : undefined;
  }

  /** Every volume with mounts noted on this host. */
  async all(): Promise<VolumeRefs[]> {
    const names = (await readdir(this.dir).catch(() => [])).filter((n) => !isNoteTemp(n));
    const found = await Promise.all(names.map((n) => readFile(path.join(this.dir, n), 'utf8').then(parse, () => undefined)));
    return found.filter((r): r is VolumeRefs => r !== undefined);
  }

  async add(volumeId: string, name: string, mountId: string, now: Date): Promise<VolumeRefs> {
    const current = (await this.get(volumeId)) ?? { volumeId, name, mounts: {} };
    const next = { ...current, name, mounts: { ...current.mounts, [mountId]: current.mounts[mountId] ?? now.toISOString() } };
    await writeNote(this.fileOf(volumeId), JSON.stringify(next));
    return next;
  }

  /** Takes these mount IDs off the volume's note (the note goes with the last); answers what is left. */
  async remove(volumeId: string, mountIds: readonly string[]): Promise<VolumeRefs | undefined> {
    const current = await this.get(volumeId);
    if (!current) return undefined;
    const mounts = Object.fromEntries(Object.entries(current.mounts).filter(([id]) => !mountIds.includes(id)));
    if (!Object.keys(mounts).length) {
      await rm(this.fileOf(volumeId), { force: true });
      return undefined;
    }
    const next = { ...current, mounts };
    await writeNote(this.fileOf(volumeId), JSON.stringify(next));
    return next;
  }

  private fileOf(volumeId: string): string {
    return path.join(this.dir, `${Buffer.from(volumeId).toString('base64url')}.json`);
  }
}

function parse(text: string): VolumeRefs | undefined {
  try {
    const r = JSON.parse(text) as VolumeRefs;
    return typeof r.volumeId === 'string' && typeof r.name === 'string' && r.mounts && typeof r.mounts === 'object' ? r : undefined;
  } catch {
    return undefined;
  }
}
