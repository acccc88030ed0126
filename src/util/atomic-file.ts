import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * Writes a small local note (under the runtime directory: never a network mount) so that a reader —
 * this process after a crash, or another — sees the old content or the new, never half of it: a
 * temporary file of its own, renamed over the old. Directories are made 0700, files 0600.
 */
export async function writeNote(file: string, content: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(tmp, content, { mode: 0o600 });
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** True for the temporary file of a writeNote in progress (or one a crash left). */
export const isNoteTemp = (name: string) => /\.tmp(-[0-9a-f]{8})?$/.test(name);
