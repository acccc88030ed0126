// Fuzzed request objects for any CSI method, generated from the request type's fields as the proto
// declares them (protobufjs reflection), so every field of every method is covered and a field added
// to the proto is fuzzed without a change here. Fields the driver reads as IDs, names or paths get
// values of their own: valid IDs of the test's real volumes and snapshots in a share of the calls,
// so those calls get past NOT_FOUND with hostile values in their other fields.
import type protobuf from 'protobufjs';
import { drawPath, PATH_FIELDS, type PathPlan } from './paths.js';
import type { Prng } from './prng.js';
import { Budget, BUDGET_TIERS, hostileEnum, hostileInt32, hostileInt64, hostileString, type Drawn } from './values.js';

/** The real objects the test made before fuzzing; their IDs are what "valid" means. */
export interface Fixtures {
  volumeIds: readonly string[];
  /** The access mode each of volumeIds was made with (same order): what a proper request asks for it. */
  accessModes: readonly string[];
  snapshotIds: readonly string[];
  groupSnapshotIds: readonly string[];
  nodeId: string;
}

/**
 * How a call's fields are drawn: `sane` — a proper request (exercises real staging, publishing,
 * snapshots); `valid-ids` — real IDs, hostile everything else; `hostile` — hostile or mangled IDs too.
 */
export type Mode = 'sane' | 'valid-ids' | 'hostile';

export interface Generated {
  request: Record<string, unknown>;
  mode: Mode;
  /** `field=kind` for each value that was not sane: what a failure report shows instead of the values. */
  notes: string[];
}

type IdKind = 'volume' | 'snapshot' | 'group' | 'node';

/** Request fields the driver reads as IDs, by name (any depth: VolumeSource.volume_id too). */
const ID_FIELDS: Record<string, IdKind> = {
  volume_id: 'volume',
  source_volume_id: 'volume',
  source_volume_ids: 'volume',
  snapshot_id: 'snapshot',
  snapshot_ids: 'snapshot',
  group_snapshot_id: 'group',
  node_id: 'node',
};

const SANE_ACCESS_MODES = ['SINGLE_NODE_WRITER', 'SINGLE_NODE_READER_ONLY', 'MULTI_NODE_READER_ONLY', 'MULTI_NODE_SINGLE_WRITER', 'MULTI_NODE_MULTI_WRITER', 'SINGLE_NODE_SINGLE_WRITER', 'SINGLE_NODE_MULTI_WRITER'];
/** Keys the driver gives a meaning to in `parameters` (src/volumes/params.ts), so hostile values reach its parser. */
const KNOWN_PARAMETER_KEYS = ['backend', 'onDelete', 'volumeNameTemplate', 'csi.storage.k8s.io/pvc/name', 'csi.storage.k8s.io/pvc/namespace', 'csi.storage.k8s.io/pv/name'];
/** mount_flags that try to smuggle options into sshfs/ssh (all harmless if they got through). */
const HOSTILE_MOUNT_FLAGS = ['ssh_command=true', 'ProxyCommand=true', 'IdentityFile=/etc/shadow', 'allow_other', '-o', 'ro,ssh_command=true', 'dev', 'suid', 'uid=0'];
const MAX_DEPTH = 5;
const HUGE_COUNT = 10_000;
/** What a 10,000-entry map and a 10,000-item list cost of the request's budget (see values.ts). */
const HUGE_MAP_CHARS = 240_000;
const HUGE_LIST_CHARS = 300_000;
/** Map keys and values this long are noted by kind: long values are what tends to break things. */
const LONG_CHARS = 256;

/** Draws one request; the state of a single call's generation. */
class Drawer {
  readonly notes: string[] = [];

  constructor(
    private readonly prng: Prng,
    private readonly mode: Mode,
    private readonly fixtures: Fixtures,
    private readonly paths: PathPlan,
    private readonly budget: Budget,
  ) {}

