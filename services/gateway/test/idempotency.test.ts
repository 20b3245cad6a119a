// Idempotency-Key on POST /api/v1/executions, as Stripe's API has it: a retry with the same key and body
// gets the first execution back instead of a second one, another body is 422, keys are per user and last
// 24 h, and two requests at the same moment create one execution. buildApp as startGateway wires it, on a
// real PostgreSQL and nats-server, driven with app.inject().
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { Bus, topics } from '@paddock/bus';
import { SecretBox, SpecKey } from '@paddock/secrets';
import { loadServiceTls } from '@paddock/plane';
import { buildApp } from '../src/app.js';
import { ExecutionService } from '../src/executions/executionService.js';
import { ExecutionStore } from '../src/executions/executionStore.js';
import { IdempotencyKeys, requestDigest, type Queryable } from '../src/executions/idempotencyKeys.js';
import { normalizeRequest, toSpec } from '../src/executions/request.js';
import { HealthWatch } from '../src/health.js';
import { newId } from '../src/ids.js';
import { BrokerDirectory } from '../src/instances/brokers.js';
import { TicketStore } from '../src/instances/ticketStore.js';
import { SecretStore } from '../src/secrets/secretStore.js';
import { UserStore, type User } from '../src/users/userStore.js';
import { startTestStack, type TestStack } from './testStack.js';

let stack: TestStack;
let bus: Bus;
let app: FastifyInstance;
let store: ExecutionStore;
let secretBox: SecretBox;
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
  app = await buildApp({
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
  });
});

after(async () => {
  await app?.close();
  await bus?.drain();
  await stack?.stop();
});

function post(token: string, body: unknown, key?: string): Promise<LightMyRequestResponse> {
  return app.inject({
    method: 'POST',
    url: '/api/v1/executions',
    headers: { authorization: `Bearer ${token}`, ...(key === undefined ? {} : { 'idempotency-key': key }) },
    payload: body as object,
  });
}

async function count(ownerId: string): Promise<number> {
  const r = await stack.pool.query<{ n: string }>(`SELECT count(*) AS n FROM executions WHERE owner_id = $1`, [ownerId]);
  return Number(r.rows[0]!.n);
}

/** How many requests for this execution JetStream holds (the bus deduplicates by id too, so this is what the scheduler sees). */
async function requestsOnBus(id: string): Promise<number> {
  const info = await bus.jsm.streams.info('PADDOCK_EXECUTIONS', { subjects_filter: topics.executionRequested.subject(id) });
  return info.state.subjects?.[topics.executionRequested.subject(id)] ?? 0;
}

test('the same key and body answer 201 with the first execution, marked as a replay; nothing else is created', async () => {
  const key = randomUUID();
  const body = { kind: 'shell', command: 'echo once', env: { GREETING: 'hi' }, timeoutS: 60 };
  const before = await count(alice.user.id);
  const first = await post(alice.token, body, key);
  assert.equal(first.statusCode, 201, first.body);
  assert.equal(first.headers['idempotent-replayed'], undefined, 'the first answer is not a replay');
  const id = first.json<{ id: string }>().id;

  const again = await post(alice.token, body, key);
  assert.equal(again.statusCode, 201, again.body);
  assert.equal(again.headers['idempotent-replayed'], 'true');
  assert.equal(again.json<{ id: string }>().id, id);
  // The same request with its fields in another order is the same request.
  const reordered = await post(alice.token, { timeoutS: 60, env: { GREETING: 'hi' }, command: 'echo once', kind: 'shell' }, key);
  assert.equal(reordered.statusCode, 201, reordered.body);
  assert.equal(reordered.json<{ id: string }>().id, id);

  assert.equal(await count(alice.user.id), before + 1, 'one execution');
  assert.equal(await requestsOnBus(id), 1, 'published once');
  // Without a key every request is a new execution, as before.
  const a = await post(alice.token, body);
  const b = await post(alice.token, body);
  assert.notEqual(a.json<{ id: string }>().id, b.json<{ id: string }>().id);
});

test('the same key with another body is 422 idempotency_key_reused, naming the key and the first execution', async () => {
  const key = `order-${randomUUID()}`;
  const first = await post(alice.token, { kind: 'shell', command: 'echo one' }, key);
  assert.equal(first.statusCode, 201, first.body);
  const id = first.json<{ id: string }>().id;
  const before = await count(alice.user.id);
  for (const other of [{ kind: 'shell', command: 'echo two' }, { kind: 'shell', command: 'echo one', env: { X: '1' } }]) {
    const r = await post(alice.token, other, key);
    assert.equal(r.statusCode, 422, r.body);
    assert.deepEqual(r.json(), {
      error: {
        code: 'idempotency_key_reused',
        message: `Idempotency-Key "${key}" was used within the last 24 h for a different request (it created execution ${id}); a retry must send the same body, and a new request a new key`,
      },
    });
  }
  assert.equal(await count(alice.user.id), before, 'nothing created');
});

