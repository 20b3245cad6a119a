// The incremental build: what a SnapshotBuilder keeps between snapshots never shows in what it serves.
// Each snapshot it builds after changes is byte for byte the one built from nothing, and the route
// configuration assembled from kept virtual hosts is exactly protobufjs's encoding of the whole.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Snapshot } from '../src/cache/snapshot.js';
import { ProtoJsonError } from '../src/protos/protoJson.js';
import { EDGE_ROUTE_CONFIG, NODE_GROUPS, type NodeGroup } from '../src/resource/names.js';
import type { BrokerState, InstanceState, OpenPort, PaddockState, PortVisibility } from '../src/resource/paddockState.js';
import { ResourceEncoder } from '../src/resource/resourceEncoder.js';
import { buildSnapshots, SnapshotBuilder, type SnapshotOptions } from '../src/resource/snapshots.js';
import { MESSAGE_TYPES, PUSH_ORDER, TYPE_URLS } from '../src/resource/typeUrls.js';
import { protos } from './support.js';

const OPTIONS: SnapshotOptions = {
  baseDomain: 'localhost',
  edgeListen: { host: '127.0.0.1', port: 8080 },
  edgeProxy: { relayTls: { caFile: '/p/ca.crt', certFile: '/p/edge.crt', keyFile: '/p/edge.key' }, authz: { host: '127.0.0.1', port: 8081 }, listenerTls: null },
};

function broker(id: string, port: number): BrokerState {
  return { id, grpc: { host: '127.0.0.1', port }, relay: { host: '127.0.0.1', port: port + 1 } };
}

function instance(id: string, brokerId: string, ports: [number, PortVisibility][]): InstanceState {
  return { id, brokerId, ports: new Map<number, OpenPort>(ports.map(([port, visibility]) => [port, { port, visibility }])) };
}

function stateOf(brokers: BrokerState[], instances: InstanceState[]): PaddockState {
  return { brokers: new Map(brokers.map((b) => [b.id, b])), instances: new Map(instances.map((i) => [i.id, i])) };
}

function routesOf(snapshots: Map<NodeGroup, Snapshot>, group: NodeGroup = NODE_GROUPS.edge) {
  const routes = snapshots.get(group)?.resources(TYPE_URLS.routeConfiguration).get(EDGE_ROUTE_CONFIG);
  assert.ok(routes);
  return routes;
}

/** Every resource of every group, as bytes and versions: what clients are sent. */
function served(snapshots: Map<NodeGroup, Snapshot>): unknown {
  return [...snapshots].map(([group, s]) => [group, PUSH_ORDER.map((t) => [s.version(t), [...s.resources(t).values()].map((r) => [r.name, Buffer.from(r.body).toString('base64')])])]);
}

test('after each change the builder serves exactly what a build from nothing serves', () => {
  const builder = new SnapshotBuilder(OPTIONS, protos);
  const states = [
    stateOf([broker('b1', 7000)], [instance('i1', 'b1', [[3000, 'private'], [5173, 'private']]), instance('i2', 'b1', [])]),
    // A port opens, a visibility changes, an instance comes and one goes, a broker joins.
    stateOf([broker('b1', 7000), broker('b2', 7100)], [instance('i1', 'b1', [[3000, 'public'], [5173, 'private'], [8000, 'private']]), instance('i3', 'b2', [[3000, 'private']])]),
    // The broker of i1 moves, i3's broker goes (its routes with it).
    stateOf([{ ...broker('b1', 7200) }], [instance('i1', 'b1', [[3000, 'public']]), instance('i3', 'b2', [[3000, 'private']])]),
    stateOf([], []),
    stateOf([broker('b1', 7000)], [instance('i1', 'b1', [[3000, 'private'], [5173, 'private']]), instance('i2', 'b1', [])]),
  ];
  for (const [n, state] of states.entries()) {
    const kept = builder.build(state);
    assert.deepEqual(served(kept), served(buildSnapshots(state, OPTIONS, protos)), `state ${n}`);
    for (const group of [NODE_GROUPS.edge, NODE_GROUPS.ingress]) {
      const routes = routesOf(kept, group);
      assert.deepEqual(Buffer.from(routes.body), Buffer.from(protos.encodeJson(MESSAGE_TYPES.routeConfiguration, routes.json)), `state ${n}, ${group}: the whole message's encoding`);
    }
  }
});

test("an unchanged port's virtual host is the one built before; a changed one is built anew", () => {
  const builder = new SnapshotBuilder(OPTIONS, protos);
  const hostsOf = (snapshots: Map<NodeGroup, Snapshot>, group: NodeGroup = NODE_GROUPS.edge) =>
    new Map((routesOf(snapshots, group).json['virtual_hosts'] as { name: string }[]).map((h) => [h.name, h]));
  const first = hostsOf(builder.build(stateOf([broker('b1', 7000)], [instance('i1', 'b1', [[3000, 'private'], [5173, 'private']])])));
  const secondSnapshots = builder.build(stateOf([broker('b1', 7000)], [instance('i1', 'b1', [[3000, 'private'], [5173, 'public']])]));
  const second = hostsOf(secondSnapshots);
  assert.equal(second.get('i1-3000'), first.get('i1-3000'), 'the same object: its encoding is kept');
  assert.equal(second.get('i1-closed'), first.get('i1-closed'));
  assert.notEqual(second.get('i1-5173'), first.get('i1-5173'), 'its visibility changed');
  assert.equal(hostsOf(secondSnapshots, NODE_GROUPS.ingress).get('i1-3000'), second.get('i1-3000'), 'Envoy and the ingress share their hosts');
  assert.ok(Object.isFrozen(second.get('i1-3000')), 'an older snapshot still holds it: it cannot change in place');
});

test('an itemized resource keeps its fields in number order around the items, and a bad item is refused where it is', () => {
  const encoder = new ResourceEncoder(protos);
  const json = {
    name: 'r',
    virtual_hosts: [{ name: 'a', domains: ['a.localhost'] }, { name: 'b', domains: ['b.localhost'] }],
    // Fields numbered after virtual_hosts (2).
    validate_clusters: false,
    response_headers_to_remove: ['server'],
  };
  const resource = { name: 'r', typeUrl: TYPE_URLS.routeConfiguration, json, references: new Map(), itemized: 'virtual_hosts' };
  assert.deepEqual(Buffer.from(encoder.encode(resource).body), Buffer.from(protos.encodeJson(MESSAGE_TYPES.routeConfiguration, json)));
  assert.throws(
    () => encoder.encode({ ...resource, json: { ...json, virtual_hosts: [...json.virtual_hosts, { name: 'c', domainz: ['c.localhost'] }] } }),
    (err: unknown) => err instanceof ProtoJsonError && err.path === 'virtual_hosts[2].domainz' && /unknown field "domainz"/.test(err.message),
  );
  assert.throws(() => encoder.encode({ ...resource, itemized: 'name' }), /RouteConfiguration.name is not a repeated message field/);
});
