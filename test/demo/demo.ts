// `npm run demo`: tether's story on one machine, with real sshfs mounts and no outside server.
// A throwaway sshd plays the storage server; two tether processes play two Kubernetes nodes.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { status } from '@grpc/grpc-js';
import { execa } from 'execa';
import { csiClient, type CsiClient } from '../support/csi-client.js';
import { startDriver } from '../support/driver.js';
import { startSshServer, type SshServer } from '../support/sshd.js';

interface Node { id: string; csi: CsiClient; staging: string; target: string }
class Interrupted extends Error {}

const NAME = 'demo-volume';
const CAPABILITY = { access_mode: { mode: 'SINGLE_NODE_WRITER' }, mount: {} };
const began = Date.now();
const say = (text: string) => void (stopping || console.log(text)); // quiet once interrupted: the step under way may still finish
const ok = (text: string) => say(`   ✔ ${text}`);
const note = (text: string) => say(`     ${text}`);

// ---- interruption and cleanup: whatever was started is undone, in reverse order ----
const cleanups: Array<[string, () => Promise<unknown>]> = [];
let stopping = false;
let current = 'starting';
let inflight: Promise<unknown> = Promise.resolve();
let interrupt: (err: Error) => void = () => undefined;
const interruption = new Promise<never>((_, reject) => (interrupt = reject));
interruption.catch(() => undefined);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (stopping) return; // a second Ctrl-C does not cut the cleanup short
    stopping = true;
    interrupt(new Interrupted(`interrupted by ${sig}`));
  });
}

const within = <T>(ms: number, work: Promise<T>) =>
  Promise.race([work, sleep(ms, undefined, { ref: false }).then(() => Promise.reject(new Error(`no answer within ${ms / 1000} s`)))]);

/** Undoes everything; returns whether all of it went well. */
async function cleanup(): Promise<boolean> {
  await within(5_000, inflight).catch(() => undefined); // let the step under way settle, so what it started is known
  let clean = true;
  for (const [what, undo] of cleanups.reverse()) {
    await within(20_000, undo()).catch((err: Error) => ((clean = false), console.log(`   ✘ ${what}: ${err.message}`)));
  }
  return clean;
}

const isMounted = async (path: string) => (await execa('findmnt', ['-M', path], { reject: false })).exitCode === 0;
const mountLine = async (path: string) => (await execa('findmnt', ['-n', '-o', 'FSTYPE,SOURCE', '-M', path])).stdout.replace(/\s+/, ' ');

/** Unmounts what a node still has through the driver; then, if the driver is gone (Ctrl-C reaches it too), directly. */
function unmountLeftovers(node: Node, volumeId: () => string) {
  return async () => {
    const id = volumeId();
    if (id && (await isMounted(node.target))) await within(10_000, node.csi.NodeUnpublishVolume!({ volume_id: id, target_path: node.target })).catch(() => undefined);
    if (id && (await isMounted(node.staging))) await within(10_000, node.csi.NodeUnstageVolume!({ volume_id: id, staging_target_path: node.staging })).catch(() => undefined);
    for (const path of [node.target, node.staging]) {
      for (let i = 0; i < 3 && (await isMounted(path)); i++) await execa('umount', ['-l', path], { reject: false });
    }
  };
}

// ---- the RPCs, with what failed kept for the error line ----
async function call(client: CsiClient, rpc: string, request: object): Promise<any> {
  if (stopping) throw new Interrupted('interrupted');
  try {
    return await client[rpc]!(request);
  } catch (err) {
    throw Object.assign(err as Error, { rpc });
  }
}

const codeName = (err: unknown) => status[(err as { code?: number }).code ?? -1] ?? '';
const describe = (err: unknown) => {
  const e = err as Error & { rpc?: string; code?: number; details?: string };
  return e.rpc && e.code !== undefined ? `${e.rpc} → ${codeName(e)}: ${e.details}` : e.message;
};

async function step(n: number, title: string, body: () => Promise<void>): Promise<void> {
  current = `${n} (${title})`;
  console.log(`\n${n}. ${title}`);
  const work = body();
  inflight = work.catch(() => undefined);
  await Promise.race([work, interruption]);
}

