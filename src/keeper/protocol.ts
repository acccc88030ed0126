import { clientOfService } from '../grpc/proto.js';
import type { ProtoGrpcType } from './generated/keeper.js';
import { ROOT_JSON } from './generated/keeper-root.js';

export type { FenceRequest__Output as FenceRequest } from './generated/tether/keeper/v1/FenceRequest.js';
export type { FenceResponse } from './generated/tether/keeper/v1/FenceResponse.js';
export type { HealthResponse } from './generated/tether/keeper/v1/HealthResponse.js';
export type { ListRequest__Output as ListRequest } from './generated/tether/keeper/v1/ListRequest.js';
export type { MountKeeperClient, MountKeeperHandlers } from './generated/tether/keeper/v1/MountKeeper.js';
export type { MountRequest, MountRequest__Output } from './generated/tether/keeper/v1/MountRequest.js';
export type { MountResponse } from './generated/tether/keeper/v1/MountResponse.js';
export type { MountState, MountState__Output } from './generated/tether/keeper/v1/MountState.js';
export type { UnmountRequest__Output as UnmountRequest } from './generated/tether/keeper/v1/UnmountRequest.js';


/**
 * The MountKeeper service, typed from the generated code: its definition and its client constructor,
 * made from the descriptor `npm run gen:keeper` parsed out of keeper.proto, with CSI's loader options.
 */
export function loadKeeperService() {
  return clientOfService<ProtoGrpcType['tether']['keeper']['v1']['MountKeeper']>(ROOT_JSON, 'tether.keeper.v1.MountKeeper');
}
