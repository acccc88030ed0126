import { DATA_DIR } from '../volumes/layout.js';
import { sharingOf } from '../volumes/sharing.js';
import { otherHolders } from './messages.js';
import { dockerNameOf, type NamedVolume } from './names.js';

/** A volume as Docker's Get and List answer it; `docker volume inspect` shows Status as it is. */
export interface DockerVolume {
  Name: string;
  Mountpoint: string;
  CreatedAt: string;
  Status: Record<string, unknown>;
}

export interface HostView {
  host: string;
  /** Where the volume is mounted on this host ("" if it is not). */
  mountpoint: string;
  /** Containers on this host with it mounted (Docker's mount IDs noted). */
  containersHere: number;
}

/** What an operator wants from `docker volume inspect`: where the data is, how it may be shared, and who holds it now. */
export function describeVolume(name: string | undefined, { id, found }: NamedVolume, view: HostView): DockerVolume {
  const { record, store, ref } = found;
  const holders = otherHolders(record, '');
  return {
    Name: name ?? dockerNameOf(record, ref.dir),
    Mountpoint: view.mountpoint,
    CreatedAt: record.createdAt,
    Status: {
      volumeId: id,
      backend: store.backend.name,
      server: `${store.where(ref.dir)}/${DATA_DIR}`,
      sizeBytes: record.capacityBytes,
      sharing: sharingOf(record.parameters),
      onDelete: record.onDelete,
      hosts: holders,
      ...(view.containersHere ? { containersOnThisHost: view.containersHere } : {}),
      ...(record.leases.length ? { writerLease: record.leases.map((l) => ({ host: l.nodeId, takenAt: l.takenAt, renewals: l.renewals, termSeconds: l.termMs / 1000 })) } : {}),
    },
  };
}
