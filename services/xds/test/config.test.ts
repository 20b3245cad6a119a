import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from '@paddock/errors';
import { xdsConfig } from '../src/config.js';

test("Envoy's edge settings default to the plane's files and the gateway's ingress on this machine", () => {
  const config = xdsConfig({ PADDOCK_HOME: '/srv/paddock' });
  assert.deepEqual(config.edgeProxy, {
    relayTls: { caFile: '/srv/paddock/plane/ca.crt', certFile: '/srv/paddock/plane/edge.crt', keyFile: '/srv/paddock/plane/edge.key' },
    authz: { host: '127.0.0.1', port: 8080 },
    listenerTls: null,
  });
  assert.ok(Object.isFrozen(config.edgeProxy));
  const set = xdsConfig({
    PADDOCK_XDS_EDGE_TLS_CA: '/etc/envoy/ca.crt',
    PADDOCK_XDS_EDGE_TLS_CERT: '/etc/envoy/edge.crt',
    PADDOCK_XDS_EDGE_TLS_KEY: '/etc/envoy/edge.key',
    PADDOCK_XDS_EDGE_AUTHZ: 'gateway.internal:8081',
    PADDOCK_XDS_EDGE_LISTENER_CERT: '/etc/envoy/wildcard.crt',
    PADDOCK_XDS_EDGE_LISTENER_KEY: '/etc/envoy/wildcard.key',
  }).edgeProxy;
  assert.deepEqual(set.relayTls, { caFile: '/etc/envoy/ca.crt', certFile: '/etc/envoy/edge.crt', keyFile: '/etc/envoy/edge.key' });
  assert.deepEqual(set.authz, { host: 'gateway.internal', port: 8081 }, 'a name: Envoy resolves it');
  assert.deepEqual(set.listenerTls, { certFile: '/etc/envoy/wildcard.crt', keyFile: '/etc/envoy/wildcard.key' });
});

test('an authorization address that is not host:port, or half of the listener certificate, is refused naming the setting', () => {
  const refused = (env: Record<string, string>, name: string) =>
    assert.throws(() => xdsConfig(env), (err: unknown) => err instanceof ConfigError && err.message.includes(name));
  refused({ PADDOCK_XDS_EDGE_AUTHZ: '127.0.0.1' }, 'PADDOCK_XDS_EDGE_AUTHZ');
  refused({ PADDOCK_XDS_EDGE_AUTHZ: '127.0.0.1:70000' }, 'PADDOCK_XDS_EDGE_AUTHZ');
  refused({ PADDOCK_XDS_EDGE_LISTENER_CERT: '/etc/envoy/wildcard.crt' }, 'PADDOCK_XDS_EDGE_LISTENER_KEY');
  refused({ PADDOCK_XDS_EDGE_LISTENER_KEY: '/etc/envoy/wildcard.key' }, 'PADDOCK_XDS_EDGE_LISTENER_CERT');
});