async function main(): Promise<void> {
  let server!: SshServer;
  let a!: Node, b!: Node;
  let tmp = '';
  let volumeId = '';
  let volumeDir = '';

  /** ControllerPublish; a node that has not registered yet (NOT_FOUND) is waited for, up to 5 s. */
  const controllerPublish = async (nodeId: string) => {
    for (const deadline = Date.now() + 5000; ; await sleep(100)) {
      try {
        return await call(a.csi, 'ControllerPublishVolume', { volume_id: volumeId, node_id: nodeId, volume_capability: CAPABILITY });
      } catch (err) {
        if (codeName(err) !== 'NOT_FOUND' || Date.now() > deadline) throw err;
      }
    }
  };

  const startNode = async (id: string, mode: 'all' | 'node'): Promise<Node> => {
    const driver = await startDriver(server, { nodeId: id, mode, logLevel: 'warn' });
    const csi = csiClient(driver.endpoint);
    cleanups.push([`stop tether ${id}`, async () => (csi.close(), await driver.stop())]);
    const node = { id, csi, staging: join(tmp, id, 'staging'), target: join(tmp, id, 'target') };
    cleanups.push([`unmount on ${id}`, unmountLeftovers(node, () => volumeId)]);
    ok(`tether --mode ${mode.padEnd(4)} as ${id}, on ${driver.endpoint}`);
    return node;
  };

  const attach = async (node: Node) => {
    await controllerPublish(node.id);
    ok(`ControllerPublishVolume: the controller records ${node.id} as the volume's writer`);
    await mkdir(node.staging, { recursive: true }); // kubelet creates the staging directory
    await call(node.csi, 'NodeStageVolume', { volume_id: volumeId, staging_target_path: node.staging, volume_capability: CAPABILITY });
    ok(`NodeStageVolume on ${node.id}: ${node.staging} ← ${await mountLine(node.staging)}`);
    await call(node.csi, 'NodePublishVolume', { volume_id: volumeId, staging_target_path: node.staging, target_path: node.target, volume_capability: CAPABILITY, readonly: false });
    ok(`NodePublishVolume on ${node.id}: bind-mounted at ${node.target}`);
  };

  const detach = async (node: Node) => {
    await call(node.csi, 'NodeUnpublishVolume', { volume_id: volumeId, target_path: node.target });
    await call(node.csi, 'NodeUnstageVolume', { volume_id: volumeId, staging_target_path: node.staging });
    ok(`NodeUnpublishVolume + NodeUnstageVolume on ${node.id}: ${(await isMounted(node.staging)) ? 'still mounted!' : 'no mounts left there'}`);
    await call(a.csi, 'ControllerUnpublishVolume', { volume_id: volumeId, node_id: node.id });
    ok(`ControllerUnpublishVolume: ${node.id} no longer holds the volume`);
  };

  await step(1, 'Start an SSH server and two tether nodes on this machine', async () => {
    // Everything lives under one directory: the SSH server's and the drivers' own temp dirs too (they use os.tmpdir()).
    tmp = await mkdtemp(join(tmpdir(), 'tether-demo-'));
    process.env.TMPDIR = tmp;
    cleanups.push(['remove the temporary directory', async () => {
      if ((await readFile('/proc/self/mountinfo', 'utf8')).includes(` ${tmp}/`)) throw new Error(`${tmp} still holds mounts; left in place`);
      await rm(tmp, { recursive: true, force: true });
    }]);
    server = await startSshServer();
    cleanups.push(['stop the SSH server', () => server.stop()]);
    ok(`SSH server with a /srv-like directory: ${server.user}@${server.host}:${server.port}:${server.root}`);
    a = await startNode('node-a', 'all');
    b = await startNode('node-b', 'node');
  });

  await step(2, `Create "${NAME}" (1 GiB, SINGLE_NODE_WRITER)`, async () => {
    const { volume } = await call(a.csi, 'CreateVolume', { name: NAME, capacity_range: { required_bytes: String(2 ** 30) }, volume_capabilities: [CAPABILITY] });
    volumeId = volume.volume_id;
    volumeDir = join(server.root, volumeId.split('/')[1]!);
    ok(`volume ${volumeId}, ${Number(volume.capacity_bytes) / 2 ** 30} GiB`);
    ok(`on the server: ${volumeDir}/  (${(await readdir(volumeDir)).join(', ')})`);
  });

  await step(3, 'Use it on node-a', async () => {
    await attach(a);
    await writeFile(join(a.target, 'hello.txt'), 'hello from node-a\n');
    ok(`wrote ${join(a.target, 'hello.txt')}`);
    ok(`on the server: data/hello.txt = "${(await readFile(join(volumeDir, 'data', 'hello.txt'), 'utf8')).trim()}"`);
  });

  await step(4, 'Ask for it on node-b too, while node-a still has it', async () => {
    try {
      await controllerPublish(b.id);
    } catch (err) {
      if (codeName(err) !== 'FAILED_PRECONDITION') throw err;
      ok(`refused, ${codeName(err)}: "${(err as { details: string }).details}"`);
      note('a single-writer volume is never writable from two nodes at once');
      return;
    }
    throw new Error('ControllerPublishVolume to node-b succeeded while node-a holds the volume: the single-writer rule was not kept');
  });

  await step(5, 'Move it: release it on node-a, then use it on node-b', async () => {
    await detach(a);
    await attach(b);
    ok(`read on node-b: ${join(b.target, 'hello.txt')} = "${(await readFile(join(b.target, 'hello.txt'), 'utf8')).trim()}"`);
  });

  await step(6, 'Snapshot it, release it, delete everything', async () => {
    const { snapshot } = await call(a.csi, 'CreateSnapshot', { name: 'demo-snapshot', source_volume_id: volumeId });
    ok(`snapshot ${snapshot.snapshot_id}: ready_to_use=${snapshot.ready_to_use}, ${Number(snapshot.size_bytes) / 2 ** 30} GiB`);
    await detach(b);
    await call(a.csi, 'DeleteSnapshot', { snapshot_id: snapshot.snapshot_id });
    ok(`DeleteSnapshot: ${existsSync(join(server.root, '.snapshots', 'demo-snapshot')) ? 'still on the server!' : 'gone from the server'}`);
    await call(a.csi, 'DeleteVolume', { volume_id: volumeId });
    if (existsSync(volumeDir)) throw new Error(`DeleteVolume returned but ${volumeDir} is still on the server`);
    ok(`DeleteVolume: ${volumeDir} is gone from the server`);
  });
}

