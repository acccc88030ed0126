// src/grpc/limits.ts: every request field has a size limit checked before any work, and nothing
// that leaves the driver (an error message, a log value) is unbounded.
import { status } from '@grpc/grpc-js';
import { boundMessage, buildRequestLimits, clipForLog, LIMITS, MAX_MESSAGE_BYTES } from '../../src/grpc/limits.js';
import { loadCsiRoot } from '../../src/grpc/proto.js';
import { CsiError } from '../../src/csi/errors.js';

const check = buildRequestLimits(loadCsiRoot());
const cap = { access_mode: { mode: 'SINGLE_NODE_WRITER' }, mount: { fs_type: '', mount_flags: [] } };
const big = (n: number, c = 'a') => c.repeat(n);
const map = (entries: number, size = 8) => Object.fromEntries(Array.from({ length: entries }, (_, i) => [`k${i}`, big(size)]));

/** The message of the INVALID_ARGUMENT `check` throws, or 'ok'. */
function verdict(type: string, request: object): string {
  try {
    check(`csi.v1.${type}`, request);
    return 'ok';
  } catch (err) {
    expect(err).toBeInstanceOf(CsiError);
    expect((err as CsiError).code).toBe(status.INVALID_ARGUMENT);
    return (err as CsiError).message;
  }
}

describe('request size limits', () => {
  test.each([
    ['a 128-byte volume ID', 'ControllerGetVolumeRequest', { volume_id: big(128) }, 'ok'],
    ['a 129-byte volume ID', 'ControllerGetVolumeRequest', { volume_id: big(129) }, 'volume_id is 129 bytes; at most 128'],
    ['a 100,000-character volume ID', 'ControllerGetVolumeRequest', { volume_id: big(100_000) }, 'volume_id is 100000 bytes'],
    ['bytes, not characters: 43 × "€" is 129 bytes', 'DeleteVolumeRequest', { volume_id: big(43, '€') }, 'volume_id is 129 bytes'],
    ['a 256-byte node ID', 'ControllerPublishVolumeRequest', { volume_id: 'v', node_id: big(256) }, 'ok'],
    ['a 257-byte node ID', 'ControllerPublishVolumeRequest', { volume_id: 'v', node_id: big(257) }, 'node_id is 257 bytes; at most 256'],
    ['a long name', 'CreateVolumeRequest', { name: big(200) }, 'name is 200 bytes'],
    ['a long starting token', 'ListVolumesRequest', { starting_token: big(1000) }, 'starting_token is 1000 bytes'],
    ['a nested string: the source snapshot ID', 'CreateVolumeRequest', { name: 'n', volume_content_source: { snapshot: { snapshot_id: big(500) } } }, 'volume_content_source.snapshot.snapshot_id is 500 bytes'],
    ['a 4 KiB parameters map', 'CreateVolumeRequest', { name: 'n', parameters: map(300, 8) }, 'ok'],
    ['a 10,000-entry parameters map', 'CreateVolumeRequest', { name: 'n', parameters: map(10_000) }, 'parameters holds more than 4096 bytes'],
    ['one 1 MiB parameter value', 'CreateVolumeRequest', { name: 'n', parameters: { backend: big(1 << 20) } }, 'parameters holds more than 4096 bytes'],
    ['secrets up to 64 KiB (an SSH key fits)', 'CreateVolumeRequest', { name: 'n', secrets: { key: big(60_000) } }, 'ok'],
    ['secrets over 64 KiB', 'NodeStageVolumeRequest', { secrets: { key: big(70_000) } }, 'secrets holds more than 65536 bytes'],
    ['4 KiB of mount flags', 'NodeStageVolumeRequest', { volume_capability: { ...cap, mount: { mount_flags: [big(2000), big(2000)] } } }, 'ok'],
    ['more than 4 KiB of mount flags', 'NodeStageVolumeRequest', { volume_capability: { ...cap, mount: { mount_flags: [big(3000), big(3000)] } } }, 'volume_capability.mount.mount_flags holds 6000 bytes'],
    ['1,024 capabilities', 'CreateVolumeRequest', { name: 'n', volume_capabilities: Array(1024).fill(cap) }, 'ok'],
    ['100,000 capabilities', 'CreateVolumeRequest', { name: 'n', volume_capabilities: Array(100_000).fill(cap) }, 'volume_capabilities lists 100000 items'],
    ['a long item of a repeated string', 'CreateVolumeGroupSnapshotRequest', { name: 'g', source_volume_ids: ['a', big(300)] }, 'source_volume_ids[1] is 300 bytes'],
    ['a 4,096-byte path', 'NodeStageVolumeRequest', { staging_target_path: `/${Array(40).fill(big(100)).join('/')}`.padEnd(4096, 'x') }, 'ok'],
    ['a 5,000-byte path', 'NodeStageVolumeRequest', { staging_target_path: `/${big(4999)}` }, 'staging_target_path is 5000 bytes; at most 4096'],
    ['a 256-byte path component', 'NodePublishVolumeRequest', { target_path: `/tmp/${big(256)}/x` }, 'target_path has a component of 256 bytes; at most 255'],
    ['a relative path to mount at', 'NodePublishVolumeRequest', { target_path: 'tmp/x' }, 'target_path must be an absolute path'],
    ['a relative volume path (only looked up: csi-sanity expects NOT_FOUND)', 'NodeGetVolumeStatsRequest', { volume_path: 'tmp/x' }, 'ok'],
    ['a path that climbs', 'NodeUnpublishVolumeRequest', { target_path: '/var/lib/kubelet/../../etc' }, 'target_path must not contain ".." components'],
    ['a NUL in a path', 'NodeUnstageVolumeRequest', { staging_target_path: '/tmp/a\u0000b' }, 'staging_target_path must not contain control characters'],
    ['a newline in a path', 'NodeStageVolumeRequest', { staging_target_path: '/tmp/a\nb' }, 'staging_target_path must not contain control characters'],
    ['an empty path (required-field checks say so)', 'NodeStageVolumeRequest', { staging_target_path: '' }, 'ok'],
    ['a unicode path', 'NodePublishVolumeRequest', { target_path: '/tmp/données/ボリューム' }, 'ok'],
    ['an unknown request type', 'NoSuchRequest', { volume_id: big(1000) }, 'ok'],
  ])('%s', (_, type, request, expected) => {
    const message = verdict(type, request);
    if (expected === 'ok') expect(message).toBe('ok');
    else expect(message).toContain(expected);
    expect(Buffer.byteLength(message)).toBeLessThan(300); // the value is never echoed
  });

  test('the limits are those of the CSI spec', () => {
    expect(LIMITS).toMatchObject({ string: 128, nodeId: 256, map: 4096, mountFlags: 4096 });
  });
});