  /** How likely a field is to get a sane value: always in sane calls, sometimes otherwise. */
  private get saneShare(): number {
    return { sane: 1, 'valid-ids': 0.45, hostile: 0.15 }[this.mode];
  }

  message(type: protobuf.Type, where: string, depth: number): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    // Path fields come last: whether they may leave the tree depends on the volume_id drawn first.
    const fields = [...type.fieldsArray].sort((a, b) => Number(isPath(a.name)) - Number(isPath(b.name)));
    // A sane request sets one member of a oneof; the others may set several ("wrong nesting": the decoder keeps the last).
    const oneofChoice = new Map(type.oneofsArray.map((o) => [o.name, this.prng.pick(o.fieldsArray).name]));
    for (const field of fields) {
      if (this.mode === 'sane' && field.partOf && oneofChoice.get(field.partOf.name) !== field.name) continue;
      if (!this.prng.chance(this.mode === 'sane' ? 0.95 : 0.75)) continue;
      out[field.name] = this.field(field, `${where}${field.name}`, depth, out);
    }
    return out;
  }

  private field(field: protobuf.Field, where: string, depth: number, siblings: Record<string, unknown>): unknown {
    if (field.map) return this.map(field.name, where);
    if (field.repeated) return this.repeated(field, where, depth);
    return this.single(field, where, depth, siblings);
  }

  private single(field: protobuf.Field, where: string, depth: number, siblings: Record<string, unknown>): unknown {
    const id = ID_FIELDS[field.name];
    if (id) return this.id(id, where);
    if (field.name === 'volume_capability' && this.mode === 'sane') return saneCapability(this.prng, this.fixtures.accessModes[this.fixtures.volumeIds.indexOf(String(siblings.volume_id))]);
    if (isPath(field.name)) return this.mode === 'sane' ? this.sanePath(field.name, siblings.volume_id) : this.note(where, drawPath(this.prng, this.paths, field.name, siblings.volume_id, this.budget));
    const resolved = field.resolvedType;
    if (resolved && 'values' in resolved) return this.enumValue(resolved, where);
    if (resolved && 'fieldsArray' in resolved) return this.nested(resolved, where, depth);
    return this.scalar(field, where);
  }

  private id(kind: IdKind, where: string): string {
    const valid = this.validId(kind);
    const validShare = { sane: 1, 'valid-ids': 0.9, hostile: 0.1 }[this.mode];
    if (valid !== undefined && this.prng.chance(validShare)) return valid;
    if (valid !== undefined && this.prng.chance(0.4)) return this.note(where, mangleId(this.prng, valid));
    return this.note(where, hostileString(this.prng, this.budget));
  }

  /**
   * A proper request's path: fixture volume k is staged at staging path k and published at target k
   * or the last target, so that sane stage, publish and their undoing meet the same paths again.
   */
  private sanePath(field: string, volumeId: unknown): string {
    const k = Math.max(0, this.fixtures.volumeIds.indexOf(String(volumeId))) % this.paths.staging.length;
    if (field !== 'target_path') return this.paths.staging[k]!;
    return this.prng.pick([this.paths.targets[k]!, this.paths.targets.at(-1)!]);
  }

  private validId(kind: IdKind): string | undefined {
    const pool = { volume: this.fixtures.volumeIds, snapshot: this.fixtures.snapshotIds, group: this.fixtures.groupSnapshotIds, node: [this.fixtures.nodeId] }[kind];
    return pool.length ? this.prng.pick(pool) : undefined;
  }

  private enumValue(type: protobuf.Enum, where: string): string | number {
    const names = Object.keys(type.values).filter((n) => n !== 'UNKNOWN');
    if (this.prng.chance(this.saneShare)) return this.prng.pick(names);
    const drawn = hostileEnum(this.prng, Object.keys(type.values));
    return drawn.kind === 'enum-valid' ? drawn.value : this.note(where, drawn);
  }

  /** A nested message: usually drawn field by field, sometimes empty or null (proto3 cannot tell them apart from unset, the driver must). */
  private nested(type: protobuf.Type, where: string, depth: number): unknown {
    if (depth >= MAX_DEPTH) return null;
    if (type.name === 'VolumeCapability' && this.prng.chance(this.saneShare)) return saneCapability(this.prng);
    if (this.mode !== 'sane' && this.prng.chance(0.1)) return this.note(where, this.prng.pick([{ value: {}, kind: 'empty-message' }, { value: null, kind: 'null-message' }]));
    return this.message(type, `${where}.`, depth + 1);
  }

  private scalar(field: protobuf.Field, where: string): unknown {
    const sane = this.prng.chance(this.saneShare);
    switch (field.type) {
      case 'bool':
        return this.prng.chance(0.5);
      case 'int64':
      case 'uint64':
        return sane ? this.prng.pick(['0', '1048576', '1073741824']) : this.note(where, hostileInt64(this.prng));
      case 'int32':
        return sane ? this.prng.range(0, 3) : this.note(where, hostileInt32(this.prng));
      case 'string':
        return sane ? saneString(this.prng, field.name) : this.note(where, this.stringFor(field.name));
      default:
        throw new Error(`fuzz: no generator for ${field.type} (${where})`);
    }
  }

  private stringFor(name: string): Drawn<string> {
    if (name === 'fs_type' && this.prng.chance(0.3)) return { value: this.prng.pick(['ext4', 'nfs', 'fuse.sshfs', 'xfs', 'proc']), kind: 'fs-type' };
    return hostileString(this.prng, this.budget);
  }

  private map(name: string, where: string): Record<string, string> {
    if (this.prng.chance(this.saneShare)) return saneMap(this.prng, name);
    const shape = this.prng.weighted<string>([[4, 'small'], [3, 'known-keys'], [this.budget.fits(HUGE_MAP_CHARS) ? 4 : 0, 'huge-10k'], [1, 'empty']]);
    if (shape === 'empty') return {};
    if (shape === 'huge-10k' && this.budget.take(HUGE_MAP_CHARS)) {
      this.notes.push(`${where}=map-huge-10k`);
      return Object.fromEntries(Array.from({ length: HUGE_COUNT }, (_, i) => [`key-${i}`, `value-${i}`]));
    }
    this.notes.push(`${where}=map-${shape}`);
    const keys = shape === 'known-keys' ? KNOWN_PARAMETER_KEYS.filter(() => this.prng.chance(0.5)) : [];
    while (keys.length < 1 + this.prng.int(3)) keys.push(this.mapString(`${where} key`));
    return Object.fromEntries(keys.map((key) => [key, this.mapString(`${where}[${short(key)}]`)]));
  }

  /** A key or value of a hostile map; only the long ones are noted (the map's own note says the rest). */
  private mapString(where: string): string {
    const drawn = hostileString(this.prng, this.budget);
    if (drawn.value.length >= LONG_CHARS) this.notes.push(`${where}=${drawn.kind}`);
    return drawn.value;
  }

  private repeated(field: protobuf.Field, where: string, depth: number): unknown[] {
    // A proper request: no mount flags (the backend decides), one or two of anything else.
    if (this.mode === 'sane') return field.name === 'mount_flags' ? [] : Array.from({ length: this.prng.range(1, 2) }, () => this.single(field, where, depth, {}));
    if (field.name === 'mount_flags' && this.prng.chance(0.4)) {
      const flags = [this.prng.pick(HOSTILE_MOUNT_FLAGS)];
      this.notes.push(`${where}=${flags[0]}`);
      return flags;
    }
    if (this.budget.fits(HUGE_LIST_CHARS) && this.prng.chance(0.3)) {
      this.budget.take(HUGE_LIST_CHARS);
      return this.hugeRepeated(field, where);
    }
    const count = this.prng.weighted<number>([[3, 0], [5, 1], [3, this.prng.range(2, 5)]]);
    return Array.from({ length: count }, () => this.single(field, where, depth, {}));
  }

  /** 10,000 small elements: a copy of one, so the size stays under the budget. */
  private hugeRepeated(field: protobuf.Field, where: string): unknown[] {
    this.notes.push(`${where}=repeated-10k`);
    const resolved = field.resolvedType;
    let element: unknown = 'x';
    if (ID_FIELDS[field.name]) element = this.validId(ID_FIELDS[field.name]!) ?? 'x';
    else if (resolved && 'fieldsArray' in resolved) element = resolved.name === 'VolumeCapability' ? saneCapability(this.prng) : {};
    return Array.from({ length: HUGE_COUNT }, () => element);
  }

  private note<T>(where: string, drawn: Drawn<T>): T {
    this.notes.push(`${where}=${drawn.kind}`);
    return drawn.value;
  }
}

