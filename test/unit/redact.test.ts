// src/grpc/redact.ts with src/grpc/proto.ts: secrets never reach the logs, whatever request carries them.
import protobuf from 'protobufjs';
import { loadCsiRoot } from '../../src/grpc/proto.js';
import { buildRedactor } from '../../src/grpc/redact.js';

const R = '[redacted]';
const csi = buildRedactor(loadCsiRoot());

/** Every field CSI v1.12.0 marks [(csi_secret) = true]. */
const SECRET_FIELDS = [
  'csi.v1.ControllerExpandVolumeRequest.secrets',
  'csi.v1.ControllerModifyVolumeRequest.secrets',
  'csi.v1.ControllerPublishVolumeRequest.secrets',
  'csi.v1.ControllerUnpublishVolumeRequest.secrets',
  'csi.v1.CreateSnapshotRequest.secrets',
  'csi.v1.CreateVolumeGroupSnapshotRequest.secrets',
  'csi.v1.CreateVolumeRequest.secrets',
  'csi.v1.DeleteSnapshotRequest.secrets',
  'csi.v1.DeleteVolumeGroupSnapshotRequest.secrets',
  'csi.v1.DeleteVolumeRequest.secrets',
  'csi.v1.GetMetadataAllocatedRequest.secrets',
  'csi.v1.GetMetadataDeltaRequest.secrets',
  'csi.v1.GetSnapshotRequest.secrets',
  'csi.v1.GetVolumeGroupSnapshotRequest.secrets',
  'csi.v1.ListSnapshotsRequest.secrets',
  'csi.v1.NodeExpandVolumeRequest.secrets',
  'csi.v1.NodePublishVolumeRequest.secrets',
  'csi.v1.NodeStageVolumeRequest.secrets',
  'csi.v1.ValidateVolumeCapabilitiesRequest.secrets',
];

const capability = {
  access_mode: { mode: 'SINGLE_NODE_WRITER' },
  mount: { fs_type: '', mount_flags: ['noatime'], volume_mount_group: '' },
  block: null,
  access_type: 'mount',
};

