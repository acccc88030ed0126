import type { Rpc } from './grpc/pipeline.js';

export const VERSION = '0.1.0';

/**
 * The Identity service. Probe answers from memory: it must stay fast and never touch a backend or a
 * mount, so that a hung server cannot make the liveness probe restart a healthy plugin.
 */
export function identityRpcs(driverName: string, hasController: boolean): Record<string, Rpc> {
  return {
    GetPluginInfo: { quiet: true, handle: async () => ({ name: driverName, vendor_version: VERSION, manifest: {} }) },
    GetPluginCapabilities: {
      quiet: true,
      handle: async () => ({
        capabilities: [
          ...(hasController ? [{ service: { type: 'CONTROLLER_SERVICE' } }, { service: { type: 'GROUP_CONTROLLER_SERVICE' } }] : []),
          { volume_expansion: { type: 'ONLINE' } },
        ],
      }),
    },
    Probe: { quiet: true, handle: async () => ({ ready: { value: true } }) },
  };
}
