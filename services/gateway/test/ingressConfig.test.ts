// The ingress's settings are checked once, at start, each mistake named by its variable.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from '@paddock/errors';
import { gatewayConfig } from '../src/config.js';
import { ingressOrigin } from '../src/ingress/ingressHost.js';

const base = { PADDOCK_HOME: '/srv/paddock' };

test('defaults: 127.0.0.1:8080, localhost, xds on 127.0.0.1:18000, the key beside the plane', () => {
  const { ingress } = gatewayConfig(base);
  assert.deepEqual(ingress, {
    host: '127.0.0.1',
    port: 8080,
    baseDomain: 'localhost',
    xdsAddress: '127.0.0.1:18000',
    keyFile: '/srv/paddock/plane/ingress-key',
    sessionTtlMs: 12 * 3600 * 1000,
    publicUrl: undefined,
    publicIngressUrl: undefined,
  });
  assert.ok(Object.isFrozen(ingress));
  assert.deepEqual(gatewayConfig(base).bridge, { host: '127.0.0.1', port: 8082 });
  assert.equal(gatewayConfig({ ...base, PADDOCK_PORT: '0', PADDOCK_INGRESS_PORT: '0', PADDOCK_BRIDGE_PORT: '0' }).ingress.port, 0, 'several 0s are no clash');
  assert.equal(gatewayConfig({ ...base, PADDOCK_XDS_URL: 'grpc://10.0.0.5:18001' }).ingress.xdsAddress, '10.0.0.5:18001');
  assert.equal(gatewayConfig({ ...base, PADDOCK_BASE_DOMAIN: 'Apps.Example.COM' }).ingress.baseDomain, 'apps.example.com');
  assert.equal(gatewayConfig({ ...base, PADDOCK_INGRESS_PORT: '0' }).ingress.port, 0);
});

test('mistakes are refused, naming the variable', () => {
  const refused = (env: Record<string, string>, setting: string) =>
    assert.throws(() => gatewayConfig({ ...base, ...env }), (err: unknown) => err instanceof ConfigError && err.setting === setting, JSON.stringify(env));
  refused({ PADDOCK_BASE_DOMAIN: 'not a domain' }, 'PADDOCK_BASE_DOMAIN');
  refused({ PADDOCK_BASE_DOMAIN: '.localhost' }, 'PADDOCK_BASE_DOMAIN');
  refused({ PADDOCK_XDS_URL: 'localhost' }, 'PADDOCK_XDS_URL');
  refused({ PADDOCK_XDS_URL: 'https://xds:443/path' }, 'PADDOCK_XDS_URL');
  refused({ PADDOCK_XDS_URL: '127.0.0.1:70000' }, 'PADDOCK_XDS_URL');
  refused({ PADDOCK_INGRESS_PORT: '70000' }, 'PADDOCK_INGRESS_PORT');
  refused({ PADDOCK_INGRESS_PORT: '7070', PADDOCK_PORT: '7070' }, 'PADDOCK_INGRESS_PORT');
  refused({ PADDOCK_BRIDGE_PORT: '8080' }, 'PADDOCK_BRIDGE_PORT');
  refused({ PADDOCK_INGRESS_SESSION_HOURS: '0' }, 'PADDOCK_INGRESS_SESSION_HOURS');
  refused({ PADDOCK_PUBLIC_URL: 'https://paddock.example.com/ui' }, 'PADDOCK_PUBLIC_URL');
  refused({ PADDOCK_PUBLIC_INGRESS_URL: 'https://other.example.com' }, 'PADDOCK_PUBLIC_INGRESS_URL');
  refused({ PADDOCK_PUBLIC_INGRESS_URL: 'ftp://localhost' }, 'PADDOCK_PUBLIC_INGRESS_URL');
});

test("a host's origin: the ingress's own port, or the scheme and port of the public URL in front of it", () => {
  assert.equal(ingressOrigin('a-1.localhost', { port: 8080, publicIngressUrl: undefined }), 'http://a-1.localhost:8080');
  assert.equal(ingressOrigin('a-1.localhost', { port: 80, publicIngressUrl: undefined }), 'http://a-1.localhost');
  assert.equal(ingressOrigin('a-1.apps.example.com', { port: 8080, publicIngressUrl: 'https://apps.example.com' }), 'https://a-1.apps.example.com');
  assert.equal(ingressOrigin('a-1.apps.example.com', { port: 0, publicIngressUrl: 'https://apps.example.com:8443' }), 'https://a-1.apps.example.com:8443');
  assert.equal(ingressOrigin('a-1.localhost', { port: 0, publicIngressUrl: undefined }), null);
});
