import type { IdentityRpcs } from './grpc/rpc.js';

export const VERSION = '0.1.0';

/**
 * The Identity service. Probe answers from memory: it must stay fast and never touch a backend or a
 * mount, so that a hung server cannot make the liveness probe restart a healthy plugin.
 */
export function identityService(driverName: string, hasController: boolean): IdentityRpcs {
  return {
    GetPluginInfo: { quiet: true, handle: async () => ({ name: driverName, vendor_version: VERSION, manifest: {} }) },
    GetPluginCapabilities: {
      quiet: true,
      handle: async () => ({
        capabilities: [
          ...(hasController ? [{ service: { type: 'CONTROLLER_SERVICE' as const } }, { service: { type: 'GROUP_CONTROLLER_SERVICE' as const } }] : []),
          { volume_expansion: { type: 'ONLINE' as const } },
        ],
      }),
    },
    Probe: { quiet: true, handle: async () => ({ ready: { value: true } }) },
  };
}
