import type { AccessMode } from './access.js';

/**
 * How many hosts and containers may use a volume at once, for the COs that mount a volume without
 * saying how (Docker's `docker run -v`): chosen when the volume is made and kept in its record
 * (parameter dockerSharing), so that every host mounts it the same way. A volume made without one
 * is `onewriter`.
 * - onewriter:    one host at a time, any number of its containers;
 * - onewriterpod: one container at a time, anywhere;
 * - all:          any number of hosts and containers, all writing (the application coordinates);
 * - readonly:     any number of hosts and containers, none writing.
 */
export const SHARING_MODES = ['onewriter', 'onewriterpod', 'all', 'readonly'] as const;
export type Sharing = (typeof SHARING_MODES)[number];
export const DEFAULT_SHARING: Sharing = 'onewriter';
/** The record parameter that keeps a volume's sharing mode. */
export const SHARING_PARAMETER = 'dockerSharing';

const ACCESS_MODE: Record<Sharing, AccessMode> = {
  onewriter: 'SINGLE_NODE_MULTI_WRITER',
  onewriterpod: 'SINGLE_NODE_SINGLE_WRITER',
  all: 'MULTI_NODE_MULTI_WRITER',
  readonly: 'MULTI_NODE_READER_ONLY',
};

/** The CSI access mode a host stages the volume with. */
export const accessModeOf = (sharing: Sharing): AccessMode => ACCESS_MODE[sharing];
/** One container at a time (on the one host that holds the volume). */
export const oneContainer = (sharing: Sharing) => sharing === 'onewriterpod';
/** One host at a time. */
export const oneHost = (sharing: Sharing) => sharing === 'onewriter' || sharing === 'onewriterpod';
export const isSharing = (value: string): value is Sharing => (SHARING_MODES as readonly string[]).includes(value);

/** The sharing mode a record says (its parameter, else the default; a value this version does not know counts as the strictest). */
export function sharingOf(parameters: Record<string, string>): Sharing {
  const value = parameters[SHARING_PARAMETER];
  if (value === undefined || value === '') return DEFAULT_SHARING;
  return isSharing(value) ? value : 'onewriterpod';
}
