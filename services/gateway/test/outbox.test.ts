// The row is the promise: a request accepted while NATS is down is still answered 201, and the outbox
// relay of a running gateway puts it on the bus once NATS is back, exactly once.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Bus, topics } from '@paddock/bus';
import { ExecutionAccount, ExecutionKind, ExecutionRequested, type ExecutionSpec } from '@paddock/proto';
import { SecretBox, SpecKey } from '@paddock/secrets';
import { loadServiceTls } from '@paddock/plane';
import { buildApp } from '../src/app.js';
import { ExecutionService } from '../src/executions/executionService.js';
import { ExecutionStore } from '../src/executions/executionStore.js';
import { normalizeRequest, toSpec } from '../src/executions/request.js';
import { startGateway } from '../src/gateway.js';
import { HealthWatch } from '../src/health.js';
import { newId } from '../src/ids.js';
import { BrokerDirectory } from '../src/instances/brokers.js';
import { TicketStore } from '../src/instances/ticketStore.js';
import { SecretStore } from '../src/secrets/secretStore.js';
import { TenancyStore } from '../src/tenancy/tenancyStore.js';
import { UserStore } from '../src/users/userStore.js';
import { startTestStack, type TestStack } from './testStack.js';

let stack: TestStack;
/** How long POST /api/v1/executions took while NATS was down, measured by the first test. */
let answeredWhileDownInMs: number | undefined;

before(async () => {
  stack = await startTestStack();
});
after(async () => {
  await stack?.stop();
});

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('a request accepted while NATS is down is answered 201 and published once NATS is back', { timeout: 30_000 }, async () => {
  const gateway = await startGateway(stack.config(), stack.log);
  let reader: Bus | undefined;
  try {
    const token = (await readFile(join(stack.home, 'admin-token'), 'utf8')).trim();
    const auth = { authorization: `Bearer ${token}` };

    await stack.nats.stop();
    const startedMs = Date.now();
    const created = await gateway.app.inject({ method: 'POST', url: '/api/v1/executions', headers: auth, payload: { kind: 'shell', command: 'echo from the outbox' } });
    answeredWhileDownInMs = Date.now() - startedMs;
    assert.equal(created.statusCode, 201, created.body);
    const id = created.json<{ id: string }>().id;

    const shown = await gateway.app.inject({ method: 'GET', url: `/api/v1/executions/${id}`, headers: auth });
    assert.equal(shown.statusCode, 200);
    assert.equal(shown.json<{ state: string }>().state, 'queued');

    // The testkit's stop() also removes the server's store, so it comes back empty; the reader's
    // connect creates the streams again, as every service does when it connects.
    await stack.nats.restart();
    reader = await Bus.connect({ url: stack.nats.url, name: 'test-reader', log: stack.log });
    const subject = topics.executionRequested.subject(id);
    const stored = await until('the request on the stream', () =>
      reader!.jsm.streams.getMessage('PADDOCK_EXECUTIONS', { last_by_subj: subject }).then(
        (m) => m,
        () => undefined,
      ),
    );
    const message = ExecutionRequested.decode(stored.data);
    assert.equal(message.executionId, id);
    assert.equal(message.spec?.kind, ExecutionKind.EXECUTION_KIND_SHELL);
    assert.equal(message.spec?.command, 'echo from the outbox');
    assert.equal(message.requestedAtMs, new Date(created.json<{ createdAt: string }>().createdAt).getTime());
    // Its account follows it, stored with the row when it was accepted.
    const accountSubject = topics.executionAccount.subject(id);
    const account = ExecutionAccount.decode((await reader.jsm.streams.getMessage('PADDOCK_EXECUTIONS', { last_by_subj: accountSubject })).data);
    assert.equal(account.executionId, id);
    assert.equal(account.projectId, created.json<{ projectId: string }>().projectId);
    assert.equal(account.requestedAtMs, message.requestedAtMs);
    assert.match(account.llmKeySha256, /^[0-9a-f]{64}$/);

    // Two more turns of the relay (every 2 s) must not publish either again.
    await new Promise((r) => setTimeout(r, 4_500));
    const info = await reader.jsm.streams.info('PADDOCK_EXECUTIONS', { subjects_filter: `paddock.v1.execution.${id}.*` });
    assert.deepEqual(info.state.subjects, { [subject]: 1, [accountSubject]: 1 });
  } finally {
    await gateway.stop();
    await reader?.drain();
  }
});

test(
  'a request accepted while NATS is down is answered without waiting for NATS',
  () => {
    assert.ok(answeredWhileDownInMs !== undefined, 'the test above measured it');
    assert.ok(answeredWhileDownInMs < 2_000, `POST /api/v1/executions took ${answeredWhileDownInMs} ms while NATS was down`);
  },
);

