// The ports API as the owner and others see it: the ports portdetect announced (the later of the last
// .opened and .closed), who may open them (stored, and published to xds as the whole map), share links,
// the live event stream, and the WS-TCP bridge's refusals. buildApp as startGateway wires it, on a real
// PostgreSQL and nats-server; portdetect and the scheduler are played by their messages on the bus.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import WebSocket from 'ws';
import { Bus, topics } from '@paddock/bus';
import { ExecutionState, type PortChanged } from '@paddock/proto';
import { loadServiceTls } from '@paddock/plane';
import { SecretBox, SpecKey } from '@paddock/secrets';
import { buildApp } from '../src/app.js';
import { ExecutionService } from '../src/executions/executionService.js';
import { ExecutionStore } from '../src/executions/executionStore.js';
import { HealthWatch } from '../src/health.js';
import { BrokerDirectory } from '../src/instances/brokers.js';
import { TicketStore } from '../src/instances/ticketStore.js';
import { startBridge, type StartedBridge } from '../src/ports/bridge.js';
import { PortUrls } from '../src/ports/portUrls.js';
import { PortVisibilityStore } from '../src/ports/portVisibilityStore.js';
import { verifyShareToken } from '../src/ports/shareLinks.js';
import { SecretStore } from '../src/secrets/secretStore.js';
import { UserStore, type User } from '../src/users/userStore.js';
import { startTestStack, type TestStack } from './testStack.js';

let stack: TestStack;
let bus: Bus;
/** portdetect's and the scheduler's side of the bus. */
let others: Bus;
let app: FastifyInstance;
let deps: Parameters<typeof buildApp>[0];
let store: ExecutionStore;
let base: string;
let bridge: StartedBridge;
let alice: { user: User; token: string };
let bob: { user: User; token: string };
const ingressKey = randomBytes(32);
const HEARTBEAT_MS = 200;

before(async () => {
  stack = await startTestStack();
  const config = stack.config();
  const users = new UserStore(stack.pool);
  alice = await users.create('alice');
  bob = await users.create('bob');
  bus = await Bus.connect({ url: config.natsUrl, name: 'paddock-gateway', log: stack.log });
  others = await Bus.connect({ url: config.natsUrl, name: 'test-portdetect', log: stack.log });
  store = new ExecutionStore(stack.pool);
  const secrets = new SecretStore(stack.pool, SecretBox.withKey(randomBytes(32)));
  deps = {
    config,
    log: stack.log,
    users,
    executions: new ExecutionService(store, secrets, SpecKey.withKey(randomBytes(32)), bus, config, stack.log),
    store,
    secrets,
    brokers: new BrokerDirectory(bus, await loadServiceTls(config.tls)),
    tickets: new TicketStore(stack.pool),
    bus,
    health: new HealthWatch(stack.pool, bus),
    ports: {
      visibility: new PortVisibilityStore(stack.pool),
      urls: PortUrls.from({ baseDomain: 'localhost', ingressPort: 8080 }),
      ingressKey,
      heartbeatMs: HEARTBEAT_MS,
    },
  };
  app = await buildApp(deps);
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  bridge = await startBridge(app, { host: '127.0.0.1', port: 0, log: stack.log });
});

after(async () => {
  await app?.close();
  await bridge?.close();
  await bus?.drain();
  await others?.drain();
  await stack?.stop();
});

function call(method: 'GET' | 'POST' | 'PATCH', url: string, token: string | null, payload?: unknown): Promise<LightMyRequestResponse> {
  return app.inject({ method, url, headers: token ? { authorization: `Bearer ${token}` } : {}, ...(payload === undefined ? {} : { payload: payload as object }) });
}

function errorOf(r: LightMyRequestResponse): { code: string; message: string } {
  return r.json<{ error: { code: string; message: string } }>().error;
}

/** An execution of Alice's, running on a broker (as the scheduler's events would have put it). */
async function running(): Promise<string> {
  const r = await call('POST', '/api/v1/executions', alice.token, { kind: 'shell', command: 'sleep 60', service: true });
  assert.equal(r.statusCode, 201, r.body);
  const id = r.json<{ id: string }>().id;
  assert.ok(await store.applyState(id, { state: 'executing', version: 3, exitCode: null, error: null, startedAtMs: Date.now(), finishedAtMs: 0, brokerId: 'b1' }));
  return id;
}