const isPath = (name: string) => (PATH_FIELDS as readonly string[]).includes(name);

/** A valid ID made slightly wrong: the cases an ID parser gets wrong. */
function mangleId(prng: Prng, id: string): Drawn<string> {
  const slash = id.indexOf('/');
  return prng.pick<Drawn<string>>([
    { value: `${id}/..`, kind: 'id-dotdot-suffix' },
    { value: `${id}\0`, kind: 'id-nul-suffix' },
    { value: `${id}\n`, kind: 'id-newline-suffix' },
    { value: ` ${id}`, kind: 'id-space-prefix' },
    { value: id.toUpperCase(), kind: 'id-uppercase' },
    { value: `/${id}`, kind: 'id-leading-slash' },
    { value: id.replace('/', '//'), kind: 'id-double-slash' },
    { value: `${id.slice(0, slash)}/../${id.slice(slash + 1)}`, kind: 'id-traversal' },
    { value: `other${id.slice(slash)}`, kind: 'id-unknown-backend' },
    { value: `${id.slice(0, slash + 1)}.snapshots/${id.slice(slash + 1)}`, kind: 'id-wrong-kind' },
    { value: `${id.slice(0, slash + 1)}.tether`, kind: 'id-dot-dir' },
    { value: `${id}${'x'.repeat(200)}`, kind: 'id-too-long' },
  ]);
}

