import type { Socket } from 'node:net';

const held = new WeakSet<Socket>();

/**
 * Holds what is written to `socket` until the end of this turn of the event loop, so that a burst
 * of small writes (SSH packets: one per SFTP request) leaves in one writev instead of a syscall
 * each — on a loopback or busy host each write syscall is a good part of a request's cost.
 */
export function holdWrites(socket: Socket): void {
  if (held.has(socket)) return;
  held.add(socket);
  socket.cork();
  setImmediate(() => {
    held.delete(socket);
    socket.uncork();
  });
}