/** The instance ends, as the scheduler tells it: the gateway's table and the bus. */
async function ends(id: string): Promise<void> {
  assert.ok(await store.applyState(id, { state: 'completed', version: 9, exitCode: 0, error: null, startedAtMs: Date.now() - 1000, finishedAtMs: Date.now(), brokerId: 'b1' }));
  await others.publish(topics.executionState, id, {
    executionId: id,
    ownerId: alice.user.id,
    state: ExecutionState.EXECUTION_STATE_COMPLETED,
    version: 9,
    atMs: Date.now(),
    exitCode: 0,
    reason: '',
    brokerId: 'b1',
    startedAtMs: 0,
    finishedAtMs: Date.now(),
  });
}

const OPENED_AT_MS = Date.parse('2030-01-02T03:04:05.000Z');

/** A port event as portdetect publishes it: `open` lists every port open after the change. */
async function portEvent(id: string, kind: 'opened' | 'closed', seq: number, port: number, open: [number, string][], instanceEnded = false): Promise<PortChanged> {
  const event: PortChanged = {
    instanceId: id,
    brokerId: 'b1',
    port,
    open: open.map(([p, address]) => ({ port: p, address, family: address.includes(':') ? 6 : 4, openedAtMs: OPENED_AT_MS + p })),
    seq,
    atMs: Date.now(),
    instanceEnded,
  };
  await others.publish(kind === 'opened' ? topics.portOpened : topics.portClosed, id, event, { msgId: `${id}.${seq}` });
  return event;
}

interface PortView {
  port: number;
  protocol: string;
  address: string;
  url: string | null;
  visibility: string;
  openedAt: string;
}

async function portsOf(id: string): Promise<PortView[]> {
  const r = await call('GET', `/api/v1/instances/${id}/ports`, alice.token);
  assert.equal(r.statusCode, 200, r.body);
  return r.json<PortView[]>();
}

test('GET /ports lists what the later of the last .opened and .closed says, with URL, visibility and when it opened', async () => {
  const id = await running();
  assert.deepEqual(await portsOf(id), [], 'nothing announced yet: no ports');
  await portEvent(id, 'opened', 1, 8000, [[8000, '0.0.0.0']]);
  await portEvent(id, 'opened', 2, 9000, [[8000, '0.0.0.0'], [9000, '::1']]);
  assert.deepEqual(await portsOf(id), [
    { port: 8000, protocol: 'tcp', address: '0.0.0.0', url: `http://${id}-8000.localhost:8080/`, visibility: 'private', openedAt: new Date(OPENED_AT_MS + 8000).toISOString() },
    { port: 9000, protocol: 'tcp', address: '::1', url: `http://${id}-9000.localhost:8080/`, visibility: 'private', openedAt: new Date(OPENED_AT_MS + 9000).toISOString() },
  ]);
  // The last .opened (seq 2) still lists 8000; the .closed after it (seq 3) is the state.
  await portEvent(id, 'closed', 3, 8000, [[9000, '::1']]);
  assert.deepEqual((await portsOf(id)).map((p) => p.port), [9000]);
  await portEvent(id, 'opened', 4, 8000, [[8000, '0.0.0.0'], [9000, '::1']]);
  assert.deepEqual((await portsOf(id)).map((p) => p.port), [8000, 9000], 'and a later .opened wins over that .closed');

  await ends(id);
  assert.deepEqual(await portsOf(id), [], 'an instance that ended has no ports, whatever portdetect last said');
});

test('the ports routes are the owner\'s: another user is told 404, no token 401', async () => {
  const id = await running();
  await portEvent(id, 'opened', 1, 8000, [[8000, '0.0.0.0']]);
  for (const [method, url, payload] of [
    ['GET', `/api/v1/instances/${id}/ports`, undefined],
    ['GET', `/api/v1/instances/${id}/ports/events`, undefined],
    ['PATCH', `/api/v1/instances/${id}/ports/8000`, { visibility: 'public' }],
    ['POST', `/api/v1/instances/${id}/ports/8000/share`, {}],
  ] as const) {
    const asBob = await call(method, url, bob.token, payload);
    assert.equal(asBob.statusCode, 404, `${method} ${url}: ${asBob.body}`);
    assert.deepEqual(errorOf(asBob), { code: 'not_found', message: `execution ${id} not found` });
    assert.equal((await call(method, url, null, payload)).statusCode, 401, `${method} ${url} without a token`);
  }
  assert.equal((await call('GET', '/api/v1/instances/nosuchinstance/ports', alice.token)).statusCode, 404);
  const still = await stack.pool.query('SELECT count(*)::int AS n FROM port_visibility WHERE execution_id = $1', [id]);
  assert.equal(still.rows[0].n, 0, "Bob's PATCH stored nothing");
});

