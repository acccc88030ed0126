import { z } from 'zod';
import { ACCESS_MODES, type AccessMode } from './access.js';

/**
 * The records tether keeps next to the data, on the backend, written atomically: they are the only
 * state there is, so any tether process can restart (or the storage move) without losing anything.
 */
const publication = z.object({
  nodeId: z.string().min(1),
  accessMode: z.enum(ACCESS_MODES as [AccessMode, ...AccessMode[]]),
  readonly: z.boolean(),
});

/** A node that staged the volume with no ControllerPublish for it (a CO that does not call it): see decideNodeStage. */
const claim = publication.extend({ claimedAt: z.string() });

/**
 * The lease of a node that staged the volume exclusively (see lease.ts): renewed by bumping
 * `renewals`; `id` is new each time a lease is taken, so a newcomer never mistakes one for another.
 */
const lease = publication.extend({
  id: z.string().min(1),
  renewals: z.number().int().nonnegative(),
  termMs: z.number().int().positive(),
  takenAt: z.string(),
});

/** A lease taken over from a node that stopped renewing it, kept for the operator (the last few). */
const takeover = z.object({ from: z.string(), to: z.string(), at: z.string(), watchedMs: z.number().int().nonnegative() });

export const volumeRecord = z.object({
  kind: z.literal('tether.volume/v1'),
  /** Bumped by every change: a change is the exclusive creation of the next generation (VolumeStore.updateVolume). */
  generation: z.number().int().nonnegative().default(0),
  /** Random per write: tells a writer its own record from another's. */
  writeId: z.string().default(''),
  name: z.string().min(1),
  capacityBytes: z.number().int().nonnegative(),
  parameters: z.record(z.string(), z.string()),
  onDelete: z.enum(['delete', 'retain', 'archive']),
  contentSource: z.object({ type: z.enum(['snapshot', 'volume']), id: z.string() }).nullable(),
  createdAt: z.string(),
  publications: z.array(publication),
  claims: z.array(claim).default([]),
  leases: z.array(lease).default([]),
  takeovers: z.array(takeover).default([]),
  /**
   * Set by CreateVolume before it makes data/ (an empty directory or a copy of the source), cleared
   * when data/ is complete: a half-made volume is invisible, its retry finishes it, DeleteVolume
   * and the collector of orphans remove it.
   */
  creatingAt: z.string().optional(),
  /** Set by DeleteVolume with onDelete=retain: the data stays in place, the volume is gone for the CO. */
  retainedAt: z.string().optional(),
  /** Set by DeleteVolume before it removes or archives anything: the volume is gone for the CO; a retry finishes the job. */
  deletingAt: z.string().optional(),
});

export const snapshotRecord = z.object({
  kind: z.literal('tether.snapshot/v1'),
  name: z.string().min(1),
  sourceVolumeId: z.string().min(1),
  sizeBytes: z.number().int().nonnegative(),
  createdAt: z.string(),
  /** Set for the members of a volume group snapshot: they are deleted with their group only. */
  groupSnapshotId: z.string().optional(),
});

export const groupRecord = z.object({
  kind: z.literal('tether.group-snapshot/v1'),
  name: z.string().min(1),
  sourceVolumeIds: z.array(z.string()),
  snapshotIds: z.array(z.string()),
  createdAt: z.string(),
});

export const nodeRecord = z.object({
  kind: z.literal('tether.node/v1'),
  nodeId: z.string().min(1),
  /** NodeGetInfo's max_volumes_per_node; 0 means no limit. ControllerPublish enforces it. */
  maxVolumes: z.number().int().nonnegative().default(0),
  seenAt: z.string(),
});

export type VolumeRecord = z.infer<typeof volumeRecord>;
export type Claim = z.infer<typeof claim>;
export type Lease = z.infer<typeof lease>;
export type Takeover = z.infer<typeof takeover>;
/** A record as a handler writes it: the store sets generation and writeId. */
export type NewVolumeRecord = Omit<VolumeRecord, 'generation' | 'writeId'>;
export type SnapshotRecord = z.infer<typeof snapshotRecord>;
export type NodeRecord = z.infer<typeof nodeRecord>;
export type GroupRecord = z.infer<typeof groupRecord>;

/** Parses a record file; a damaged one is reported with where it is, never silently replaced. */
export function parseRecord<T>(schema: z.ZodType<T>, bytes: Buffer, where: string): T {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new Error(`record ${where} is not valid JSON; repair or remove it by hand`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw new Error(`record ${where} is damaged (${parsed.error.issues[0]?.message ?? 'invalid'}); repair or remove it by hand`);
  return parsed.data;
}

export const encodeRecord = (record: object) => Buffer.from(`${JSON.stringify(record, null, 2)}\n`);
