// src/grpc/errors.ts: whatever a handler throws becomes a CsiError with the right code and a one-line message.
import { CommandError } from '../../src/util/exec.js';
import { status } from '@grpc/grpc-js';
import { aborted, CsiError, errnoName, invalid, notFound, toCsiError } from '../../src/csi/errors.js';

const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });

describe('toCsiError', () => {
  test.each<[string, CsiError]>([
    ['INVALID_ARGUMENT', invalid('bad name')],
    ['NOT_FOUND', notFound('no volume')],
    ['ABORTED', aborted('busy')],
    ['a CsiError built directly', new CsiError(status.RESOURCE_EXHAUSTED, 'full')],
  ])('a CsiError (%s) is passed through as is', (_, err) => {
    expect(toCsiError(err)).toBe(err);
  });

  test.each<[string]>([['ECONNREFUSED'], ['ECONNRESET'], ['EHOSTUNREACH'], ['ENETUNREACH'], ['ETIMEDOUT'], ['EPIPE'], ['ENOTCONN'], ['EIO'], ['ESTALE']])(
    'an error with code %s → UNAVAILABLE, keeping its message',
    (code) => {
      const err = toCsiError(withCode(`connect ${code} 10.0.0.5:22`, code));
      expect(status[err.code]).toBe('UNAVAILABLE');
      expect(err.message).toBe(`connect ${code} 10.0.0.5:22`);
    },
  );

  test.each<[string]>([['ENAMETOOLONG'], ['ELOOP'], ['ENOTDIR']])('an error with code %s (the shape of a path) → INVALID_ARGUMENT, saying so', (code) => {
    const err = toCsiError(withCode(`${code}: mkdir '/var/lib/kubelet/x'`, code));
    expect(status[err.code]).toBe('INVALID_ARGUMENT');
    expect(err.message).toBe(`a path of the request cannot be used: ${code}: mkdir '/var/lib/kubelet/x'`);
  });

  test.each<[string, 'cancelled' | 'timed out' | 'failed', string]>([
    ['stopped because its call ended', 'cancelled', 'CANCELLED'],
    ['stopped at its time limit', 'timed out', 'DEADLINE_EXCEEDED'],
    ['failed on its own', 'failed', 'INTERNAL'],
  ])('a program %s → %s', (_, outcome, code) => {
    expect(status[toCsiError(new CommandError('chgrp', '', outcome, `chgrp ${outcome}`)).code]).toBe(code);
  });

  test('ESTALE that Node cannot name (only errno -116, as from a file operation on a stale NFS mount) → UNAVAILABLE, named', () => {
    const thrown = Object.assign(new Error("Unknown system error -116: Unknown system error -116, open '/mnt/x/volume.json'"), { errno: -116, code: 'Unknown system error -116' });
    const err = toCsiError(thrown);
    expect(status[err.code]).toBe('UNAVAILABLE');
    expect(err.message).toBe("ESTALE: stale file handle: ESTALE: stale file handle, open '/mnt/x/volume.json'");
  });

  test.each<[string, unknown]>([
    ['ssh2 client-timeout', Object.assign(new Error('Timed out while waiting for handshake'), { level: 'client-timeout' })],
    ['ssh2 client-socket', Object.assign(new Error('read ECONNRESET'), { level: 'client-socket' })],
  ])('%s → UNAVAILABLE', (_, err) => {
    expect(status[toCsiError(err).code]).toBe('UNAVAILABLE');
  });

  test.each<[string, unknown, string]>([
    ['a plain Error', new Error('something broke'), 'something broke'],
    ['ENOENT is not transient', withCode('ENOENT: no such file', 'ENOENT'), 'ENOENT: no such file'],
    ['EACCES is not transient', withCode('EACCES: permission denied', 'EACCES'), 'EACCES: permission denied'],
    ['a numeric code (SFTP status) is not transient', Object.assign(new Error('Failure'), { code: 4 }), 'Failure'],
    ['ssh2 client-authentication is not transient', Object.assign(new Error('All configured authentication methods failed'), { level: 'client-authentication' }), 'All configured authentication methods failed'],
    ['a TypeError', new TypeError("Cannot read properties of undefined (reading 'x')"), "Cannot read properties of undefined (reading 'x')"],
    ['a thrown string', 'just a string', 'just a string'],
    ['a thrown number', 42, '42'],
    ['undefined', undefined, 'undefined'],
    ['null', null, 'null'],
  ])('%s → INTERNAL', (_, thrown, message) => {
    const err = toCsiError(thrown);
    expect(err).toBeInstanceOf(CsiError);
    expect(status[err.code]).toBe('INTERNAL');
    expect(err.message).toBe(message);
  });

  test.each<[string, Error, string, string]>([
    ['a multi-line message', new Error('sshfs failed\nread: Connection reset by peer\nmore'), 'sshfs failed', 'INTERNAL'],
    ['a multi-line transient message', withCode('connect failed\n    at Socket.connect (net.js:1:1)', 'ECONNREFUSED'), 'connect failed', 'UNAVAILABLE'],
  ])('%s keeps only its first line, no stack (%s)', (_, thrown, firstLine, code) => {
    const err = toCsiError(thrown);
    expect(status[err.code]).toBe(code);
    expect(err.message).toBe(firstLine);
    expect(err.message).not.toContain('\n');
    expect(err.message).not.toMatch(/\bat .*:\d+:\d+/);
  });

  test('a very long first line is cut to 500 characters', () => {
    expect(toCsiError(new Error('x'.repeat(2000))).message).toHaveLength(500);
  });

  test('the stack of the original error is not in the message', () => {
    const original = new Error('boom');
    expect(toCsiError(original).message).toBe('boom');
    expect(toCsiError(original).message).not.toContain(original.stack!.split('\n')[1]!.trim());
  });
});

describe('errnoName', () => {
  test.each<[string, unknown, string | undefined]>([
    ['a named code', withCode('x', 'EIO'), 'EIO'],
    ['only errno, negative (libuv)', Object.assign(new Error('x'), { errno: -116 }), 'ESTALE'],
    ['only errno, positive', Object.assign(new Error('x'), { errno: 2 }), 'ENOENT'],
    ['a code that is not an errno name, with errno', Object.assign(new Error('x'), { code: 'Unknown system error -116', errno: -116 }), 'ESTALE'],
    ['an SFTP status number', Object.assign(new Error('x'), { code: 4 }), undefined],
    ['no code at all', new Error('x'), undefined],
    ['not an error', undefined, undefined],
  ])('%s → %s', (_, err, name) => {
    expect(errnoName(err)).toBe(name);
  });
});
