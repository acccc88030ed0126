import { createHash } from 'node:crypto';

/**
 * The layout of one backend's base directory:
 *   <dir>/volume.<g>.json, <dir>/data/                   a volume: its record (the highest generation g
 *                                                        is current) and its data (the workload sees data/ only)
 *   .snapshots/<dir>/snapshot.json, .snapshots/<dir>/data/   a snapshot
 *   .groups/<dir>/group.json                             a volume group snapshot (its members are snapshots)
 *   .archive/<dir>-<time>/                               volumes deleted with onDelete=archive
 *   .nodes/<node>.json                                   nodes that have registered
 * A volume or snapshot exists once its record exists: the record is written last, so a half-made
 * one is invisible and a retry finishes it.
 */
/** The record of a volume made by tether 0.1, before records had generations: generation 0. */
const LEGACY_RECORD = 'volume.json';
const GENERATION_FILE = /^volume\.([1-9]\d{0,15})\.json$/;
export const recordFile = (generation: number) => (generation === 0 ? LEGACY_RECORD : `volume.${generation}.json`);
export const generationOf = (name: string): number[] => {
  if (name === LEGACY_RECORD) return [0];
  const m = GENERATION_FILE.exec(name);
  return m ? [Number(m[1])] : [];
};
export const DATA_DIR = 'data';
/** A temporary file of an atomic write (`<file>.tmp-<random>`): renamed or linked into place, or removed. */
export const TEMP_FILE = /\.tmp-[0-9a-f]{8}$/;
export const SNAPSHOT_RECORD = 'snapshot.json';
export const GROUP_RECORD = 'group.json';
export const ARCHIVE_DIR = '.archive';
export const NODES_DIR = '.nodes';

/**
 * A file name for any node ID (up to the 256 bytes CSI allows) within NAME_MAX: plain IDs as they
 * are, others encoded, and those whose encoding would be too long by a hash (the record holds the
 * ID itself, and readNode checks it).
 */
export function nodeFile(nodeId: string): string {
  if (/^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$/.test(nodeId)) return `${nodeId}.json`;
  const encoded = Buffer.from(nodeId).toString('base64url');
  return encoded.length <= 200 ? `~${encoded}.json` : `~h-${createHash('sha256').update(nodeId).digest('hex')}.json`;
}
