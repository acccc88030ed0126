// /proc/net/tcp{,6} as the fence reads it: which connections a mount's processes hold.
import { parseProcNetTcp, ssEndpoint } from '../../src/mounts/connections.js';

const HEADER = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';

describe('parseProcNetTcp', () => {
  test.each([
    [
      'IPv4 (each word little-endian)',
      '   0: 0201E70A:B3AA 0100E70A:08AE 01 00000000:00000000 00:00000000 00000000     0        0 48213 1 0000000000000000 20 4 30 10 -1',
      { inode: '48213', local: { address: '10.231.1.2', port: 45994 }, remote: { address: '10.231.0.1', port: 2222 } },
    ],
    [
      'IPv6',
      '   0: 000080FE00000000FF00000200000001:0016 B80D0120000000000000000001000000:C350 01 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 20 4 30 10 -1',
      { inode: '777', local: { address: 'fe80:0:0:0:200:ff:100:0', port: 22 }, remote: { address: '2001:db8:0:0:0:0:0:1', port: 50000 } },
    ],
    [
      'IPv4-mapped IPv6',
      '   1: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 9 1 0000000000000000 20 4 30 10 -1',
      { inode: '9', local: { address: '127.0.0.1', port: 8080 }, remote: { address: '127.0.0.1', port: 54321 } },
    ],
  ])('%s', (_, line, expected) => {
    expect(parseProcNetTcp(HEADER + line + '\n')).toEqual([expected]);
  });

  test('the header, blank and short lines are skipped', () => {
    expect(parseProcNetTcp(`${HEADER}\n   3: garbage\n`)).toEqual([]);
  });
});

test.each([
  [{ address: '10.0.0.1', port: 22 }, '10.0.0.1:22'],
  [{ address: 'fd00:0:0:0:0:0:0:1', port: 2049 }, '[fd00:0:0:0:0:0:0:1]:2049'],
])('ss filter for %j is %s', (endpoint, text) => {
  expect(ssEndpoint(endpoint)).toBe(text);
});
