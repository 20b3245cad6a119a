// The ingress's host names: `{id}-{port}.{BASE_DOMAIN}` and E2B's `{port}-{id}.{BASE_DOMAIN}`, in any case,
// with or without the listener's port and a trailing dot; anything else is no host of the ingress.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hostnameOf, parseIngressHost } from '../src/ingress/ingressHost.js';

const ID = '01jd8x2k3m4n5p6q7r8s9t';

test("Paddock's form and E2B's name the same instance and port", () => {
  assert.deepEqual(parseIngressHost(`${ID}-8000.localhost`, 'localhost'), { hostname: `${ID}-8000.localhost`, instanceId: ID, port: 8000 });
  assert.deepEqual(parseIngressHost(`8000-${ID}.localhost`, 'localhost'), { hostname: `8000-${ID}.localhost`, instanceId: ID, port: 8000 });
});

test('the listener port, upper case and a trailing dot do not change the host', () => {
  const expected = { hostname: `${ID}-3000.localhost`, instanceId: ID, port: 3000 };
  assert.deepEqual(parseIngressHost(`${ID}-3000.localhost:8080`, 'localhost'), expected);
  assert.deepEqual(parseIngressHost(`${ID.toUpperCase()}-3000.LOCALHOST`, 'localhost'), expected);
  assert.deepEqual(parseIngressHost(`${ID}-3000.localhost.`, 'localhost'), expected);
  assert.deepEqual(parseIngressHost(`${ID}-3000.localhost.:8080`, 'localhost'), expected);
  assert.deepEqual(parseIngressHost(`  ${ID}-3000.localhost  `, 'localhost'), expected);
});

test('ports 1 and 65535 are in range; 0, 65536, leading zeros and six digits are not', () => {
  assert.equal(parseIngressHost(`${ID}-1.localhost`, 'localhost')?.port, 1);
  assert.equal(parseIngressHost(`${ID}-65535.localhost`, 'localhost')?.port, 65535);
  assert.equal(parseIngressHost(`65535-${ID}.localhost`, 'localhost')?.port, 65535);
  for (const label of [`${ID}-0`, `${ID}-65536`, `${ID}-99999`, `${ID}-080`, `${ID}-123456`, `0-${ID}`, `65536-${ID}`]) {
    assert.equal(parseIngressHost(`${label}.localhost`, 'localhost'), null, label);
  }
});

test('another domain, a deeper name, or a label without an id and a port is no host of the ingress', () => {
  const base = 'paddock.example.com';
  assert.deepEqual(parseIngressHost(`${ID}-8000.paddock.example.com`, base), { hostname: `${ID}-8000.paddock.example.com`, instanceId: ID, port: 8000 });
  for (const host of [
    `${ID}-8000.localhost`,
    `${ID}-8000.example.com`,
    `${ID}-8000.evilpaddock.example.com`,
    `${ID}-8000.paddock.example.com.evil.org`,
    `a.${ID}-8000.paddock.example.com`,
    `${ID}.paddock.example.com`,
    `8000.paddock.example.com`,
    `${ID}-.paddock.example.com`,
    `-8000.paddock.example.com`,
    `${ID}_x-8000.paddock.example.com`,
    'paddock.example.com',
    `${'a'.repeat(60)}-8000.paddock.example.com`,
    '127.0.0.1:8080',
    '[::1]:8080',
    '',
  ]) {
    assert.equal(parseIngressHost(host, base), null, host);
  }
  assert.equal(parseIngressHost(undefined, base), null);
});

test('ids with hyphens: the last hyphen ends the id in Paddock\'s form, the first begins it in E2B\'s', () => {
  assert.deepEqual(parseIngressHost('my-svc-9000.localhost', 'localhost'), { hostname: 'my-svc-9000.localhost', instanceId: 'my-svc', port: 9000 });
  assert.deepEqual(parseIngressHost('9000-my-svc.localhost', 'localhost'), { hostname: '9000-my-svc.localhost', instanceId: 'my-svc', port: 9000 });
  // Both forms fit: Paddock's wins, as services/xds gives it the host.
  assert.deepEqual(parseIngressHost('123-456.localhost', 'localhost'), { hostname: '123-456.localhost', instanceId: '123', port: 456 });
});

test('hostnameOf: lowercase, no port, no trailing dot; nothing for what is no DNS name', () => {
  assert.equal(hostnameOf('A-1.Example.COM:443'), 'a-1.example.com');
  assert.equal(hostnameOf('localhost.'), 'localhost');
  assert.equal(hostnameOf('[::1]:80'), null);
  assert.equal(hostnameOf('a b'), null);
  assert.equal(hostnameOf(''), null);
});
