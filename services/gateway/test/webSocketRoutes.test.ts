// The WebSocket routes (the terminal and the tunnel) refuse before the upgrade, as plain HTTP: 426 to a
// request that does not ask for a WebSocket, 401 without a valid token or ticket (a run token is not a
// user's), 404 for another user's instance, 409 while it does not run; a ticket works once, for its own
// instance. buildApp as startGateway wires it, on a real PostgreSQL and nats-server, over a real socket.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import WebSocket from 'ws';
import { Bus, topics } from '@paddock/bus';
import { ExecutionRequested } from '@paddock/proto';
import { SecretBox, SpecKey, unsealSpec } from '@paddock/secrets';
import { loadServiceTls } from '@paddock/plane';
import { buildApp } from '../src/app.js';
import { ExecutionService } from '../src/executions/executionService.js';
import { ExecutionStore } from '../src/executions/executionStore.js';
import { HealthWatch } from '../src/health.js';
import { BrokerDirectory } from '../src/instances/brokers.js';
import { TicketStore } from '../src/instances/ticketStore.js';
import { SecretStore } from '../src/secrets/secretStore.js';
import { UserStore, type User } from '../src/users/userStore.js';
import { startTestStack, type TestStack } from './testStack.js';

let stack: TestStack;
let bus: Bus;
let app: FastifyInstance;
let store: ExecutionStore;
let tickets: TicketStore;
let secretBox: SecretBox;
/** What the gateway seals specs with, for the broker; not the secrets' key. */
const specKey = SpecKey.withKey(randomBytes(32));
let base: string;
let alice: { user: User; token: string };
let bob: { user: User; token: string };

