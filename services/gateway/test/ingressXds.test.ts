// The ingress's ADS client against the real services/xds control plane (in this process, over loopback
// gRPC): it follows ports that open and close, ACKs what it applies, NACKs what it cannot use with the
// reason and keeps what it had, and keeps serving its last routes while the control plane is away.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TYPE_URLS, type PortVisibility } from '@paddock/xds';
import type { RouteTable } from '../src/ingress/routeTable.js';
import { XdsRouteClient } from '../src/ingress/xdsRouteClient.js';
import { eventually, log, startTestPlane } from './ingressPlane.js';

const CLUSTER = 'paddock-relay.b1';

function startClient(address: string): XdsRouteClient {
  const client = new XdsRouteClient({ address, log, nodeId: 'gateway-test' });
  client.start();
  return client;
}

/** What `host` leads to in the client's table now, as JSON (undefined when it has no table yet). */
function routeOf(client: XdsRouteClient, host: string, path = '/'): string | undefined {
  const table: RouteTable | null = client.table;
  return table ? JSON.stringify(table.match(host, path)) : undefined;
}

test('the ingress follows the routes of services/xds: ports that open and close, both forms of a host, the 502 of a running instance, the relay address', async () => {
  await using plane = await startTestPlane();
  plane.beat('b1', '127.0.0.1:7001', ['inst1']);
  const client = startClient(plane.address);
  try {
    await client.firstTable();
    const closed = JSON.stringify({ kind: 'closed', instanceId: 'inst1' });
    await eventually('the running instance', () => (routeOf(client, 'inst1-3000.localhost') === closed ? true : undefined));
    assert.equal(routeOf(client, '3000-inst1.localhost'), closed);
    assert.match(routeOf(client, 'inst2-3000.localhost')!, /"kind":"direct","status":404/, 'any other host: the catch-all');

    plane.ports('inst1', 'b1', [3000]);
    const open = JSON.stringify({ kind: 'port', instanceId: 'inst1', port: 3000, visibility: 'private', brokerId: 'b1', cluster: CLUSTER });
    await eventually('port 3000 open', () => (routeOf(client, 'inst1-3000.localhost', '/any/path') === open ? true : undefined));
    assert.equal(routeOf(client, '3000-inst1.localhost'), open, "E2B's form");
    assert.equal(routeOf(client, 'inst1-3001.localhost'), closed, 'another port of the instance');
    assert.deepEqual(await eventually('the relay address', () => client.endpointOf(CLUSTER) ?? undefined), { host: '127.0.0.1', port: 7001 });
    assert.deepEqual(client.table?.ports.map((p) => `${p.instanceId}:${p.port}`), ['inst1:3000']);

    await eventually('an ACK of each type', () => {
      const acked = new Set(plane.acks.filter((a) => a.node.cluster === 'paddock-ingress').map((a) => a.typeUrl));
      return [TYPE_URLS.cluster, TYPE_URLS.loadAssignment, TYPE_URLS.routeConfiguration].every((t) => acked.has(t)) ? true : undefined;
    });
    assert.deepEqual(plane.nacks, []);
    assert.equal(client.status().connected, true);
    assert.deepEqual(Object.keys(client.status().versions).sort(), [TYPE_URLS.cluster, TYPE_URLS.loadAssignment, TYPE_URLS.routeConfiguration].sort());

    plane.ports('inst1', 'b1', []);
    await eventually('port 3000 closed', () => (routeOf(client, 'inst1-3000.localhost') === closed ? true : undefined));
    assert.deepEqual(client.table?.ports, []);
  } finally {
    await client.stop();
  }
});

test('a route the ingress cannot use is NACKed with the reason, and the last good routes stay until a usable version comes', async () => {
  await using plane = await startTestPlane();
  plane.beat('b1', '127.0.0.1:7001', ['inst1']);
  plane.ports('inst1', 'b1', [3000]);
  const client = startClient(plane.address);
  try {
    await eventually('port 3000 open', () => (routeOf(client, 'inst1-3000.localhost')?.includes('"visibility":"private"') ? true : undefined));
    const before = client.status().versions[TYPE_URLS.routeConfiguration];

    // A visibility this gateway does not know: it cannot tell who may reach the port.
    plane.state.setPortVisibility('inst1', 3000, 'friends' as PortVisibility);
    const nack = await eventually('the NACK', () => plane.nacks.find((n) => n.typeUrl === TYPE_URLS.routeConfiguration));
    assert.match(nack.message, /visibility "friends" is none the ingress knows/);
    assert.equal(nack.node.cluster, 'paddock-ingress');
    assert.equal(client.status().lastNack?.message, nack.message);
    assert.equal(client.status().versions[TYPE_URLS.routeConfiguration], before, 'the version it had stays');
    assert.match(routeOf(client, 'inst1-3000.localhost')!, /"visibility":"private"/, 'and so do its routes');

    plane.state.setPortVisibility('inst1', 3000, 'public');
    await eventually('the next version', () => (routeOf(client, 'inst1-3000.localhost')?.includes('"visibility":"public"') ? true : undefined));
    assert.notEqual(client.status().versions[TYPE_URLS.routeConfiguration], before);
  } finally {
    await client.stop();
  }
});

test('while the control plane is away the last routes keep serving; the client reconnects with backoff and catches up', async () => {
  await using plane = await startTestPlane();
  plane.beat('b1', '127.0.0.1:7001', ['inst1']);
  plane.ports('inst1', 'b1', [3000]);
  const client = startClient(plane.address);
  try {
    await eventually('port 3000 open', () => (routeOf(client, 'inst1-3000.localhost')?.includes('"kind":"port"') ? true : undefined));
    await plane.stopServer();
    await eventually('the stream lost', () => (client.status().connected ? undefined : true));
    assert.match(routeOf(client, 'inst1-3000.localhost')!, /"kind":"port"/, 'routes stay');
    plane.ports('inst1', 'b1', [3000, 4000]);
    // Several attempts fail while it is down: the client keeps trying.
    await new Promise((r) => setTimeout(r, 800));
    await plane.startServer();
    await eventually('port 4000 after the reconnection', () => (routeOf(client, 'inst1-4000.localhost')?.includes('"kind":"port"') ? true : undefined), 15_000);
    assert.equal(client.status().connected, true);
  } finally {
    await client.stop();
  }
});