test('PATCH /ports/{port} stores the visibility and publishes the whole map of the instance for xds', async () => {
  const id = await running();
  await portEvent(id, 'opened', 1, 8000, [[8000, '0.0.0.0']]);
  const published: Record<number, string>[] = [];
  const sub = others.subscribe(topics.portVisibility, id, ({ message }) => published.push(message.visibility));
  await others.nc.flush();
  try {
    const patch = (port: number | string, visibility: string) => call('PATCH', `/api/v1/instances/${id}/ports/${port}`, alice.token, { visibility });
    const r = await patch(8000, 'public');
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(r.json(), { port: 8000, visibility: 'public' });
    assert.equal((await portsOf(id))[0]?.visibility, 'public');
    // A port that does not listen yet can be given its visibility before its server starts.
    assert.equal((await patch(3000, 'project')).statusCode, 200);
    const stored = await stack.pool.query('SELECT port, visibility FROM port_visibility WHERE execution_id = $1 ORDER BY port', [id]);
    assert.deepEqual(stored.rows, [{ port: 3000, visibility: 'project' }, { port: 8000, visibility: 'public' }]);
    assert.equal((await patch(8000, 'private')).statusCode, 200);
    assert.deepEqual((await stack.pool.query('SELECT port FROM port_visibility WHERE execution_id = $1', [id])).rows, [{ port: 3000 }], 'private is no row');
    assert.equal((await portsOf(id))[0]?.visibility, 'private');

    await waitUntil('the three maps to be published', async () => published.length === 3);
    assert.deepEqual(published, [{ 8000: 'public' }, { 3000: 'project', 8000: 'public' }, { 3000: 'project' }], 'each change publishes the whole map');
    const last = await others.lastStored(topics.portVisibility, id);
    assert.deepEqual(last?.message.visibility, { 3000: 'project' }, 'and the last one is stored for an xds that starts later');
  } finally {
    await sub.stop();
  }
});

test('PATCH and share refuse bad input with 400 and say what is wrong, and a finished instance with 409', async () => {
  const id = await running();
  for (const port of ['0', '65536', 'ssh', '-1', '80.5']) {
    const r = await call('PATCH', `/api/v1/instances/${id}/ports/${port}`, alice.token, { visibility: 'public' });
    assert.equal(r.statusCode, 400, `port "${port}": ${r.body}`);
    assert.deepEqual(errorOf(r), { code: 'invalid_request', message: `port "${port}" is not a TCP port: give a number from 1 to 65535` });
    assert.equal((await call('POST', `/api/v1/instances/${id}/ports/${port}/share`, alice.token, {})).statusCode, 400);
  }
  const unknown = await call('PATCH', `/api/v1/instances/${id}/ports/8000`, alice.token, { visibility: 'everyone' });
  assert.equal(unknown.statusCode, 400);
  assert.deepEqual(errorOf(unknown), { code: 'invalid_request', message: 'body.visibility must be one of "private", "project", "public"' });
  assert.equal((await call('PATCH', `/api/v1/instances/${id}/ports/8000`, alice.token, {})).statusCode, 400);
  for (const [expiresInSeconds, message] of [
    [0, 'body.expiresInSeconds must be >= 1'],
    [7 * 24 * 3600 + 1, 'body.expiresInSeconds must be <= 604800'],
    ['60', 'body.expiresInSeconds must be integer'],
  ] as const) {
    const r = await call('POST', `/api/v1/instances/${id}/ports/8000/share`, alice.token, { expiresInSeconds });
    assert.equal(r.statusCode, 400, r.body);
    assert.deepEqual(errorOf(r), { code: 'invalid_request', message });
  }
  await ends(id);
  const late = await call('PATCH', `/api/v1/instances/${id}/ports/8000`, alice.token, { visibility: 'public' });
  assert.equal(late.statusCode, 409);
  assert.match(errorOf(late).message, new RegExp(`execution ${id} is completed: its ports closed with it`));
  assert.equal((await call('POST', `/api/v1/instances/${id}/ports/8000/share`, alice.token)).statusCode, 409);
});