describe('buildRedactor on the CSI proto', () => {
  test('finds exactly the 19 secret fields of CSI v1.12.0', () => {
    expect(csi.secretFields).toHaveLength(19);
    expect([...csi.secretFields].sort()).toEqual(SECRET_FIELDS);
  });

  test.each(SECRET_FIELDS.map((f) => [f.replace(/\.secrets$/, '')]))('%s: every secret value is replaced, keys kept, other fields untouched', (typeName) => {
    const message = { volume_id: 'box/pvc-1', snapshot_id: 'box/.snapshots/s', secrets: { password: 'hunter2', 'ssh-key': 'PRIVATE' }, parameters: { backend: 'box' } };
    expect(csi.redact(typeName, message)).toEqual({ ...message, secrets: { password: R, 'ssh-key': R } });
  });

  test.each<[string, string, Record<string, unknown>, Record<string, unknown>]>([
    [
      'NodeStageVolumeRequest',
      'csi.v1.NodeStageVolumeRequest',
      {
        volume_id: 'box/pvc-1',
        publish_context: { node: 'n1' },
        staging_target_path: '/var/lib/kubelet/plugins/x/globalmount',
        volume_capability: capability,
        secrets: { key: 'PRIVATE KEY' },
        volume_context: { backend: 'box' },
      },
      { secrets: { key: R } },
    ],
    [
      'CreateVolumeRequest',
      'csi.v1.CreateVolumeRequest',
      {
        name: 'pvc-1',
        capacity_range: { required_bytes: '1073741824', limit_bytes: '0' },
        volume_capabilities: [capability, capability],
        parameters: { backend: 'box', onDelete: 'retain' },
        secrets: { user: 'admin', password: 'hunter2' },
        volume_content_source: { snapshot: { snapshot_id: 'box/.snapshots/s' }, type: 'snapshot' },
        accessibility_requirements: null,
        mutable_parameters: {},
      },
      { secrets: { user: R, password: R } },
    ],
    ['a leading dot in the type name', '.csi.v1.DeleteVolumeRequest', { volume_id: 'box/pvc-1', secrets: { token: 't' } }, { secrets: { token: R } }],
    ['empty secrets stay empty', 'csi.v1.NodePublishVolumeRequest', { volume_id: 'box/pvc-1', target_path: '/t', readonly: true, secrets: {} }, { secrets: {} }],
    ['an empty secret value is still hidden', 'csi.v1.ControllerPublishVolumeRequest', { node_id: 'n1', secrets: { a: '' } }, { secrets: { a: R } }],
  ])('%s', (_, typeName, message, changed) => {
    expect(csi.redact(typeName, message)).toEqual({ ...message, ...changed });
  });

  test.each<[string, unknown]>([
    ['csi.v1.NodeGetInfoRequest', {}],
    ['csi.v1.NodeUnstageVolumeRequest', { volume_id: 'box/pvc-1', staging_target_path: '/s' }],
    ['csi.v1.GetPluginInfoRequest', {}],
    ['csi.v1.NoSuchRequest', { secrets: { a: 'visible: unknown types are passed through' } }],
    ['csi.v1.CreateVolumeRequest', null],
    ['csi.v1.CreateVolumeRequest', 'not an object'],
  ])('%s without secret fields is returned unchanged: %j', (typeName, message) => {
    expect(csi.redact(typeName, message)).toEqual(message);
  });

  test('the original request is not modified (the handler still needs its secrets)', () => {
    const message = { volume_id: 'box/pvc-1', secrets: { key: 'PRIVATE' } };
    csi.redact('csi.v1.NodeStageVolumeRequest', message);
    expect(message.secrets.key).toBe('PRIVATE');
  });

  test('no secret value survives anywhere in the redacted text', () => {
    const message = { name: 'pvc-1', volume_capabilities: [capability], secrets: { a: 'S3CRET-1', b: 'S3CRET-2' } };
    expect(JSON.stringify(csi.redact('csi.v1.CreateVolumeRequest', message))).not.toMatch(/S3CRET/);
  });
});

describe('buildRedactor walks nested messages', () => {
  // A small proto with secrets below the top level: CSI has none yet, a later spec may.
  const root = protobuf.parse(
    `syntax = "proto3";
     package t;
     message Inner { map<string, string> creds = 1 [(csi_secret) = true]; string note = 2; Deeper deeper = 3; }
     message Deeper { string token = 1 [(csi_secret) = true]; string kept = 2; }
     message Outer { Inner inner = 1; repeated Inner many = 2; string token = 3 [(csi_secret) = true]; string name = 4; }`,
    { keepCase: true },
  ).root;
  root.resolveAll();
  const nested = buildRedactor(root);

  test('finds the nested secret fields', () => {
    expect([...nested.secretFields].sort()).toEqual(['t.Deeper.token', 't.Inner.creds', 't.Outer.token']);
  });

  test.each<[string, unknown, unknown]>([
    ['a top-level scalar secret', { token: 'tok', name: 'x' }, { token: R, name: 'x' }],
    ['an empty scalar secret stays empty', { token: '', name: 'x' }, { token: '', name: 'x' }],
    ['a secret map one level down', { inner: { creds: { a: 'b' }, note: 'n' } }, { inner: { creds: { a: R }, note: 'n' } }],
    ['secrets in a repeated message', { many: [{ creds: { c: 'd' } }, { creds: { e: 'f' }, note: 'm' }] }, { many: [{ creds: { c: R } }, { creds: { e: R }, note: 'm' }] }],
    ['a secret two levels down', { inner: { deeper: { token: 'deep', kept: 'k' } } }, { inner: { deeper: { token: R, kept: 'k' } } }],
    ['a null nested message', { inner: null, name: 'x' }, { inner: null, name: 'x' }],
  ])('%s', (_, message, expected) => {
    expect(nested.redact('t.Outer', message)).toEqual(expected);
  });
});
