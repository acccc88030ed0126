// src/util/listen.ts: the HOST:PORT addresses --metrics-address and --health-address take.
import { parseListenAddress, httpUrl } from '../../src/util/listen.js';

describe('parseListenAddress', () => {
  test.each<[string, { host: string; port: number } | undefined]>([
    ['0.0.0.0:9808', { host: '0.0.0.0', port: 9808 }],
    ['127.0.0.1:0', { host: '127.0.0.1', port: 0 }],
    [':29810', { host: '0.0.0.0', port: 29810 }],
    ['localhost:65535', { host: 'localhost', port: 65535 }],
    ['[::1]:9808', { host: '::1', port: 9808 }],
    ['[::]:9808', { host: '::', port: 9808 }],
    ['9808', undefined],
    ['0.0.0.0:', undefined],
    ['0.0.0.0:65536', undefined],
    ['0.0.0.0:123456', undefined],
    ['::1:9808', undefined],
    ['host name:80', undefined],
    ['http://0.0.0.0:80', undefined],
    ['nine-thousand', undefined],
  ])('%s', (address, expected) => {
    expect(parseListenAddress(address)).toEqual(expected);
  });

  test('httpUrl brackets IPv6 hosts', () => {
    expect(httpUrl('::1', 9808, '/healthz')).toBe('http://[::1]:9808/healthz');
    expect(httpUrl('127.0.0.1', 9808, '/healthz')).toBe('http://127.0.0.1:9808/healthz');
  });
});
