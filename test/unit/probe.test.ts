// src/node/probe.ts: what a failed statfs of a mount means for it — mount again, wait, or report.
import { brokenKind } from '../../src/mounts/probe.js';

describe('brokenKind', () => {
  test.each<[string, string, 'gone' | 'unreachable' | 'error']>([
    ['NFS export re-created on the server', "cannot read file system information for '/s': Stale file handle", 'gone'],
    ['sshfs daemon died', "cannot read file system information for '/s': Transport endpoint is not connected", 'gone'],
    ['sshfs reconnecting to a dead server', "cannot read file system information for '/s': Input/output error", 'unreachable'],
    ['NFS soft mount, server down', "cannot read file system information for '/s': Input/output error", 'unreachable'],
    ['host down', 'Host is down', 'unreachable'],
    ['refused', 'Connection refused', 'unreachable'],
    ['permission', "cannot read file system information for '/s': Permission denied", 'error'],
    ['no such path', "cannot read file system information for '/s': No such file or directory", 'error'],
  ])('%s → %s', (_, reason, kind) => {
    expect(brokenKind(reason)).toBe(kind);
  });
});