describe('bounded messages', () => {
  test.each([
    ['a short message is kept', 'volume v does not exist', 'volume v does not exist'],
    ['newlines become \\n: one log line, one trailer', 'a\nb\u0000c', 'a\\nb\\x00c'],
  ])('%s', (_, input, expected) => expect(boundMessage(input)).toBe(expected));

  test.each([
    ['ASCII', 'x'],
    ['multi-byte characters are never split', '€'],
    ['astral characters are never split', '𝄞'],
  ])('a 100,000-character message is cut with a marker: %s', (_, c) => {
    const out = boundMessage(`volume ${c.repeat(100_000)} does not exist`);
    expect(Buffer.byteLength(out)).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
    expect(out).toMatch(/… \[\d+ more bytes cut\]$/);
    expect(out).not.toContain('\uFFFD');
  });

  test('log values: long strings, lists and maps are cut with markers', () => {
    const clipped = clipForLog({ volume_id: big(1 << 20), list: Array(1000).fill('a'), parameters: map(10_000), nested: { name: big(300) } }) as Record<string, unknown>;
    expect(JSON.stringify(clipped).length).toBeLessThan(8000);
    expect(clipped.volume_id).toMatch(/more chars\]$/);
    expect((clipped.list as string[]).at(-1)).toBe('… [968 more items]');
    expect((clipped.parameters as Record<string, string>)['…']).toBe('9968 more keys');
  });
});
