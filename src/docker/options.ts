import { DEFAULT_SHARING, isSharing, SHARING_MODES, type Sharing } from '../volumes/sharing.js';

/**
 * The rules of Docker's side, as pure functions: which names Docker gives volumes, what `docker
 * volume create -o KEY=VALUE` may say (the sharing modes themselves are volumes/sharing.ts'). A
 * problem is a DockerOptionError with a message for the person who typed the command.
 */
export class DockerOptionError extends Error {}

/** Docker's own rule for named volumes (volume/validate: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`). */
const DOCKER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
const MAX_NAME_BYTES = 128;

export function checkDockerName(name: unknown): string {
  if (typeof name !== 'string' || !DOCKER_NAME.test(name)) {
    throw new DockerOptionError(`"${String(name)}" is not a valid volume name: use at least two characters of letters, digits, "_", "." and "-", starting with a letter or digit`);
  }
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) throw new DockerOptionError(`volume name "${name.slice(0, 40)}…" is longer than ${MAX_NAME_BYTES} characters`);
  return name;
}

export const isDockerName = (name: string) => DOCKER_NAME.test(name) && Buffer.byteLength(name) <= MAX_NAME_BYTES;

export function parseSharing(value: string | undefined): Sharing {
  if (value === undefined || value === '') return DEFAULT_SHARING;
  if (!isSharing(value)) throw new DockerOptionError(`sharing must be one of ${SHARING_MODES.join(', ')}, got "${value}"`);
  return value;
}

/** What `-o` options ask of a new volume. */
export interface CreateOptions {
  backend?: string;
  sizeBytes?: number;
  /** Unset: the default (onewriter) for a new volume; an existing volume keeps its own. */
  sharing?: Sharing;
  onDelete?: string;
}

const KEYS = ['backend', 'size', 'sharing', 'onDelete'] as const;

/** `docker volume create -o …`: every key checked, an unknown one refused with the list of known ones. */
export function parseCreateOptions(opts: Record<string, unknown> | null | undefined): CreateOptions {
  const out: CreateOptions = {};
  for (const [key, value] of Object.entries(opts ?? {})) {
    if (!(KEYS as readonly string[]).includes(key)) throw new DockerOptionError(`unknown option "${key}": tether accepts -o ${KEYS.map((k) => `${k}=…`).join(', -o ')}`);
    if (typeof value !== 'string') throw new DockerOptionError(`option ${key} must be a string`);
    if (key === 'backend') out.backend = value || undefined;
    else if (key === 'size') out.sizeBytes = parseSize(value);
    else if (key === 'sharing') out.sharing = parseSharing(value);
    else out.onDelete = value || undefined;
  }
  return out;
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50 };

/** A size as Docker writes them: bytes, or a number with k, M, G, T or P (powers of 1024; "Gi", "GB" alike). */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:ib|i|b)?\s*$/i.exec(text);
  const exact = m ? Number(m[1]) * UNITS[m[2]!.toLowerCase()]! : NaN;
  const bytes = Math.ceil(exact);
  if (!(exact >= 1) || !Number.isSafeInteger(bytes)) throw new DockerOptionError(`size must be a positive number of bytes, optionally with k, M, G, T or P (for example 10G), got "${text}"`);
  return bytes;
}
