import assert from 'node:assert/strict';
import { test } from 'node:test';
import { byPort, parseListeners } from '../src/socketTable.js';

const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 2330030 1 000000008ac73a3f 100 0 0 10 0
   1: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 2330031 1 000000008ac73a3f 100 0 0 10 0
   2: 0100007F:1F40 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000  1000        0 2330032 1 000000008ac73a3f 100 0 0 10 0
   3: 0A00A8C0:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2330033 1 000000008ac73a3f 100 0 0 10 0
`;

const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:2328 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0 100 0 0 10 0
   1: 00000000000000000000000001000000:1F41 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 2 1 0 100 0 0 10 0
   2: 0000000000000000FFFF00000100007F:1F42 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 3 1 0 100 0 0 10 0
   3: 000080FE00000000FF005452123456FE:1F43 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4 1 0 100 0 0 10 0
`;

test('IPv4 LISTEN sockets: addresses in host byte order, ports big-endian; connections left out', () => {
  assert.deepEqual(parseListeners(TCP, 4), [
    { port: 8000, address: '127.0.0.1', family: 4 },
    { port: 80, address: '0.0.0.0', family: 4 },
    { port: 22, address: '192.168.0.10', family: 4 },
  ]);
});

test('IPv6 LISTEN sockets: each 32-bit word in host byte order, RFC 5952 text, IPv4-mapped shown as such', () => {
  assert.deepEqual(parseListeners(TCP6, 6), [
    { port: 9000, address: '::', family: 6 },
    { port: 8001, address: '::1', family: 6 },
    { port: 8002, address: '::ffff:127.0.0.1', family: 6 },
    { port: 8003, address: 'fe80::5254:ff:fe56:3412', family: 6 },
  ]);
});

test('malformed lines and the header are skipped', () => {
  assert.deepEqual(parseListeners('garbage\n  0: zz:1F40 00000000:0000 0A\n\n', 4), []);
});

test('one listener per port, the widest address shown, ordered by port', () => {
  const ports = byPort([
    { port: 8000, address: '127.0.0.1', family: 4 },
    { port: 3000, address: '::1', family: 6 },
    { port: 8000, address: '::', family: 6 },
    { port: 8000, address: '0.0.0.0', family: 4 },
    { port: 3000, address: '127.0.0.1', family: 4 },
  ]);
  assert.deepEqual([...ports.keys()], [3000, 8000]);
  assert.deepEqual(ports.get(8000), { port: 8000, address: '0.0.0.0', family: 4 });
  assert.deepEqual(ports.get(3000), { port: 3000, address: '127.0.0.1', family: 4 });
});
