// The e2e cluster as the story reaches it: the kubectl and helm a user runs, against the cluster that
// test/e2e/run.sh started (its run directory and binaries come in TETHER_E2E_RUN and TETHER_E2E_BIN).
// Pod logs are read from the kubelet's podLogsDir: the node has no address, so `kubectl logs` cannot
// reach it (see test/e2e/cluster/cluster.sh).
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const RUN = process.env.TETHER_E2E_RUN ?? '';
const BIN = process.env.TETHER_E2E_BIN ?? '';
if (!RUN || !BIN) throw new Error('run the e2e stage through test/e2e/run.sh: TETHER_E2E_RUN and TETHER_E2E_BIN are not set');

export const cluster = {
  run: RUN,
  kubeletDir: path.join(RUN, 'kubelet'),
  node: 'e2e-node',
  env: { KUBECONFIG: path.join(RUN, 'pki/admin.kubeconfig') },
};

/** kubectl ARGS; its stdout. `input` goes to its stdin (`apply -f -`). */
export async function kubectl(args: string[], input?: string, timeoutMs = 60_000): Promise<string> {
  const r = await execa(path.join(BIN, 'kubectl'), args, { env: cluster.env, input, timeout: timeoutMs, reject: false });
  if (r.exitCode !== 0) throw new Error(`kubectl ${args.join(' ')}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/** One object (or list) as JSON. */
export async function get<T = any>(...args: string[]): Promise<T> {
  return JSON.parse(await kubectl(['get', ...args, '-o', 'json'])) as T;
}

/** The object, or undefined if it does not exist. */
export async function find<T = any>(...args: string[]): Promise<T | undefined> {
  const r = await execa(path.join(BIN, 'kubectl'), ['get', ...args, '-o', 'json', '--ignore-not-found'], { env: cluster.env, timeout: 60_000, reject: false });
  return r.exitCode === 0 && r.stdout.trim() ? (JSON.parse(r.stdout) as T) : undefined;
}

export async function helm(args: string[], timeoutMs = 300_000): Promise<string> {
  const r = await execa(path.join(REPO, '.tools/bin/helm'), args, { env: cluster.env, timeout: timeoutMs, reject: false });
  if (r.exitCode !== 0) throw new Error(`helm ${args.join(' ')}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/**
 * Polls `check` every `everyMs` until it returns something other than undefined/false; throws after
 * `limitMs` with `what` and the last thing `check` threw or returned.
 */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false>, limitMs: number, everyMs = 500, explain?: () => Promise<string>): Promise<T> {
  const end = Date.now() + limitMs;
  let last = '';
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
      last = `last answer: ${JSON.stringify(value)}`;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > end) {
      const more = explain ? await explain().catch((err: Error) => err.message) : '';
      throw new Error(`timed out after ${limitMs / 1000} s waiting for ${what} (${last})${more ? `\n${more}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A pod's phase, its containers' states and the events about it: what a person looks at when it does not start. */
export async function explainPod(name: string, namespace = 'default'): Promise<string> {
  const pod = await find('pod', name, '-n', namespace);
  const states = (pod?.status?.containerStatuses ?? []).map((c: any) => `${c.name}: ${JSON.stringify(c.state)}`);
  const events = await kubectl(['get', 'events', '-n', namespace, '--field-selector', `involvedObject.name=${name}`, '-o', 'custom-columns=REASON:.reason,MESSAGE:.message', '--no-headers']);
  return [`pod ${namespace}/${name}: ${pod?.status?.phase ?? 'missing'}`, ...states, events].join('\n');
}

/** What a pod's container wrote to stdout and stderr (CRI log lines: time, stream, tag, text), as lines of text. */
export async function podLog(namespace: string, pod: string, container: string): Promise<string[]> {
  const dir = path.join(RUN, 'pod-logs');
  const podDirs = (await readdir(dir)).filter((d) => d.startsWith(`${namespace}_${pod}_`));
  const lines: string[] = [];
  for (const podDir of podDirs) {
    const files = await readdir(path.join(dir, podDir, container)).catch(() => [] as string[]);
    for (const file of files.sort((a, b) => parseInt(a) - parseInt(b))) {
      const text = await readFile(path.join(dir, podDir, container, file), 'utf8');
      for (const line of text.split('\n')) if (line) lines.push(line.split(' ').slice(3).join(' '));
    }
  }
  return lines;
}

/** The JSON log lines of tether's RPCs in the pods of `component` (controller or node), oldest first. */
export async function rpcLog(component: 'controller' | 'node'): Promise<Array<{ method: string; code: string; ms: number; [k: string]: unknown }>> {
  const pods = (await get<{ items: Array<{ metadata: { name: string } }> }>('pods', '-n', 'tether', '-l', `app.kubernetes.io/component=${component}`)).items;
  const lines = (await Promise.all(pods.map((p) => podLog('tether', p.metadata.name, 'tether')))).flat();
  return lines.flatMap((l) => {
    try {
      const entry = JSON.parse(l);
      return typeof entry.method === 'string' ? [entry] : [];
    } catch {
      return [];
    }
  });
}

/** Mount points below `dir` (fstype optional), from the kernel's table. */
export async function mountsBelow(dir: string, fstype?: string): Promise<string[]> {
  const r = await execa('findmnt', ['-rn', '-o', 'TARGET', ...(fstype ? ['-t', fstype] : [])], { timeout: 15_000, reject: false });
  return r.stdout.split('\n').filter((m) => m.startsWith(`${dir}/`));
}

/** Prints one line of the story with the seconds since it began. */
const started = Date.now();
export function say(line: string): void {
  process.stdout.write(`[e2e ${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${line}\n`);
}
