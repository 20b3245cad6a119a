import assert from 'node:assert/strict';
import { test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { SnapshotCache } from '../src/cache/snapshotCache.js';
import { EDGE_ROUTE_CONFIG, GATEWAY_CLUSTER, nodeGroupOf, relayCluster } from '../src/resource/names.js';
import { AdsListenError, startAdsServer } from '../src/server/adsServer.js';
import { TYPE_URLS } from '../src/resource/typeUrls.js';
import {
  adsClient,
  decodeAll,
  deltaRequest,
  EDGE_NODE,
  eventually,
  GRPC_NODE,
  INGRESS_NODE,
  log,
  protos,
  sotwRequest,
  startTestPlane,
  type TestPlane,
} from './support.js';

const beat = (plane: TestPlane, brokerId: string, port: number, executionIds: string[] = []) =>
  plane.state.applyHeartbeat({ brokerId, grpcAddress: `127.0.0.1:${port}`, executionIds });

const names = (r: { resources: readonly { typeUrl: string; value: Uint8Array }[] }) => decodeAll(r).map((m) => (m['name'] ?? m['cluster_name']) as string);

/** The domains of the edge route configuration in a response. */
function domainsOf(r: { resources: readonly { typeUrl: string; value: Uint8Array }[] }): string[] {
  const [config] = decodeAll(r) as { virtual_hosts: { domains: string[] }[] }[];
  return (config?.virtual_hosts ?? []).flatMap((v) => v.domains);
}

test('state of the world: Envoy gets clusters, endpoints, the listener and its routes, ACKs, and a change is a new version', async () => {
  await using plane = await startTestPlane();
  beat(plane, 'b1', 7001, ['inst1']);
  await eventually('b1 in the snapshot', () => plane.cache.snapshot('paddock-ingress')?.resources(TYPE_URLS.cluster).get(relayCluster('b1')));
  const client = adsClient(plane.server.address);
  try {
    const stream = client.sotw();
    stream.send(sotwRequest(TYPE_URLS.cluster, { node: EDGE_NODE }));
    const clusters = await stream.next();
    assert.equal(clusters.typeUrl, TYPE_URLS.cluster);
    assert.equal(clusters.controlPlane, 'paddock-xds');
    assert.deepEqual(names(clusters), [relayCluster('b1'), GATEWAY_CLUSTER], "each broker's relay, and the gateway that authorizes requests");
    stream.send(sotwRequest(TYPE_URLS.cluster, { versionInfo: clusters.versionInfo, responseNonce: clusters.nonce }));

    stream.send(sotwRequest(TYPE_URLS.loadAssignment, { resourceNames: [relayCluster('b1')] }));
    const eds = await stream.next();
    assert.deepEqual(names(eds), [relayCluster('b1')]);
    stream.send(sotwRequest(TYPE_URLS.loadAssignment, { versionInfo: eds.versionInfo, responseNonce: eds.nonce, resourceNames: [relayCluster('b1')] }));

    stream.send(sotwRequest(TYPE_URLS.listener));
    const listeners = await stream.next();
    assert.deepEqual(names(listeners), ['paddock-edge']);
    stream.send(sotwRequest(TYPE_URLS.listener, { versionInfo: listeners.versionInfo, responseNonce: listeners.nonce }));

    stream.send(sotwRequest(TYPE_URLS.routeConfiguration, { resourceNames: [EDGE_ROUTE_CONFIG] }));
    const routes = await stream.next();
    assert.ok(!domainsOf(routes).includes('inst1-3000.localhost'), 'no port is open yet');
    assert.ok(domainsOf(routes).includes('inst1-*'), "the running instance's other ports lead to its broker, which says that nothing listens");
    stream.send(sotwRequest(TYPE_URLS.routeConfiguration, { versionInfo: routes.versionInfo, responseNonce: routes.nonce, resourceNames: [EDGE_ROUTE_CONFIG] }));
    await eventually('four ACKs', () => (plane.acks.length === 4 ? true : undefined));
    assert.deepEqual(
      plane.acks.map((a) => [a.typeUrl, a.node.id]),
      [TYPE_URLS.cluster, TYPE_URLS.loadAssignment, TYPE_URLS.listener, TYPE_URLS.routeConfiguration].map((t) => [t, 'envoy-1']),
    );

    plane.state.applyPortEvent({ instanceId: 'inst1', brokerId: 'b1', open: [{ port: 3000 }], seq: 1, instanceEnded: false });
    const changed = await stream.next();
    assert.equal(changed.typeUrl, TYPE_URLS.routeConfiguration, 'only the routes changed');
    assert.notEqual(changed.versionInfo, routes.versionInfo);
    assert.ok(domainsOf(changed).includes('inst1-3000.localhost'));
    assert.ok(domainsOf(changed).includes('3000-inst1.localhost'), "E2B's form too");
    await stream.nothingFor(150);

    const [status0] = plane.server.status();
    assert.equal(status0?.node.id, 'envoy-1');
    assert.equal(status0?.group, 'paddock-edge');
    const rds = status0?.types.find((t) => t.typeUrl === TYPE_URLS.routeConfiguration);
    assert.deepEqual([rds?.sentVersion, rds?.ackedVersion, rds?.pending], [changed.versionInfo, routes.versionInfo, true]);
  } finally {
    client.close();
  }
});

test('a burst of changes is one version (debounce)', async () => {
  await using plane = await startTestPlane({ debounceMs: 100, debounceMaxMs: 1_000 });
  beat(plane, 'b1', 7001, ['inst1']);
  const client = adsClient(plane.server.address);
  try {
    const stream = client.sotw();
    await eventually('b1 in the snapshot', () => plane.cache.snapshot('paddock-edge')?.resources(TYPE_URLS.cluster).get(relayCluster('b1')));
    stream.send(sotwRequest(TYPE_URLS.routeConfiguration, { node: EDGE_NODE, resourceNames: [EDGE_ROUTE_CONFIG] }));
    const first = await stream.next();
    stream.send(sotwRequest(TYPE_URLS.routeConfiguration, { versionInfo: first.versionInfo, responseNonce: first.nonce, resourceNames: [EDGE_ROUTE_CONFIG] }));
    const buildsBefore = plane.controlPlane.builds;
    for (let seq = 1; seq <= 5; seq++) {
      plane.state.applyPortEvent({ instanceId: 'inst1', brokerId: 'b1', open: Array.from({ length: seq }, (_, i) => ({ port: 3000 + i })), seq, instanceEnded: false });
      await new Promise((r) => setTimeout(r, 10));
    }
    const pushed = await stream.next();
    for (let i = 0; i < 5; i++) assert.ok(domainsOf(pushed).includes(`inst1-${3000 + i}.localhost`));
    assert.equal(plane.controlPlane.builds - buildsBefore, 1, 'five changes within the debounce: one build');
    stream.send(sotwRequest(TYPE_URLS.routeConfiguration, { versionInfo: pushed.versionInfo, responseNonce: pushed.nonce, resourceNames: [EDGE_ROUTE_CONFIG] }));
    await stream.nothingFor(250);
  } finally {
    client.close();
  }
});

test('a NACK keeps the last good version; the rejected one is not sent again, the next one is', async () => {
  await using plane = await startTestPlane();
  beat(plane, 'b1', 7001);
  await eventually('b1', () => plane.cache.snapshot('paddock-edge')?.resources(TYPE_URLS.cluster).get(relayCluster('b1')));
  const client = adsClient(plane.server.address);
  try {
    const stream = client.sotw();
    stream.send(sotwRequest(TYPE_URLS.cluster, { node: EDGE_NODE }));
    const v1 = await stream.next();
    stream.send(sotwRequest(TYPE_URLS.cluster, { versionInfo: v1.versionInfo, responseNonce: v1.nonce }));
    beat(plane, 'b2', 7002);
    const v2 = await stream.next();
    assert.deepEqual(names(v2), [relayCluster('b1'), relayCluster('b2'), GATEWAY_CLUSTER]);
    // A NACK says the last version the client runs, and why it refused the new one.
    stream.send(sotwRequest(TYPE_URLS.cluster, { versionInfo: v1.versionInfo, responseNonce: v2.nonce, errorDetail: { code: 3, message: 'cluster paddock-relay.b2: no thanks' } }));
    await eventually('the NACK', () => plane.nacks[0]);
    assert.deepEqual(
      [plane.nacks[0]?.version, plane.nacks[0]?.keptVersion, plane.nacks[0]?.message],
      [v2.versionInfo, v1.versionInfo, 'cluster paddock-relay.b2: no thanks'],
    );
    const cds = () => plane.server.status()[0]?.types.find((t) => t.typeUrl === TYPE_URLS.cluster);
    assert.equal(cds()?.ackedVersion, v1.versionInfo, 'the good version is still v1');
    assert.deepEqual(cds()?.rejected, { version: v2.versionInfo, message: 'cluster paddock-relay.b2: no thanks' });
    await stream.nothingFor(300);

    beat(plane, 'b3', 7003);
    const v3 = await stream.next();
    assert.deepEqual(names(v3), [relayCluster('b1'), relayCluster('b2'), relayCluster('b3'), GATEWAY_CLUSTER]);
    stream.send(sotwRequest(TYPE_URLS.cluster, { versionInfo: v3.versionInfo, responseNonce: v3.nonce }));
    await eventually('v3 acknowledged', () => (cds()?.ackedVersion === v3.versionInfo ? true : undefined));
    assert.equal(cds()?.rejected, null);
  } finally {
    client.close();
  }
});

test('a request with a stale nonce is dropped; the same request with the current nonce is served', async () => {
  await using plane = await startTestPlane();
  beat(plane, 'b1', 7001);
  beat(plane, 'b2', 7002);
  await eventually('b2', () => plane.cache.snapshot('paddock-grpc')?.resources(TYPE_URLS.loadAssignment).get('paddock-broker.b2'));
  const client = adsClient(plane.server.address);
  try {
    const stream = client.sotw();
    stream.send(sotwRequest(TYPE_URLS.loadAssignment, { node: GRPC_NODE, resourceNames: ['paddock-broker.b1'] }));
    const first = await stream.next();
    assert.deepEqual(names(first), ['paddock-broker.b1']);
    const wider = ['paddock-broker.b1', 'paddock-broker.b2'];
    stream.send(sotwRequest(TYPE_URLS.loadAssignment, { versionInfo: first.versionInfo, responseNonce: 'not-the-last-nonce', resourceNames: wider }));
    await stream.nothingFor(300);
    stream.send(sotwRequest(TYPE_URLS.loadAssignment, { versionInfo: first.versionInfo, responseNonce: first.nonce, resourceNames: wider }));
    const second = await stream.next();
    assert.deepEqual(names(second), wider, 'a name newly subscribed is sent at the same version');
    assert.equal(second.versionInfo, first.versionInfo);
    assert.equal(plane.acks.length, 1, 'the stale request acknowledged nothing');
  } finally {
    client.close();
  }
});

test('delta: what changed, what is gone, ACK and NACK, and initial versions from an earlier stream', async () => {
  await using plane = await startTestPlane();
  beat(plane, 'b1', 7001);
  await eventually('b1', () => plane.cache.snapshot('paddock-ingress')?.resources(TYPE_URLS.cluster).get(relayCluster('b1')));
  const client = adsClient(plane.server.address);
  try {
    const stream = client.delta();
    stream.send(deltaRequest(TYPE_URLS.cluster, { node: INGRESS_NODE }));
    const first = await stream.next();
    assert.deepEqual(first.resources.map((r) => r.name), [relayCluster('b1')]);
    assert.deepEqual(first.removedResources, []);
    stream.send(deltaRequest(TYPE_URLS.cluster, { responseNonce: first.nonce }));

    beat(plane, 'b2', 7002);
    const added = await stream.next();
    assert.deepEqual(added.resources.map((r) => r.name), [relayCluster('b2')], 'only the new cluster');
    stream.send(deltaRequest(TYPE_URLS.cluster, { responseNonce: added.nonce, errorDetail: { code: 3, message: 'refused b2' } }));
    await eventually('the NACK', () => plane.nacks[0]);
    await stream.nothingFor(200);

    stream.send(deltaRequest(TYPE_URLS.loadAssignment, { resourceNamesSubscribe: [relayCluster('b1'), 'paddock-relay.nope'] }));
    const eds = await stream.next();
    assert.deepEqual(eds.resources.map((r) => r.name), [relayCluster('b1')]);
    assert.deepEqual(eds.removedResources, ['paddock-relay.nope'], 'a name that does not exist is said to be removed');
    const [assignment] = decodeAll({ resources: eds.resources.map((r) => r.resource) }) as { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: { address: string; port_value: number } } } }[] }[] }[];
    const address = assignment?.endpoints[0]?.lb_endpoints[0]?.endpoint.address.socket_address;
    assert.deepEqual([address?.address, address?.port_value], ['127.0.0.1', 7001], "the ingress reaches the broker's Relay RPC");
    stream.send(deltaRequest(TYPE_URLS.loadAssignment, { responseNonce: eds.nonce }));
    await stream.nothingFor(150);

    // A reconnect that says what it has is sent only the rest.
    const again = client.delta();
    const known = Object.fromEntries(first.resources.map((r) => [r.name, r.version]));
    again.send(deltaRequest(TYPE_URLS.cluster, { node: INGRESS_NODE, initialResourceVersions: known }));
    const rest = await again.next();
    assert.deepEqual(rest.resources.map((r) => r.name), [relayCluster('b2')]);
  } finally {
    client.close();
  }
});