test("keys are per user: Bob's request with Alice's key is his own new execution", async () => {
  const key = randomUUID();
  const body = { kind: 'shell', command: 'true' };
  const alices = await post(alice.token, body, key);
  const bobs = await post(bob.token, body, key);
  assert.equal(bobs.statusCode, 201, bobs.body);
  assert.equal(bobs.headers['idempotent-replayed'], undefined);
  assert.notEqual(bobs.json<{ id: string }>().id, alices.json<{ id: string }>().id);
  assert.equal(bobs.json<{ owner: string }>().owner, bob.user.id);
  // Bob's retry is answered with Bob's execution.
  assert.equal((await post(bob.token, body, key)).json<{ id: string }>().id, bobs.json<{ id: string }>().id);
});

test('two requests with one key at the same moment create one execution, and both answer it', async () => {
  const key = randomUUID();
  const body = { kind: 'shell', command: 'echo concurrent' };
  const before = await count(alice.user.id);
  const answers = await Promise.all(Array.from({ length: 8 }, () => post(alice.token, body, key)));
  for (const r of answers) assert.equal(r.statusCode, 201, r.body);
  const ids = new Set(answers.map((r) => r.json<{ id: string }>().id));
  assert.equal(ids.size, 1, `one execution: ${[...ids].join(', ')}`);
  assert.equal(answers.filter((r) => r.headers['idempotent-replayed'] === undefined).length, 1, 'exactly one answer created it');
  assert.equal(await count(alice.user.id), before + 1);
});

test("a request that holds a key makes a second one wait, which then answers the first one's execution", async () => {
  // The race without luck: the first claim holds its transaction open until PostgreSQL shows the second
  // one waiting on the key's lock.
  const keys = new IdempotencyKeys(stack.pool, secretBox);
  const key = randomUUID();
  const request = normalizeRequest({ kind: 'shell', command: 'echo raced' }, stack.config());
  const digest = requestDigest({ kind: 'shell', command: 'echo raced' });
  const [firstId, secondId] = [newId(), newId()];
  const insert = (id: string, db: Queryable) => store.insert(id, alice.user.id, request, toSpec(request), undefined, db);
  let entered!: () => void;
  const inside = new Promise<void>((resolve) => (entered = resolve));
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const first = keys.claim(alice.user.id, key, digest, firstId, async (db) => {
    const row = await insert(firstId, db);
    entered();
    await held;
    return row;
  });
  await inside;
  const second = keys.claim(alice.user.id, key, digest, secondId, (db) => insert(secondId, db));
  await until(async () => (await stack.pool.query(`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO idempotency_keys%'`)).rowCount! > 0);
  release();
  assert.equal((await first).kind, 'created');
  assert.deepEqual(await second, { kind: 'taken', executionId: firstId });
  assert.equal(await store.get(secondId, null), null, "the second request's row was never stored");
  assert.ok(await store.get(firstId, null));
});

test('a key is free again after its 24 h, and a request refused before anything was stored does not take it', async () => {
  const key = randomUUID();
  const body = { kind: 'shell', command: 'echo day' };
  const first = (await post(alice.token, body, key)).json<{ id: string }>().id;
  await stack.pool.query(`UPDATE idempotency_keys SET created_at = now() - interval '24 hours 1 minute' WHERE owner_id = $1 AND key = $2`, [alice.user.id, key]);
  const later = await post(alice.token, { kind: 'shell', command: 'echo another day' }, key);
  assert.equal(later.statusCode, 201, later.body);
  assert.equal(later.headers['idempotent-replayed'], undefined);
  assert.notEqual(later.json<{ id: string }>().id, first, 'a new execution under the old key');

  // A refusal (a secret not stored yet) stores nothing, so the retry once the secret exists goes through.
  const refusedKey = randomUUID();
  const needsSecret = { kind: 'shell', command: 'true', secrets: ['DEPLOY_KEY'] };
  assert.equal((await post(alice.token, needsSecret, refusedKey)).statusCode, 400);
  await new SecretStore(stack.pool, secretBox).put({ user: alice.user.id }, 'DEPLOY_KEY', 'k');
  const retried = await post(alice.token, needsSecret, refusedKey);
  assert.equal(retried.statusCode, 201, retried.body);
  assert.equal(retried.headers['idempotent-replayed'], undefined);
});

test('the key is checked: 1 to 255 printable ASCII characters; what is stored of the body is sealed', async () => {
  for (const key of ['x'.repeat(256), 'caf\u00e9']) {
    const r = await post(alice.token, { kind: 'shell', command: 'true' }, key);
    assert.equal(r.statusCode, 400, `${key.slice(0, 10)}: ${r.body}`);
    assert.match(r.json<{ error: { message: string } }>().error.message, /^headers\.idempotency-key must match pattern/);
  }
  const key = randomUUID();
  const body = { kind: 'shell', command: 'true', env: { PIN: '1234' } };
  assert.equal((await post(alice.token, body, key)).statusCode, 201);
  const stored = (await stack.pool.query<{ d: Buffer }>(`SELECT request_digest AS d FROM idempotency_keys WHERE owner_id = $1 AND key = $2`, [alice.user.id, key])).rows[0]!.d;
  const bare = createHash('sha256').update(JSON.stringify(body)).digest();
  assert.ok(!stored.includes(bare) && !stored.includes(Buffer.from(requestDigest(body))), 'no bare hash of the body (with its env values) is stored');
});

async function until(probe: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}
