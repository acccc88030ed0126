// src/grpc/proto.ts: the services tether serves are built from its one parse of the proto, without
// @grpc/proto-loader — and must put the same bytes on the wire and hand handlers the same objects
// as proto-loader's definitions (which the CSI client of the tests and every CO stub agree with).
import type { MethodDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { CSI_PROTO, LOADER_OPTIONS, loadCsiRoot, loadCsiServices } from '../../src/grpc/proto.js';

type Methods = Record<string, MethodDefinition<unknown, unknown> & { originalName?: string }>;
const ours = loadCsiServices() as unknown as Record<string, Methods>;
const reference = loadSync(CSI_PROTO, LOADER_OPTIONS) as unknown as Record<string, Methods>;

const SAMPLES: Record<string, { req: object; res: object }> = {
  Probe: { req: {}, res: { ready: { value: true } } },
  NodeGetCapabilities: { req: {}, res: { capabilities: [{ rpc: { type: 'STAGE_UNSTAGE_VOLUME' } }, { rpc: { type: 'VOLUME_MOUNT_GROUP' } }] } },
  CreateVolume: {
    req: { name: 'pvc-1', capacity_range: { required_bytes: '1073741824' }, volume_capabilities: [{ access_mode: { mode: 'SINGLE_NODE_WRITER' }, mount: { fs_type: '', mount_flags: ['ro'] } }], parameters: { a: 'b' }, secrets: { k: 'v' } },
    res: { volume: { volume_id: 'box/pvc-1', capacity_bytes: '1073741824', volume_context: { backend: 'box' }, content_source: null, accessible_topology: [] } },
  },
  NodeStageVolume: {
    req: { volume_id: 'box/pvc-1', staging_target_path: '/s', volume_capability: { access_mode: { mode: 'SINGLE_NODE_MULTI_WRITER' }, mount: { fs_type: '', mount_flags: [], volume_mount_group: '2000' } }, publish_context: {}, volume_context: { x: 'y' } },
    res: {},
  },
  ListVolumes: { req: { max_entries: 2, starting_token: 't' }, res: { entries: [{ volume: { volume_id: 'a', capacity_bytes: '1' }, status: { published_node_ids: ['n'], volume_condition: { abnormal: false, message: '' } } }], next_token: '' } },
};

describe('the CSI services built from the one parse', () => {
  const services = ['Identity', 'Controller', 'Node', 'GroupController'] as const;

  test.each(services)('%s: the same methods, paths, streaming flags and alias names as proto-loader', (service) => {
    const mine = ours[service]!;
    const theirs = reference[`csi.v1.${service}`]!;
    expect(Object.keys(mine).sort()).toEqual(Object.keys(theirs).sort());
    for (const [name, m] of Object.entries(theirs)) {
      expect({ path: mine[name]!.path, requestStream: mine[name]!.requestStream, responseStream: mine[name]!.responseStream, originalName: mine[name]!.originalName })
        .toEqual({ path: m.path, requestStream: m.requestStream, responseStream: m.responseStream, originalName: m.originalName });
    }
  });

  const find = (name: string, defs: Record<string, Methods>) => Object.values(defs).map((s) => s[name]).find(Boolean)!;
  test.each(Object.keys(SAMPLES))('%s: the same bytes both ways, and the same objects decoded (defaults, int64 as strings, enums as names)', (name) => {
    const mine = find(name, ours);
    const theirs = find(name, Object.fromEntries(services.map((s) => [s, reference[`csi.v1.${s}`]!])));
    const { req, res } = SAMPLES[name]!;
    const reqBytes = theirs.requestSerialize(req);
    expect(Buffer.from(mine.requestSerialize(req))).toEqual(Buffer.from(reqBytes));
    expect(mine.requestDeserialize(reqBytes)).toEqual(theirs.requestDeserialize(reqBytes));
    const resBytes = theirs.responseSerialize(res);
    expect(Buffer.from(mine.responseSerialize(res))).toEqual(Buffer.from(resBytes));
    expect(mine.responseDeserialize(resBytes)).toEqual(theirs.responseDeserialize(resBytes));
  });

  test('an array where a message belongs is refused as proto-loader refuses it', () => {
    expect(() => ours.Identity!.Probe!.requestSerialize([] as never)).toThrow(/expected object with ProbeRequest structure, got array/);
  });

  test('the proto is parsed once per process', () => {
    expect(loadCsiRoot()).toBe(loadCsiRoot());
  });
});