before(async () => {
  stack = await startTestStack();
  const config = stack.config();
  const users = new UserStore(stack.pool);
  alice = await users.create('alice');
  bob = await users.create('bob');
  bus = await Bus.connect({ url: config.natsUrl, name: 'paddock-gateway', log: stack.log });
  store = new ExecutionStore(stack.pool);
  secretBox = SecretBox.withKey(randomBytes(32));
  const secrets = new SecretStore(stack.pool, secretBox);
  tickets = new TicketStore(stack.pool);
  app = await buildApp({
    config,
    log: stack.log,
    users,
    executions: new ExecutionService(store, secrets, specKey, bus, config, stack.log),
    store,
    secrets,
    brokers: new BrokerDirectory(bus, await loadServiceTls(config.tls)),
    tickets,
    bus,
    health: new HealthWatch(stack.pool, bus),
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

after(async () => {
  await app?.close();
  await bus?.drain();
  await stack?.stop();
});

/** An execution of Alice's, in `state` (as the scheduler's events would have put it). */
async function aliceExecution(state: 'queued' | 'executing'): Promise<string> {
  const r = await app.inject({ method: 'POST', url: '/api/v1/executions', headers: { authorization: `Bearer ${alice.token}` }, payload: { kind: 'shell', command: 'sleep 60' } });
  assert.equal(r.statusCode, 201, r.body);
  const id = r.json<{ id: string }>().id;
  if (state === 'executing') {
    // Placed on a broker that does not exist: everything up to the broker call can be seen.
    assert.ok(await store.applyState(id, { state: 'executing', version: 3, exitCode: null, error: null, startedAtMs: Date.now(), finishedAtMs: 0, brokerId: 'broker-that-is-not-there' }));
  }
  return id;
}

/** Opens a WebSocket; the status of a refused upgrade with its error body, or 101 once it opened. */
function upgrade(path: string, token?: string): Promise<{ status: number; error?: { code: string; message: string } }> {
  const ws = new WebSocket(`ws://${base}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      ws.terminate();
      resolve({ status: 101 });
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.once('end', () => {
        ws.terminate();
        resolve({ status: res.statusCode ?? 0, ...(body ? { error: (JSON.parse(body) as { error: { code: string; message: string } }).error } : {}) });
      });
    });
    ws.once('error', reject);
  });
}

const paths = (id: string) => [`/terminal/${id}`, `/api/v1/instances/${id}/tunnel?port=8080`];

test('a plain GET of a WebSocket route is 426 with Upgrade: websocket, and opens nothing', async () => {
  const id = await aliceExecution('executing');
  for (const path of paths(id)) {
    const r = await fetch(`http://${base}${path}`, { headers: { authorization: `Bearer ${alice.token}` } });
    assert.equal(r.status, 426, path);
    assert.equal(r.headers.get('upgrade'), 'websocket');
    const { error } = (await r.json()) as { error: { code: string; message: string } };
    assert.equal(error.code, 'upgrade_required');
    assert.match(error.message, /is a WebSocket: open it with "Connection: Upgrade" and "Upgrade: websocket"/);
  }
  // Without a token it is still who asks that is settled first.
  assert.equal((await fetch(`http://${base}${paths(id)[1]}`)).status, 401);
});

test('the upgrade is refused without a valid token, with a run token, and for another user or an instance not running', async () => {
  const executing = await aliceExecution('executing');
  const queued = await aliceExecution('queued');
  const m = await bus.jsm.streams.getMessage('PADDOCK_EXECUTIONS', { last_by_subj: topics.executionRequested.subject(executing) });
  const runToken = unsealSpec(ExecutionRequested.decode(m.data).spec!, specKey, executing).env['PADDOCK_RUN_TOKEN']!;
  for (const path of paths(executing)) {
    const none = await upgrade(path);
    assert.equal(none.status, 401, path);
    assert.match(none.error!.message, /send "Authorization: Bearer <token>", or \?ticket= from POST \/api\/v1\/instances\/\{id\}\/terminal-ticket/);
    assert.equal((await upgrade(path, 'pdk_not-a-token')).status, 401, path);
    const asRun = await upgrade(path, runToken);
    assert.deepEqual(asRun, { status: 401, error: { code: 'unauthorized', message: "a run token is not accepted here: this route needs a user's token" } }, path);
    const asBob = await upgrade(path, bob.token);
    assert.deepEqual(asBob, { status: 404, error: { code: 'not_found', message: `execution ${executing} not found` } }, path);
  }
  for (const path of paths(queued)) {
    const notRunning = await upgrade(path, alice.token);
    assert.equal(notRunning.status, 409, path);
    assert.equal(notRunning.error!.message, `execution ${queued} is queued: only a running instance can be joined`);
  }
  const badPort = await upgrade(`/api/v1/instances/${executing}/tunnel?port=70000`, alice.token);
  assert.deepEqual(badPort, { status: 400, error: { code: 'invalid_request', message: 'port 70000 is not a TCP port (1-65535)' } });
});

test('a terminal ticket stands for its user once, for its own instance only', async () => {
  const id = await aliceExecution('executing');
  const other = await aliceExecution('executing');
  const issued = await app.inject({ method: 'POST', url: `/api/v1/instances/${id}/terminal-ticket`, headers: { authorization: `Bearer ${alice.token}` } });
  assert.equal(issued.statusCode, 201, issued.body);
  const { ticket } = issued.json<{ ticket: string }>();
  // Spent on another instance: refused, and gone.
  const elsewhere = await upgrade(`/api/v1/instances/${other}/tunnel?port=8080&ticket=${ticket}`);
  assert.equal(elsewhere.status, 401);
  assert.equal(elsewhere.error!.message, 'the terminal ticket is not valid (they work once, for 60 s)');
  assert.equal((await upgrade(`/api/v1/instances/${id}/tunnel?port=8080&ticket=${ticket}`)).status, 401, 'a ticket works once, even a misused one');

  const fresh = (await tickets.issue(id, alice.user.id)).ticket;
  // Past who asks and which instance: what stops it now is the broker, which does not exist.
  const accepted = await upgrade(`/api/v1/instances/${id}/tunnel?port=8080&ticket=${fresh}`);
  assert.notEqual(accepted.status, 401, JSON.stringify(accepted));
  assert.notEqual(accepted.status, 404, JSON.stringify(accepted));
  assert.equal((await upgrade(`/api/v1/instances/${id}/tunnel?port=8080&ticket=${fresh}`)).status, 401, 'and only once');
  // A ticket is its user: one made out to Bob (the API never would) still does not open Alice's instance.
  const bobs = (await tickets.issue(id, bob.user.id)).ticket;
  assert.equal((await upgrade(`/terminal/${id}?ticket=${bobs}`)).status, 404);
});
