import { status } from '@grpc/grpc-js';
import { CsiError } from '../csi/errors.js';
import type { VolumeRecord } from '../volumes/records.js';
import type { Sharing } from '../volumes/sharing.js';

/**
 * What Docker users are told, in Docker's words: hosts and containers, never CSI's nodes, stages and
 * publications. Docker shows the text after "VolumeDriver.<Call>:" or "error while mounting volume".
 */
export class DockerError extends Error {
  /** The CSI status behind it, if any (for the metrics), else "UNKNOWN". */
  constructor(
    message: string,
    readonly code = 'UNKNOWN',
  ) {
    super(message);
    this.name = 'DockerError';
  }
}

/** The hosts other than `self` that hold the volume (mounted it with no ControllerPublish, hold its lease, or are published to: Kubernetes nodes). */
export function otherHolders(record: Pick<VolumeRecord, 'claims' | 'leases' | 'publications'>, self: string): string[] {
  return [...new Set([...record.claims, ...record.leases, ...record.publications].map((h) => h.nodeId))].filter((n) => n !== self);
}

const SHARING_RULE: Record<Sharing, string> = {
  onewriter: 'its sharing mode onewriter allows one host at a time',
  onewriterpod: 'its sharing mode onewriterpod allows one container at a time',
  all: 'its sharing mode is all',
  readonly: 'its sharing mode is readonly',
};

/** Another host holds the volume: who, the rule, and what the user can do. */
export function inUseElsewhere(name: string, hosts: readonly string[], sharing: Sharing, record: Pick<VolumeRecord, 'leases'>): string {
  const leased = record.leases.find((l) => hosts.includes(l.nodeId));
  const down = leased
    ? `; if ${leased.nodeId} is down, another host can take the volume over once ${leased.nodeId}'s writer lease has gone ${Math.round(leased.termMs / 1000)} s without renewal (${leased.nodeId} stops writing to it before then)`
    : '';
  return `volume ${name} is in use on host ${hosts.join(', ')} and ${SHARING_RULE[sharing]}: stop the containers using it there first (docker ps --filter volume=${name})${down}`;
}

export const inUseHere = (name: string, host: string, containers: number, sharing: Sharing) =>
  `volume ${name} is in use by ${containers === 1 ? 'another container' : `${containers} other containers`} on this host (${host}) and ${SHARING_RULE[sharing]}: stop ${containers === 1 ? 'it' : 'them'} first`;

/** `docker volume rm` while containers on this host still have the volume mounted (Docker checks its own first; these are ones it lost track of). */
export const mountedHere = (name: string, host: string, containers: number) =>
  `volume ${name} is in use on this host (${host}) by ${containers === 1 ? 'a container' : `${containers} containers`}: stop ${containers === 1 ? 'it' : 'them'} first`;

/** A CSI failure as Docker shows it: its message (already one a person can act on), its code for the metrics. */
export function asDockerError(err: unknown): Error {
  if (err instanceof CsiError) return new DockerError(err.message, status[err.code] ?? 'UNKNOWN');
  return err as Error;
}

export const notFoundMessage = (name: string) => `volume ${name} does not exist on any of tether's backends`;