test('POST /ports/{port}/share answers the URL with a signed token that the ingress key verifies, for an hour unless asked otherwise', async () => {
  const id = await running();
  const before = Date.now();
  const r = await call('POST', `/api/v1/instances/${id}/ports/8000/share`, alice.token);
  assert.equal(r.statusCode, 201, r.body);
  const { url, expiresAt } = r.json<{ url: string; expiresAt: string }>();
  const parsed = new URL(url);
  assert.equal(`${parsed.origin}${parsed.pathname}`, `http://${id}-8000.localhost:8080/`);
  const token = parsed.searchParams.get('paddock_share') ?? '';
  const grant = verifyShareToken(token, id, 8000, ingressKey);
  assert.ok(grant, 'the ingress accepts it for this instance and port');
  assert.equal(new Date(grant.expiresAtMs).toISOString(), expiresAt);
  assert.ok(Math.abs(grant.expiresAtMs - before - 3600_000) < 5_000, 'one hour by default');
  assert.equal(verifyShareToken(token, id, 8001, ingressKey), null, 'and for no other port');
  assert.equal(verifyShareToken(token, id, 8000, randomBytes(32)), null, 'nor under another key');

  const week = await call('POST', `/api/v1/instances/${id}/ports/8000/share`, alice.token, { expiresInSeconds: 7 * 24 * 3600 });
  assert.equal(week.statusCode, 201);
  assert.ok(Math.abs(Date.parse(week.json<{ expiresAt: string }>().expiresAt) - Date.now() - 7 * 24 * 3600_000) < 5_000);
});

test('without an ingress, ports have no URL and cannot be shared', async () => {
  const bare = await buildApp({ ...deps, ports: { ...deps.ports!, urls: PortUrls.from({ baseDomain: 'localhost', ingressPort: 0 }) } });
  try {
    const id = await running();
    await portEvent(id, 'opened', 1, 8000, [[8000, '0.0.0.0']]);
    const list = await bare.inject({ method: 'GET', url: `/api/v1/instances/${id}/ports`, headers: { authorization: `Bearer ${alice.token}` } });
    assert.equal(list.json<PortView[]>()[0]?.url, null);
    const share = await bare.inject({ method: 'POST', url: `/api/v1/instances/${id}/ports/8000/share`, headers: { authorization: `Bearer ${alice.token}` } });
    assert.equal(share.statusCode, 409);
    assert.equal(errorOf(share).code, 'no_ingress');
  } finally {
    await bare.close();
  }
});

test('PortUrls: the public URL gives scheme and port, and settings that cannot work are refused naming the variable', () => {
  assert.equal(PortUrls.from({ baseDomain: 'apps.example.com', ingressPort: 8080, publicIngressUrl: 'https://apps.example.com' }).of('abc', 3000), 'https://abc-3000.apps.example.com/');
  assert.equal(PortUrls.from({ baseDomain: 'Example.COM', ingressPort: 8080, publicIngressUrl: 'http://example.com:9000/' }).of('abc', 3000), 'http://abc-3000.example.com:9000/');
  assert.equal(PortUrls.from({ baseDomain: 'localhost', ingressPort: 80 }).of('abc', 1), 'http://abc-1.localhost/');
  assert.throws(() => PortUrls.from({ baseDomain: 'not a domain', ingressPort: 8080 }), /PADDOCK_BASE_DOMAIN/);
  assert.throws(() => PortUrls.from({ baseDomain: 'localhost', ingressPort: 8080, publicIngressUrl: 'https://other.example.com' }), /PADDOCK_PUBLIC_INGRESS_URL: its host "other.example.com" must be PADDOCK_BASE_DOMAIN/);
  assert.throws(() => PortUrls.from({ baseDomain: 'localhost', ingressPort: 8080, publicIngressUrl: 'ftp://localhost' }), /PADDOCK_PUBLIC_INGRESS_URL/);
  assert.throws(() => PortUrls.from({ baseDomain: 'localhost', ingressPort: 8080, publicIngressUrl: 'http://localhost/apps' }), /PADDOCK_PUBLIC_INGRESS_URL/);
});

