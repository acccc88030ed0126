// ControllerPublishVolume / ControllerUnpublishVolume (src/controller/publish.ts), through the real
// pipeline on a real directory: who may hold a volume where, as the CSI spec and tether's
// single-writer promise say, and what the volume's record says afterwards.
import { mountCapability, startController, type TestController } from '../support/handlers.js';

let ctl: TestController;
let volumeId: string;

beforeEach(async () => {
  ctl = await startController();
  for (const node of ['node-a', 'node-b']) await ctl.registerNode(node);
  const { volume } = await ctl.call('CreateVolume', { name: 'pvc-1', volume_capabilities: [mountCapability('SINGLE_NODE_WRITER')] });
  volumeId = volume!.volume_id!;
});
afterEach(() => ctl.cleanup());

const publish = (node: string, mode: string, readonly = false) =>
  ctl.call('ControllerPublishVolume', { volume_id: volumeId, node_id: node, volume_capability: mountCapability(mode), readonly });
const publishedTo = async () => (await ctl.call('ControllerGetVolume', { volume_id: volumeId })).status?.published_node_ids ?? [];

type Case = [string, [string, string, boolean], [string, string, boolean], 'OK' | 'ALREADY_EXISTS' | 'FAILED_PRECONDITION'];

describe('a second publication, after node-a holds the volume', () => {
  test.each<Case>([
    // the same node again
    ['same node, same arguments: idempotent', ['node-a', 'SINGLE_NODE_WRITER', false], ['node-a', 'SINGLE_NODE_WRITER', false], 'OK'],
    ['same node, another mode', ['node-a', 'SINGLE_NODE_WRITER', false], ['node-a', 'SINGLE_NODE_MULTI_WRITER', false], 'ALREADY_EXISTS'],
    ['same node, read-only this time', ['node-a', 'MULTI_NODE_MULTI_WRITER', false], ['node-a', 'MULTI_NODE_MULTI_WRITER', true], 'ALREADY_EXISTS'],
    // single-node modes: one node at a time, whatever the other side asks
    ['SINGLE_NODE_WRITER on both', ['node-a', 'SINGLE_NODE_WRITER', false], ['node-b', 'SINGLE_NODE_WRITER', false], 'FAILED_PRECONDITION'],
    ['SINGLE_NODE_SINGLE_WRITER (ReadWriteOncePod)', ['node-a', 'SINGLE_NODE_SINGLE_WRITER', false], ['node-b', 'SINGLE_NODE_SINGLE_WRITER', false], 'FAILED_PRECONDITION'],
    ['SINGLE_NODE_MULTI_WRITER (ReadWriteOnce)', ['node-a', 'SINGLE_NODE_MULTI_WRITER', false], ['node-b', 'SINGLE_NODE_MULTI_WRITER', false], 'FAILED_PRECONDITION'],
    ['SINGLE_NODE_READER_ONLY', ['node-a', 'SINGLE_NODE_READER_ONLY', false], ['node-b', 'SINGLE_NODE_READER_ONLY', false], 'FAILED_PRECONDITION'],
    ['single-node holder, read-only multi-node newcomer', ['node-a', 'SINGLE_NODE_WRITER', false], ['node-b', 'MULTI_NODE_READER_ONLY', true], 'FAILED_PRECONDITION'],
    ['multi-node holder, single-node newcomer', ['node-a', 'MULTI_NODE_MULTI_WRITER', false], ['node-b', 'SINGLE_NODE_WRITER', false], 'FAILED_PRECONDITION'],
    // multi-node modes
    ['MULTI_NODE_MULTI_WRITER (ReadWriteMany)', ['node-a', 'MULTI_NODE_MULTI_WRITER', false], ['node-b', 'MULTI_NODE_MULTI_WRITER', false], 'OK'],
    ['MULTI_NODE_READER_ONLY (ReadOnlyMany)', ['node-a', 'MULTI_NODE_READER_ONLY', true], ['node-b', 'MULTI_NODE_READER_ONLY', true], 'OK'],
    ['MULTI_NODE_SINGLE_WRITER: a second writer', ['node-a', 'MULTI_NODE_SINGLE_WRITER', false], ['node-b', 'MULTI_NODE_SINGLE_WRITER', false], 'FAILED_PRECONDITION'],
    ['MULTI_NODE_SINGLE_WRITER: a reader beside the writer', ['node-a', 'MULTI_NODE_SINGLE_WRITER', false], ['node-b', 'MULTI_NODE_SINGLE_WRITER', true], 'OK'],
    ['MULTI_NODE_SINGLE_WRITER: the writer beside a reader', ['node-a', 'MULTI_NODE_SINGLE_WRITER', true], ['node-b', 'MULTI_NODE_SINGLE_WRITER', false], 'OK'],
    ['MULTI_NODE_SINGLE_WRITER writer, then a MULTI_NODE_MULTI_WRITER writer', ['node-a', 'MULTI_NODE_SINGLE_WRITER', false], ['node-b', 'MULTI_NODE_MULTI_WRITER', false], 'FAILED_PRECONDITION'],
  ])('%s → %s', async (_, [node1, mode1, ro1], [node2, mode2, ro2], expected) => {
    await publish(node1, mode1, ro1);
    if (expected === 'OK') {
      await publish(node2, mode2, ro2);
      expect((await publishedTo()).sort()).toEqual([...new Set([node1, node2])].sort());
      return;
    }
    const { code, message } = await ctl.failure('ControllerPublishVolume', { volume_id: volumeId, node_id: node2, volume_capability: mountCapability(mode2), readonly: ro2 });
    expect(code).toBe(expected);
    expect(message).toContain(node1); // names the node that holds it
    expect(await publishedTo()).toEqual([node1]); // the record is unchanged
  });
});

