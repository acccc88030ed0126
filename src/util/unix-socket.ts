import { lstatSync, unlinkSync, type Stats } from 'node:fs';
import { lstat, rename, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';

/** sun_path holds 108 bytes with its terminating NUL: a longer socket path cannot be bound. */
export const MAX_SOCKET_PATH_BYTES = 107;

/**
 * Where a server binds before its socket is renamed into place. Node unlinks a unix socket's path
 * when its server closes, whatever is there by then; bound under this name (a dot name, which the
 * kubelet and Docker ignore), tether's close removes the socket only if it is still its own.
 */
export const bindingPath = (socketPath: string, pid = process.pid) => path.join(path.dirname(socketPath), `.tether-${pid}.sock`);

/** What is at a path, in words (lstat: a symlink is a symlink, never followed). */
export function fileKind(stats: Stats): string {
  if (stats.isSocket()) return 'socket';
  if (stats.isSymbolicLink()) return 'symbolic link';
  if (stats.isDirectory()) return 'directory';
  if (stats.isFile()) return 'regular file';
  if (stats.isFIFO()) return 'FIFO';
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return 'device';
  return 'file of unknown type';
}

/**
 * Why tether must not take `socketPath`, or undefined when it may: nothing is there, or a socket (left
 * by a tether that was killed: it is replaced). Anything else at that path is someone else's and is
 * never removed. Also refused: a path too long for a unix socket. `what` names the socket.
 */
export async function socketPathProblem(socketPath: string, what: string): Promise<string | undefined> {
  for (const p of [socketPath, bindingPath(socketPath)]) {
    const size = Buffer.byteLength(p);
    if (size > MAX_SOCKET_PATH_BYTES) return `the ${what} path ${p} is ${size} bytes; a unix socket path holds at most ${MAX_SOCKET_PATH_BYTES}`;
  }
  const stats = await lstat(socketPath).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw new Error(`cannot inspect ${socketPath}: ${err.code ?? err.message}`);
  });
  if (!stats || stats.isSocket()) return undefined;
  return `${socketPath} exists and is a ${fileKind(stats)}, not a socket: tether replaces only a stale socket there and leaves anything else alone; move it away`;
}

/** True if a process accepts connections on the socket at `socketPath` (it is not a stale one). */
export function socketAnswers(socketPath: string, timeoutMs = 2_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(socketPath);
    const done = (answers: boolean) => {
      socket.destroy();
      resolve(answers);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Binds a server at `socketPath` the safe way: refuses anything but nothing or a stale socket there,
 * binds under the binding path and renames the socket into place once it listens (a client that
 * dials on the rename finds it answering). Returns the stats of the socket it bound, for removeIfSame.
 */
export async function bindSocket(socketPath: string, what: string, listen: (at: string) => Promise<void>, stop: () => void): Promise<Stats> {
  const temporary = bindingPath(socketPath);
  for (const p of [socketPath, temporary]) {
    const problem = await socketPathProblem(p, what);
    if (problem) throw new Error(problem);
    await unlink(p).catch(ignoreMissing); // nothing, or a stale socket
  }
  await listen(temporary);
  const ours = lstatSync(temporary);
  await rename(temporary, socketPath).catch((err: Error) => {
    stop();
    throw err;
  });
  return ours;
}

function ignoreMissing(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err;
}

/** Removes the socket this process bound, unless another process has put its own there since. Synchronous: it runs on the way out. */
export function removeIfSame(socketPath: string, ours: Stats): string | undefined {
  try {
    const now = lstatSync(socketPath);
    if (now.ino === ours.ino && now.dev === ours.dev) unlinkSync(socketPath);
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? undefined : (err as Error).message;
  }
}