/** One Server-Sent Event as read off the wire. */
interface Sse {
  event: string;
  data: Record<string, unknown>;
}

/** Opens the event stream over a real socket; `next()` resolves with each event, `comments` counts heartbeats. */
function openEvents(id: string, token: string): Promise<{ res: IncomingMessage; next(): Promise<Sse | null>; comments(): number; close(): void }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`http://${base}/api/v1/instances/${id}/ports/events`, { headers: { authorization: `Bearer ${token}` } });
    req.once('error', reject);
    req.once('response', (res) => {
      const events: Sse[] = [];
      const waiters: ((e: Sse | null) => void)[] = [];
      let comments = 0;
      let buffer = '';
      let ended = false;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        for (let i = buffer.indexOf('\n\n'); i !== -1; i = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, i);
          buffer = buffer.slice(i + 2);
          if (block.startsWith(':')) {
            comments++;
            continue;
          }
          const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
          const data = JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? '{}') as Record<string, unknown>;
          const waiter = waiters.shift();
          if (waiter) waiter({ event, data });
          else events.push({ event, data });
        }
      });
      res.once('end', () => {
        ended = true;
        for (const w of waiters.splice(0)) w(null);
      });
      resolve({
        res,
        next: () => {
          const e = events.shift();
          if (e || ended) return Promise.resolve(e ?? null);
          return new Promise<Sse | null>((r, fail) => {
            const timer = setTimeout(() => fail(new Error('no event within 5 s')), 5_000);
            waiters.push((x) => {
              clearTimeout(timer);
              r(x);
            });
          });
        },
        comments: () => comments,
        close: () => req.destroy(),
      });
    });
    req.end();
  });
}

test('GET /ports/events streams the state, then each change in order, visibility changes, heartbeats, and ends with the instance', async () => {
  const id = await running();
  await portEvent(id, 'opened', 1, 8000, [[8000, '0.0.0.0']]);
  const stream = await openEvents(id, alice.token);
  try {
    assert.equal(stream.res.statusCode, 200);
    assert.match(String(stream.res.headers['content-type']), /^text\/event-stream/);
    const first = await stream.next();
    assert.equal(first?.event, 'ports');
    assert.deepEqual((first?.data['ports'] as PortView[]).map((p) => [p.port, p.url]), [[8000, `http://${id}-8000.localhost:8080/`]]);

    await portEvent(id, 'opened', 2, 5000, [[5000, '127.0.0.1'], [8000, '0.0.0.0']]);
    const opened = await stream.next();
    assert.equal(opened?.event, 'opened');
    assert.equal(opened?.data['port'], 5000);
    assert.deepEqual((opened?.data['ports'] as PortView[]).map((p) => [p.port, p.address]), [[5000, '127.0.0.1'], [8000, '0.0.0.0']]);
    // A redelivered old event changes nothing and is not sent.
    await portEvent(id, 'opened', 1, 8000, [[8000, '0.0.0.0']]);
    await portEvent(id, 'closed', 3, 5000, [[8000, '0.0.0.0']]);
    const closed = await stream.next();
    assert.equal(closed?.event, 'closed');
    assert.equal(closed?.data['port'], 5000);
    assert.deepEqual((closed?.data['ports'] as PortView[]).map((p) => p.port), [8000]);

    assert.equal((await call('PATCH', `/api/v1/instances/${id}/ports/8000`, alice.token, { visibility: 'public' })).statusCode, 200);
    const visible = await stream.next();
    assert.equal(visible?.event, 'ports');
    assert.deepEqual((visible?.data['ports'] as PortView[]).map((p) => [p.port, p.visibility]), [[8000, 'public']]);

    await waitUntil('a heartbeat', async () => stream.comments() > 0);
    await portEvent(id, 'closed', 4, 8000, [], true);
    assert.deepEqual((await stream.next())?.data['ports'], [], 'the instance ended: every port closed');
    await ends(id);
    const end = await stream.next();
    assert.equal(end?.event, 'end');
    assert.equal(await stream.next(), null, 'and the response ends');
  } finally {
    stream.close();
  }
});