describe('publication refused before anything is recorded', () => {
  test.each<[string, () => object, string, RegExp]>([
    ['no volume_id', () => ({ node_id: 'node-a', volume_capability: mountCapability('SINGLE_NODE_WRITER') }), 'INVALID_ARGUMENT', /volume_id/],
    ['no node_id', () => ({ volume_id: volumeId, volume_capability: mountCapability('SINGLE_NODE_WRITER') }), 'INVALID_ARGUMENT', /node_id/],
    ['no capability', () => ({ volume_id: volumeId, node_id: 'node-a' }), 'INVALID_ARGUMENT', /volume_capability/],
    ['block access', () => ({ volume_id: volumeId, node_id: 'node-a', volume_capability: { access_mode: { mode: 'SINGLE_NODE_WRITER' }, block: {} } }), 'INVALID_ARGUMENT', /block/],
    ['a mount flag off the allowlist', () => ({ volume_id: volumeId, node_id: 'node-a', volume_capability: mountCapability('SINGLE_NODE_WRITER', ['fsc']) }), 'INVALID_ARGUMENT', /fsc/],
    ['a node that never registered', () => ({ volume_id: volumeId, node_id: 'node-x', volume_capability: mountCapability('SINGLE_NODE_WRITER') }), 'NOT_FOUND', /node-x/],
    ['a volume that does not exist', () => ({ volume_id: 'local/pvc-none', node_id: 'node-a', volume_capability: mountCapability('SINGLE_NODE_WRITER') }), 'NOT_FOUND', /pvc-none/],
    ['an ID tether cannot have made', () => ({ volume_id: '../etc', node_id: 'node-a', volume_capability: mountCapability('SINGLE_NODE_WRITER') }), 'NOT_FOUND', /\.\.\/etc/],
  ])('%s → %s', async (_, request, code, message) => {
    const err = await ctl.failure('ControllerPublishVolume', request() as never);
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
    expect(await publishedTo()).toEqual([]);
  });

  test("a node's attach limit (maxVolumesPerNode) → RESOURCE_EXHAUSTED; a repeat of a publication it has is still OK", async () => {
    await ctl.registerNode('node-c', 1);
    await publish('node-c', 'SINGLE_NODE_WRITER');
    const { volume } = await ctl.call('CreateVolume', { name: 'pvc-2', volume_capabilities: [mountCapability('SINGLE_NODE_WRITER')] });
    const err = await ctl.failure('ControllerPublishVolume', { volume_id: volume!.volume_id, node_id: 'node-c', volume_capability: mountCapability('SINGLE_NODE_WRITER') });
    expect(err).toEqual({ code: 'RESOURCE_EXHAUSTED', message: expect.stringContaining('maxVolumesPerNode') });
    await publish('node-c', 'SINGLE_NODE_WRITER');
  });
});

describe('ControllerUnpublishVolume', () => {
  test('frees the volume for another node; a repeat, an unknown node and an unknown volume are OK', async () => {
    await publish('node-a', 'SINGLE_NODE_WRITER');
    await ctl.call('ControllerUnpublishVolume', { volume_id: volumeId, node_id: 'node-a' });
    await ctl.call('ControllerUnpublishVolume', { volume_id: volumeId, node_id: 'node-a' });
    await ctl.call('ControllerUnpublishVolume', { volume_id: volumeId, node_id: 'node-x' });
    await ctl.call('ControllerUnpublishVolume', { volume_id: 'local/pvc-none', node_id: 'node-a' });
    expect(await publishedTo()).toEqual([]);
    await publish('node-b', 'SINGLE_NODE_WRITER');
    expect(await publishedTo()).toEqual(['node-b']);
  });

  test('without a node ID, from every node', async () => {
    await publish('node-a', 'MULTI_NODE_READER_ONLY', true);
    await publish('node-b', 'MULTI_NODE_READER_ONLY', true);
    await ctl.call('ControllerUnpublishVolume', { volume_id: volumeId });
    expect(await publishedTo()).toEqual([]);
  });
});
