// Handler tests: tether's real controller RPCs, through the real request pipeline, on real files.
// Each backend is a LocalFs (the file operations the NFS backend runs on its export mount) over a
// temporary directory; requests are encoded and decoded with the proto's own codec, so a handler
// sees exactly what grpc-js hands it (defaults filled in, int64 as strings, enums as names).
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { status } from '@grpc/grpc-js';
import { pino } from 'pino';
import type { Backend } from '../../src/backends/backend.js';
import { LocalFs } from '../../src/backends/local-fs.js';
import { NFS_OPTIONS } from '../../src/backends/nfs-options.js';
import { checkOptions } from '../../src/backends/options.js';
import { CsiError } from '../../src/csi/errors.js';
import { groupControllerService } from '../../src/controller/group-snapshots.js';
import { controllerService } from '../../src/controller/service.js';
import { KeyedLocks } from '../../src/grpc/locks.js';
import { Metrics } from '../../src/grpc/metrics.js';
import { inProcessCsi, type ControllerInput as Input, type GroupInput } from '../../src/grpc/in-process.js';
import type { PipelineDeps } from '../../src/grpc/pipeline.js';
import { loadCsiRoot } from '../../src/grpc/proto.js';
import { buildRequestLimits } from '../../src/grpc/limits.js';
import type { ControllerRpcs, GroupControllerRpcs } from '../../src/grpc/rpc.js';
import { Backends } from '../../src/volumes/registry.js';
import { DEFAULT_LEASE_TERMS, LeaseWatch } from '../../src/volumes/lease.js';

/** A backend whose base directory is `root` on this machine, with the NFS option allowlist. */
export function localBackend(name: string, root: string): Backend {
  return {
    name,
    type: 'nfs',
    fs: new LocalFs(root, async () => ({ root, release: () => undefined, stale: () => undefined })),
    checkMountOptions: (options) => checkOptions(NFS_OPTIONS, options),
    mountSpec: () => {
      throw new Error('the controller mounts nothing');
    },
    close: async () => undefined,
  };
}

type Method = keyof ControllerRpcs;
type GroupMethod = keyof GroupControllerRpcs;
type Output<M extends Method> = Awaited<ReturnType<ControllerRpcs[M]['handle']>>;
type GroupOutput<M extends GroupMethod> = Awaited<ReturnType<GroupControllerRpcs[M]['handle']>>;
/** Each call's deadline, as a CO's would be. */
const CALL_MS = 30_000;

/** A controller on temporary backends, called as the gRPC server would call it. */
export interface TestController {
  /** The base directory of each backend, by name. */
  roots: Record<string, string>;
  backends: Backends;
  call<M extends Method>(method: M, request: Input<M>): Promise<Output<M>>;
  callGroup<M extends GroupMethod>(method: M, request: GroupInput<M>): Promise<GroupOutput<M>>;
  /** The gRPC status name the call fails with (fails the test if it succeeds). */
  failure<M extends Method>(method: M, request: Input<M>): Promise<{ code: string; message: string }>;
  /** Moves the controller's monotonic clock (its watch over leases) forward. */
  advanceClock(ms: number): void;
  /** Registers a node plugin with every backend, as NodeGetInfo does. */
  registerNode(nodeId: string, maxVolumes?: number): Promise<void>;
  cleanup(): Promise<void>;
}

const REQUEST_LIMITS = buildRequestLimits(loadCsiRoot());

export async function startController(names: string[] = ['local']): Promise<TestController> {
  const roots: Record<string, string> = {};
  for (const name of names) roots[name] = await mkdtemp(path.join(os.tmpdir(), `tether-${name}-`));
  const backends = new Backends(names.map((n) => localBackend(n, roots[n]!)));
  let monotonic = 1_000_000;
  const deps = { backends, now: () => new Date('2026-01-02T03:04:05.678Z'), watch: new LeaseWatch(DEFAULT_LEASE_TERMS.termMs, () => monotonic), metrics: new Metrics() };
  const controller = controllerService(deps);
  const group = groupControllerService(deps);
  const pipeline: PipelineDeps = { log: pino({ level: 'silent' }), metrics: new Metrics(), locks: new KeyedLocks(), redact: (_, m) => m, checkLimits: REQUEST_LIMITS, maxCallMs: 30_000 };
  const csi = inProcessCsi({ Controller: controller, GroupController: group }, pipeline);
  const call = <M extends Method>(method: M, request: Input<M>) => csi.controller(method, request, CALL_MS);
  const callGroup = <M extends GroupMethod>(method: M, request: GroupInput<M>) => csi.groupController(method, request, CALL_MS);
  return {
    roots,
    backends,
    call,
    callGroup,
    async failure(method, request) {
      const err = await call(method, request).then(
        () => undefined,
        (e: unknown) => e,
      );
      if (!(err instanceof CsiError)) throw new Error(`${method} was expected to fail, but ${err === undefined ? 'it succeeded' : `threw ${String(err)}`}`);
      return { code: CODE_NAMES[err.code] ?? String(err.code), message: err.message };
    },
    advanceClock: (ms) => {
      monotonic += ms;
    },
    registerNode: async (nodeId, maxVolumes = 0) => {
      for (const store of backends.all()) await store.registerNode(nodeId, maxVolumes, new Date());
    },
    cleanup: async () => {
      for (const root of Object.values(roots)) await rm(root, { recursive: true, force: true });
    },
  };
}

const CODE_NAMES = status as unknown as Record<number, string>;

/** A mount VolumeCapability with access mode `mode`. */
export const mountCapability = (mode: string, mountFlags: string[] = []) => ({ access_mode: { mode: mode as never }, mount: { fs_type: '', mount_flags: mountFlags } });