test('a row that can never be published fails its execution with a reason, and the rows after it are published', { timeout: 60_000 }, async () => {
  const users = new UserStore(stack.pool);
  const { user, token } = await users.create('outbox-user');
  const store = new ExecutionStore(stack.pool);
  const config = stack.config();
  const bus = await Bus.connect({ url: stack.nats.url, name: 'paddock-gateway', log: stack.log });
  try {
    const service = new ExecutionService(store, new SecretStore(stack.pool, SecretBox.withKey(randomBytes(32))), SpecKey.withKey(randomBytes(32)), bus, config, stack.log);
    // Rows as the gateway stores them while NATS is away: not yet published.
    const insert = async (command: string, spec: ExecutionSpec) => {
      const id = newId();
      await store.insert(id, user.id, normalizeRequest({ kind: 'shell', command }, config), spec);
      await stack.pool.query(`UPDATE executions SET created_at = now() - interval '10 seconds' WHERE id = $1`, [id]);
      return id;
    };
    const good = (n: number) => insert(`echo good ${n}`, toSpec(normalizeRequest({ kind: 'shell', command: `echo good ${n}` }, config)));
    const first = await good(1);
    // Accepted by an earlier gateway that put files inline: larger than NATS's max payload (1 MiB).
    const tooLarge = await insert('cat big.bin', { ...toSpec(normalizeRequest({ kind: 'shell', command: 'cat big.bin' }, config)), files: { 'big.bin': Buffer.alloc(2 * 1024 * 1024, 7) } });
    const unreadable = await insert('true', toSpec(normalizeRequest({ kind: 'shell', command: 'true' }, config)));
    await stack.pool.query(`UPDATE executions SET spec = '\\xffffffff'::bytea WHERE id = $1`, [unreadable]);
    const second = await good(2);

    await service.relayOutbox();

    const personal = (await new TenancyStore(stack.pool).personalProjectOf(user.id))!;
    for (const [id, n] of [[first, 1], [second, 2]] as const) {
      const stored = await bus.jsm.streams.getMessage('PADDOCK_EXECUTIONS', { last_by_subj: topics.executionRequested.subject(id) });
      const requested = ExecutionRequested.decode(stored.data);
      assert.equal(requested.spec?.command, `echo good ${n}`);
      // Stored without an account, as a row of the release before accounts: billed to its project, with no LLM access.
      const account = ExecutionAccount.decode((await bus.jsm.streams.getMessage('PADDOCK_EXECUTIONS', { last_by_subj: topics.executionAccount.subject(id) })).data);
      assert.deepEqual(
        { ...account, sealedLlmCredentials: account.sealedLlmCredentials.length },
        { executionId: id, ownerId: user.id, projectId: personal.id, teamId: personal.teamId, workflowId: '', llmKeySha256: '', sealedLlmCredentials: 0, requestedAtMs: requested.requestedAtMs },
      );
    }
    const app = await buildApp({
      config,
      log: stack.log,
      users,
      executions: service,
      store,
      secrets: new SecretStore(stack.pool, SecretBox.withKey(randomBytes(32))),
      brokers: new BrokerDirectory(bus, await loadServiceTls(config.tls)),
      tickets: new TicketStore(stack.pool),
      bus,
      health: new HealthWatch(stack.pool, bus),
    });
    try {
      const shown = async (id: string) =>
        (await app.inject({ method: 'GET', url: `/api/v1/executions/${id}`, headers: { authorization: `Bearer ${token}` } })).json<{ state: string; error: string | null; finishedAt: string | null }>();
      const large = await shown(tooLarge);
      assert.equal(large.state, 'failed');
      assert.match(large.error ?? '', /^its request is \d{7} bytes, more than the 1048576 the bus accepts \(.*\); submit it again$/);
      assert.ok(large.finishedAt);
      const broken = await shown(unreadable);
      assert.equal(broken.state, 'failed');
      assert.match(broken.error ?? '', /^its stored request cannot be read any more \(.+\); submit it again$/);
      assert.equal((await shown(first)).state, 'queued', 'published, waiting for the scheduler');
    } finally {
      await app.close();
    }
    for (const id of [tooLarge, unreadable]) {
      const info = await bus.jsm.streams.info('PADDOCK_EXECUTIONS', { subjects_filter: `paddock.v1.execution.${id}.*` });
      assert.deepEqual(info.state.subjects ?? {}, {}, 'nothing the scheduler cannot use is published, and no account for it');
    }
    assert.deepEqual((await store.unpublished(0)).map((r) => r.id).filter((id) => [first, second, tooLarge, unreadable].includes(id)), [], 'the outbox is done with all four');
  } finally {
    await bus.drain();
  }
});

test('while NATS fails it, the relay backs off from its first failure instead of trying every pass', { timeout: 60_000 }, async () => {
  const users = new UserStore(stack.pool);
  const { user } = await users.create('backoff-user');
  const store = new ExecutionStore(stack.pool);
  const config = stack.config();
  const bus = await Bus.connect({ url: stack.nats.url, name: 'paddock-gateway', log: stack.log });
  try {
    const service = new ExecutionService(store, new SecretStore(stack.pool, SecretBox.withKey(randomBytes(32))), SpecKey.withKey(randomBytes(32)), bus, config, stack.log);
    const id = newId();
    await store.insert(id, user.id, normalizeRequest({ kind: 'shell', command: 'echo later' }, config), toSpec(normalizeRequest({ kind: 'shell', command: 'echo later' }, config)));
    await stack.pool.query(`UPDATE executions SET created_at = now() - interval '10 seconds' WHERE id = $1`, [id]);
    await stack.nats.stop();
    const timed = async (nowMs: number) => {
      const started = Date.now();
      await service.relayOutbox(nowMs);
      return Date.now() - started;
    };
    const t0 = Date.now();
    assert.ok((await timed(t0)) >= 1_000, 'the first pass waits for NATS (the publish timeout)');
    assert.ok((await timed(t0 + 1_000)) < 200, 'within 2 s of the first failure, no new try');
    assert.ok((await timed(t0 + 2_500)) >= 1_000, 'after 2 s, a second try');
    assert.ok((await timed(t0 + 5_000)) < 200, 'the third waits 4 s more: 6 s after the first failure');
    assert.ok((await timed(t0 + 6_500)) >= 1_000, 'and then it tries');
    await stack.nats.restart();
    await until('the request on the stream', async () => {
      await service.relayOutbox(Date.now() + 60_000);
      return (await store.unpublished(0)).some((r) => r.id === id) ? undefined : true;
    });
  } finally {
    await bus.drain();
  }
});
