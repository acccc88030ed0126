// Talking to tether's Docker volume plugin as dockerd does: HTTP/1.1 POST with a JSON body on its unix
// socket (moby's pkg/plugins client), answers with `Err` set on failure.
import { request } from 'node:http';
import { execa, type ResultPromise } from 'execa';
import { mkdir, readFile } from 'node:fs/promises';

export type DockerReply = Record<string, unknown> & { Err?: string };

/** One call of the volume plugin protocol; resolves with the HTTP status and the parsed reply. */
export function dockerCall(socketPath: string, path: string, body: unknown = {}, method = 'POST'): Promise<{ status: number; reply: DockerReply }> {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method, headers: { 'Content-Type': 'application/json', Accept: 'application/vnd.docker.plugins.v1.2+json', 'Content-Length': Buffer.byteLength(text) }, timeout: 150_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, reply: JSON.parse(Buffer.concat(chunks).toString('utf8')) as DockerReply });
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on('error', reject);
    req.end(text);
  });
}

/** A volume plugin call that must succeed (Err empty): its reply. */
export async function dockerOk(socketPath: string, call: string, body: unknown = {}): Promise<DockerReply> {
  const { status, reply } = await dockerCall(socketPath, `/${call}`, body);
  if (status !== 200 || reply.Err) throw new Error(`${call} ${JSON.stringify(body)} failed: HTTP ${status}, Err: ${reply.Err}`);
  return reply;
}

/** A volume plugin call that must fail: its Err. */
export async function dockerErr(socketPath: string, call: string, body: unknown = {}): Promise<string> {
  const { reply } = await dockerCall(socketPath, `/${call}`, body);
  if (!reply.Err) throw new Error(`${call} ${JSON.stringify(body)} was expected to fail, but answered ${JSON.stringify(reply)}`);
  return reply.Err;
}

/**
 * A stand-in for a container with a volume mounted, made of the same kernel parts: a process in a
 * mount namespace of its own holding a bind of the volume's mount point (what runc does with the
 * Mountpoint Docker's Mount returned). Killing it ends the namespace, and the bind with it.
 */
export async function holdInNamespace(mountpoint: string, dir: string): Promise<{ process: ResultPromise }> {
  await mkdir(dir, { recursive: true });
  const child = execa('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$1" "$2" && exec sleep 600', 'container', mountpoint, dir], { reject: false, stdin: 'ignore' });
  // unshare and sh exec in place: the pid is the namespace's for good; the bind shows in its own mount table.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const table = await readFile(`/proc/${child.pid}/mountinfo`, 'utf8').catch(() => '');
    if (table.split('\n').some((line) => line.split(' ')[4] === dir)) return { process: child }; // wrapped: an async function would await the child itself
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      const r = await child;
      throw new Error(`the namespace did not hold the bind of ${mountpoint}: ${String(r.stderr)}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
