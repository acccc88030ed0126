import { createHash } from 'node:crypto';
import { BACKEND_NAME } from '../backends/backend.js';

/**
 * IDs name the backend and the directory under its base, and nothing else:
 *   volume   `<backend>/<dir>`              → <base>/<dir>
 *   snapshot `<backend>/.snapshots/<dir>`   → <base>/.snapshots/<dir>
 *   group    `<backend>/.groups/<dir>`      → <base>/.groups/<dir> (a volume group snapshot)
 * A directory name starts with a letter or digit and holds only [a-z0-9._-], so an ID can never
 * climb out of the base (no `/`, no leading dot) nor collide with tether's own dot-directories.
 * At most 32 + 1 + 11 + 1 + 80 = 125 bytes: under the 128 that COs are asked to accept.
 */
const DIR_NAME = /^[a-z0-9][a-z0-9._-]{0,79}$/;
export const SNAPSHOTS_DIR = '.snapshots';
export const GROUPS_DIR = '.groups';

export interface VolumeRef {
  backend: string;
  dir: string;
}

/** The directory for a CO-given name: the name itself when it is a plain one, else a readable prefix plus a hash. */
export function dirForName(name: string): string {
  if (DIR_NAME.test(name) && !name.includes('..')) return name;
  const readable = sanitize(name).slice(0, 40);
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 16);
  return readable ? `${readable}-${hash}` : hash;
}

/**
 * The directory for a volume whose StorageClass names it from PVC metadata (volumeNameTemplate):
 * the rendered name made safe, plus a hash of the CO's unique volume name, so two PVCs whose names
 * render alike still get two directories, and a retry gets the same one.
 */
export function dirForTemplate(rendered: string, name: string): string {
  const readable = sanitize(rendered).slice(0, 60).replace(/[._-]+$/, '');
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 8);
  return readable ? `${readable}-${hash}` : hash;
}

const sanitize = (s: string) =>
  s
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/\.{2,}/g, '.')
    .replace(/^[^a-z0-9]+/, '');

export const volumeId = (ref: VolumeRef) => `${ref.backend}/${ref.dir}`;
export const snapshotId = (ref: VolumeRef) => `${ref.backend}/${SNAPSHOTS_DIR}/${ref.dir}`;
export const groupSnapshotId = (ref: VolumeRef) => `${ref.backend}/${GROUPS_DIR}/${ref.dir}`;

/** The volume an ID names, or undefined for an ID tether cannot have made (which therefore does not exist). */
export function parseVolumeId(id: string): VolumeRef | undefined {
  const m = /^([^/]+)\/([^/]+)$/.exec(id);
  return m && BACKEND_NAME.test(m[1]!) && isDirName(m[2]!) ? { backend: m[1]!, dir: m[2]! } : undefined;
}

export const parseSnapshotId = (id: string) => parseUnder(id, SNAPSHOTS_DIR);
export const parseGroupSnapshotId = (id: string) => parseUnder(id, GROUPS_DIR);

function parseUnder(id: string, sub: string): VolumeRef | undefined {
  const [backend, middle, dir, ...rest] = id.split('/');
  return middle === sub && !rest.length && BACKEND_NAME.test(backend ?? '') && isDirName(dir ?? '') ? { backend: backend!, dir: dir! } : undefined;
}

/** True for a directory name tether can have made (a volume's, a snapshot's): anything else in the base is not tether's. */
export const isDirName = (dir: string) => DIR_NAME.test(dir) && !dir.includes('..');