test('delta: a broker that goes is removed', async () => {
  await using plane = await startTestPlane();
  beat(plane, 'b1', 7001);
  beat(plane, 'b2', 7002);
  await eventually('b2', () => plane.cache.snapshot('paddock-grpc')?.resources(TYPE_URLS.listener).get('paddock-broker.b2'));
  const client = adsClient(plane.server.address);
  try {
    const stream = client.delta();
    stream.send(deltaRequest(TYPE_URLS.listener, { node: GRPC_NODE, resourceNamesSubscribe: ['paddock-broker', 'paddock-broker.b2'] }));
    const first = await stream.next();
    assert.deepEqual(first.resources.map((r) => r.name).sort(), ['paddock-broker', 'paddock-broker.b2']);
    stream.send(deltaRequest(TYPE_URLS.listener, { responseNonce: first.nonce }));
    // A broker is gone when its heartbeats stop: b1 beats on, b2 falls silent past the stale time.
    plane.advance(120_000);
    beat(plane, 'b1', 7001);
    plane.state.sweep();
    const gone = await stream.next();
    assert.deepEqual(gone.resources, []);
    assert.deepEqual(gone.removedResources, ['paddock-broker.b2']);
  } finally {
    client.close();
  }
});

test('a stream is refused with INVALID_ARGUMENT for an unknown node group, a missing node, or no type URL', async () => {
  await using plane = await startTestPlane();
  const client = adsClient(plane.server.address);
  try {
    const unknown = client.sotw();
    unknown.send(sotwRequest(TYPE_URLS.cluster, { node: { id: 'n1', cluster: 'my-cluster', userAgentName: 'envoy' } }));
    const err = await unknown.ended;
    assert.equal(err?.code, status.INVALID_ARGUMENT);
    assert.match(err?.details ?? '', /node "n1" \(envoy\) has cluster "my-cluster": set node.cluster in its bootstrap to paddock-edge \(Envoy\), paddock-ingress/);

    const anonymous = client.delta();
    anonymous.send(deltaRequest(TYPE_URLS.cluster));
    assert.match((await anonymous.ended)?.details ?? '', /the first request of a stream must carry the node/);

    const untyped = client.sotw();
    untyped.send(sotwRequest('', { node: EDGE_NODE }));
    const untypedErr = await untyped.ended;
    assert.equal(untypedErr?.code, status.INVALID_ARGUMENT);
    assert.match(untypedErr?.details ?? '', /type_url is required/);
    assert.deepEqual(plane.server.status(), [], 'refused streams hold nothing');
  } finally {
    client.close();
  }
});

test('a taken port is refused with the address and the settings that chose it', async () => {
  await using plane = await startTestPlane();
  await assert.rejects(
    startAdsServer({ host: '127.0.0.1', port: plane.server.port, watcher: new SnapshotCache(nodeGroupOf), protos, log }),
    (err: unknown) => {
      assert.ok(err instanceof AdsListenError);
      assert.match(err.message, new RegExp(`xDS cannot listen on 127.0.0.1:${plane.server.port} \\(PADDOCK_XDS_HOST, PADDOCK_XDS_PORT\\)`));
      return true;
    },
  );
});
