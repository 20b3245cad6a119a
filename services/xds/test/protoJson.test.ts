import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadEnvoyProtos } from '../src/protos/envoyProtos.js';
import { ProtoJsonError } from '../src/protos/protoJson.js';

const protos = loadEnvoyProtos();
const CLUSTER = 'envoy.config.cluster.v3.Cluster';

function refused(typeName: string, json: unknown, path: string, reason: RegExp): void {
  assert.throws(
    () => protos.encodeJson(typeName, json),
    (err: unknown) => {
      assert.ok(err instanceof ProtoJsonError, `expected a ProtoJsonError, got ${String(err)}`);
      assert.equal(err.path, path);
      assert.match(err.reason, reason);
      return true;
    },
  );
}

test('proto3 JSON is encoded as Envoy reads it: durations, wrappers, enums, Any, Struct', () => {
  const json = {
    name: 'c1',
    type: 'EDS',
    connect_timeout: '1.250s',
    eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' }, service_name: 'c1' },
    circuit_breakers: { thresholds: [{ priority: 'HIGH', max_connections: 7 }] },
    metadata: { filter_metadata: { 'io.paddock': { broker_id: 'b1', port: 3000, tags: ['a', true, null] } } },
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': { '@type': 'type.googleapis.com/google.protobuf.Duration', value: '3s' },
    },
  };
  const decoded = protos.decode(CLUSTER, protos.encodeJson(CLUSTER, json));
  assert.deepEqual(decoded['connect_timeout'], { seconds: '1', nanos: 250_000_000 });
  assert.equal(decoded['type'], 'EDS');
  const eds = decoded['eds_cluster_config'] as { eds_config: { ads: object | null; resource_api_version: string } };
  assert.notEqual(eds.eds_config.ads, null, 'an empty message that is set stays set (ads: {})');
  assert.equal(eds.eds_config.resource_api_version, 'V3');
  const threshold = (decoded['circuit_breakers'] as { thresholds: { priority: string; max_connections: { value: number } }[] }).thresholds[0];
  assert.deepEqual([threshold?.priority, threshold?.max_connections.value], ['HIGH', 7]);
  const struct = (decoded['metadata'] as { filter_metadata: Record<string, { fields: Record<string, Record<string, unknown>> }> }).filter_metadata['io.paddock'];
  assert.equal(struct?.fields['broker_id']?.['stringValue'], 'b1');
  assert.equal(struct?.fields['port']?.['numberValue'], 3000);
  const any = (decoded['typed_extension_protocol_options'] as Record<string, { type_url: string; value: Uint8Array }>)['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'];
  assert.equal(any?.type_url, 'type.googleapis.com/google.protobuf.Duration');
  assert.deepEqual(protos.decode('google.protobuf.Duration', any.value), { seconds: '3', nanos: 0 });
});

test('lowerCamelCase names are the same fields as the .proto names', () => {
  const snake = protos.encodeJson(CLUSTER, { name: 'c', connect_timeout: '5s' });
  const camel = protos.encodeJson(CLUSTER, { name: 'c', connectTimeout: '5s' });
  assert.deepEqual(camel, snake);
  refused(CLUSTER, { name: 'c', connect_timeout: '5s', connectTimeout: '6s' }, 'connectTimeout', /given twice/);
});

test('an unknown field, a bad duration, an unknown type, a bad enum or two members of a oneof are refused with where they are', () => {
  refused(CLUSTER, { name: 'c', conect_timeout: '5s' }, 'conect_timeout', /unknown field "conect_timeout"/);
  refused(CLUSTER, { name: 'c', connect_timeout: '5 s' }, 'connect_timeout', /expected a duration/);
  refused(CLUSTER, { name: 'c', connect_timeout: 5 }, 'connect_timeout', /expected a duration/);
  refused(CLUSTER, { name: 'c', connect_timeout: '315576000001s' }, 'connect_timeout', /out of range/);
  refused(CLUSTER, { name: 'c', type: 'STRICT_DNZ' }, 'type', /"STRICT_DNZ" is not a value of envoy.config.cluster.v3.Cluster.DiscoveryType/);
  refused(CLUSTER, { name: 'c', type: 'EDS', cluster_type: { name: 'x' } }, 'cluster_type', /oneof cluster_discovery_type: both type and cluster_type/);
  refused(
    'envoy.config.listener.v3.Listener',
    { name: 'l', filter_chains: [{ filters: [{ name: 'f', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.nope.v3.Nope' } }] }] },
    'filter_chains[0].filters[0].typed_config',
    /unknown type envoy.extensions.filters.network.nope.v3.Nope/,
  );
  refused(
    'envoy.config.listener.v3.Listener',
    {
      name: 'l',
      filter_chains: [
        {
          filters: [
            {
              name: 'f',
              typed_config: {
                '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                stat_prefix: 's',
                stream_idle_timout: '5s',
              },
            },
          ],
        },
      ],
    },
    'filter_chains[0].filters[0].typed_config.stream_idle_timout',
    /unknown field/,
  );
  refused(CLUSTER, { name: 7 }, 'name', /expected a string, got 7/);
  refused(CLUSTER, { name: 'c', per_connection_buffer_limit_bytes: -1 }, 'per_connection_buffer_limit_bytes', /expected a uint32/);
  refused(CLUSTER, { name: 'c', health_checks: {} }, 'health_checks', /expected an array/);
  refused(CLUSTER, ['c'], '', /expected an object, got an array/);
});

test('null means the default, except inside a Struct where it is a value', () => {
  assert.deepEqual(protos.encodeJson(CLUSTER, { name: 'c', connect_timeout: null }), protos.encodeJson(CLUSTER, { name: 'c' }));
  const withNull = protos.decode(CLUSTER, protos.encodeJson(CLUSTER, { name: 'c', metadata: { filter_metadata: { k: { v: null } } } }));
  const value = (withNull['metadata'] as { filter_metadata: Record<string, { fields: Record<string, Record<string, unknown>> }> }).filter_metadata['k']?.fields['v'];
  assert.equal(value?.['kind'], 'nullValue');
});