console.log('tether demo: one SSH server, two nodes on this machine, one single-writer volume');
let failure: unknown;
try {
  await main();
} catch (err) {
  if (!stopping) await sleep(200); // a driver hit by the same Ctrl-C may fail the call before our handler runs
  failure = stopping ? new Interrupted() : err;
  console.log(failure instanceof Interrupted ? `   ✘ interrupted during step ${current}` : `   ✘ step ${current} failed\n     ${describe(err)}`);
}
console.log('\nCleaning up');
let clean = await cleanup();
const left = (await execa('findmnt', ['-n', '-t', 'fuse.sshfs', '-o', 'TARGET'], { reject: false })).stdout.split('\n').filter((m) => m.includes('/tether-demo-'));
if (left.length) console.log(`   ✘ still mounted: ${left.join(' ')}`);
clean &&= left.length === 0;
if (clean) console.log('   ✔ stopped the tether nodes and the SSH server, removed the temporary directory; no sshfs mounts left');
const seconds = ((Date.now() - began) / 1000).toFixed(1);
if (failure === undefined && clean) {
  console.log(`\n✔ Done in ${seconds} s: one single-writer volume moved from node-a to node-b over real sshfs mounts, never on both at once.`);
  process.exit(0);
}
const what = failure === undefined ? 'could not clean up' : failure instanceof Interrupted ? 'was interrupted' : 'failed';
console.log(`\n✘ The demo ${what} after ${seconds} s${clean ? '; everything it started has been stopped' : ''}.`);
process.exit(failure instanceof Interrupted ? 130 : 1);