/** A proper VolumeCapability: a mount capability with `mode`, or any access mode the spec has. */
function saneCapability(prng: Prng, mode?: string): Record<string, unknown> {
  return { access_mode: { mode: mode ?? prng.pick(SANE_ACCESS_MODES) }, mount: { fs_type: '', mount_flags: [], volume_mount_group: '' } };
}

function saneString(prng: Prng, name: string): string {
  switch (name) {
    case 'name':
      return `fuzz-${prng.int(12)}`; // a small namespace: repeats meet the idempotency and ALREADY_EXISTS paths
    case 'starting_token':
      return prng.pick(['', '1', '2']);
    case 'volume_mount_group':
      return prng.pick(['', '1000', '0']);
    default:
      return '';
  }
}

function saneMap(prng: Prng, name: string): Record<string, string> {
  if (name === 'parameters') return prng.pick<Record<string, string>>([{}, { onDelete: 'delete' }, { backend: 'box' }, { 'csi.storage.k8s.io/pvc/name': 'data' }]);
  if (name === 'mutable_parameters') return prng.pick<Record<string, string>>([{}, { onDelete: 'delete' }]);
  return {};
}

/** A fuzzed request for a method whose request type is `type`. */
export function generateRequest(prng: Prng, type: protobuf.Type, fixtures: Fixtures, paths: PathPlan): Generated {
  const mode = prng.weighted<Mode>([[10, 'sane'], [45, 'valid-ids'], [45, 'hostile']]);
  const drawer = new Drawer(prng, mode, fixtures, paths, new Budget(prng.weighted(BUDGET_TIERS)));
  const request = drawer.message(type, '', 0);
  return { request, mode, notes: drawer.notes };
}

/** A map key as a note shows it: short ones whole, long ones by their length. */
const short = (key: string) => (key.length > 24 ? `${JSON.stringify(key.slice(0, 8))}…` : JSON.stringify(key));
