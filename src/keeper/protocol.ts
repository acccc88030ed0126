import path from 'node:path';
import { loadPackageDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { PROTO_DIR } from '../util/package-dir.js';
import type { ProtoGrpcType } from './generated/keeper.js';

export type { FenceRequest__Output as FenceRequest } from './generated/tether/keeper/v1/FenceRequest.js';
export type { FenceResponse } from './generated/tether/keeper/v1/FenceResponse.js';
export type { HealthResponse } from './generated/tether/keeper/v1/HealthResponse.js';
export type { ListRequest__Output as ListRequest } from './generated/tether/keeper/v1/ListRequest.js';
export type { MountKeeperClient, MountKeeperHandlers } from './generated/tether/keeper/v1/MountKeeper.js';
export type { MountRequest, MountRequest__Output } from './generated/tether/keeper/v1/MountRequest.js';
export type { MountResponse } from './generated/tether/keeper/v1/MountResponse.js';
export type { MountState, MountState__Output } from './generated/tether/keeper/v1/MountState.js';
export type { UnmountRequest__Output as UnmountRequest } from './generated/tether/keeper/v1/UnmountRequest.js';

/** proto/keeper.proto: the mount keeper's own protocol (package tether.keeper.v1). */
export const KEEPER_PROTO = path.join(PROTO_DIR, 'keeper.proto');

/** The same loader options as CSI's (and as `npm run gen:keeper` generates the types with). */
const LOADER_OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true } as const;

/** The MountKeeper service, typed from the generated code: its definition and its client constructor. */
export function loadKeeperService() {
  return (loadPackageDefinition(loadSync(KEEPER_PROTO, LOADER_OPTIONS)) as unknown as ProtoGrpcType).tether.keeper.v1.MountKeeper;
}