test('GET /ports/events of an instance that already ended sends its empty state and the end at once', async () => {
  const id = await running();
  await portEvent(id, 'opened', 1, 8000, [[8000, '0.0.0.0']]);
  await ends(id);
  const stream = await openEvents(id, alice.token);
  assert.deepEqual(await stream.next(), { event: 'ports', data: { ports: [] } });
  assert.equal((await stream.next())?.event, 'end');
  assert.equal(await stream.next(), null);
});

/** The status of a WebSocket upgrade refused by `url`, or 101 when it opened. */
function upgradeStatus(url: string, token: string | undefined): Promise<{ status: number; body: string }> {
  const ws = new WebSocket(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      ws.terminate();
      resolve({ status: 101, body: '' });
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.once('error', reject);
  });
}

test('the WS-TCP bridge serves the tunnel route alone, with its authentication (token or ticket) and refusals: 401, 404 for another user, 426 for plain HTTP', async () => {
  const id = await running();
  const wsBridge = bridge.url.replace(/^http/, 'ws');
  const tunnel = `/api/v1/instances/${id}/tunnel?port=8000`;
  assert.equal((await upgradeStatus(wsBridge + tunnel, undefined)).status, 401);
  assert.equal((await upgradeStatus(wsBridge + tunnel, 'pdk_not-a-token')).status, 401);
  const asBob = await upgradeStatus(wsBridge + tunnel, bob.token);
  assert.equal(asBob.status, 404);
  assert.deepEqual(JSON.parse(asBob.body), { error: { code: 'not_found', message: `execution ${id} not found` } });
  assert.equal((await upgradeStatus(`${wsBridge}/api/v1/instances/${id}/tunnel?port=70000`, alice.token)).status, 400);
  // A browser (noVNC) has a ticket instead of a header: it is taken, and the route goes on to the broker,
  // which this test does not run.
  const ticket = (await call('POST', `/api/v1/instances/${id}/terminal-ticket`, alice.token)).json<{ ticket: string }>().ticket;
  const withTicket = await upgradeStatus(`${wsBridge}${tunnel}&ticket=${ticket}`, undefined);
  assert.deepEqual([withTicket.status, JSON.parse(withTicket.body).error.message], [503, 'broker b1 is not answering']);
  assert.equal((await upgradeStatus(`${wsBridge}${tunnel}&ticket=${ticket}`, undefined)).status, 401, 'once');
  // The API itself is not on the bridge.
  const other = await upgradeStatus(`${wsBridge}/terminal/${id}`, alice.token);
  assert.equal(other.status, 404);
  assert.match(other.body, /serves only WS \/api\/v1\/instances\/\{id\}\/tunnel/);
  const plain = await fetch(bridge.url + tunnel, { headers: { authorization: `Bearer ${alice.token}` } });
  assert.equal(plain.status, 426);
  assert.equal(plain.headers.get('upgrade'), 'websocket');
  const api = await fetch(`${bridge.url}/api/v1/executions`, { headers: { authorization: `Bearer ${alice.token}` } });
  assert.equal(api.status, 404, 'no REST route on the bridge');
});

test('the OpenAPI document describes the ports routes with their schemas', async () => {
  const doc = (await call('GET', '/api/v1/openapi.json', null)).json<{ paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, unknown> }>; requestBody?: unknown }>> }>();
  const ops = Object.entries(doc.paths)
    .filter(([path]) => path.includes('/ports'))
    .flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`))
    .sort();
  assert.deepEqual(ops, [
    'GET /api/v1/instances/{id}/ports',
    'GET /api/v1/instances/{id}/ports/events',
    'PATCH /api/v1/instances/{id}/ports/{port}',
    'POST /api/v1/instances/{id}/ports/{port}/share',
  ]);
  assert.ok(doc.paths['/api/v1/instances/{id}/ports/events']!['get']!.responses['200']!.content!['text/event-stream']);
  assert.ok(doc.paths['/api/v1/instances/{id}/ports/{port}']!['patch']!.requestBody);
});

async function waitUntil(what: string, probe: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
