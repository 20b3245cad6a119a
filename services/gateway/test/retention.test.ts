// Nothing grows without bound: final executions past the retention go, with their terminal tickets;
// executions still running or queued, and recent ones, stay; so do blobs used within the retention.
// Idempotency keys go once their 24 h are over.
import assert from 'node:assert/strict';
import { utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BlobStore } from '@paddock/blobs';
import { ExecutionStore } from '../src/executions/executionStore.js';
import { normalizeRequest, toSpec } from '../src/executions/request.js';
import { newId } from '../src/ids.js';
import { TicketStore } from '../src/instances/ticketStore.js';
import { RetentionCleaner } from '../src/retention.js';
import { UserStore } from '../src/users/userStore.js';
import { startTestStack, type TestStack } from './testStack.js';

let stack: TestStack;

before(async () => {
  stack = await startTestStack();
});
after(async () => {
  await stack?.stop();
});

const DAY_MS = 24 * 60 * 60 * 1000;

test('the cleaner removes final executions older than PADDOCK_RETENTION_DAYS with their tickets, and keeps the rest', async () => {
  const config = stack.config({ PADDOCK_RETENTION_DAYS: '30' });
  assert.equal(config.retentionMs, 30 * DAY_MS);
  assert.equal(stack.config().retentionMs, 30 * DAY_MS, 'the default is 30 days');
  const { user } = await new UserStore(stack.pool).create('retention-user');
  const store = new ExecutionStore(stack.pool);
  const tickets = new TicketStore(stack.pool, 3_600_000);
  const request = normalizeRequest({ kind: 'shell', command: 'true' }, config);

  /** An execution in `state` that ended (or, not final, was created) `ageDays` ago. */
  const row = async (state: string, ageDays: number) => {
    const id = newId();
    await store.insert(id, user.id, request, toSpec(request));
    await stack.pool.query(
      `UPDATE executions SET state = $2, published = true, created_at = now() - make_interval(days => $3 + 1),
         finished_at = CASE WHEN $2 IN ('completed', 'failed', 'cancelled') THEN now() - make_interval(days => $3) END
       WHERE id = $1`,
      [id, state, ageDays],
    );
    return id;
  };
  const old = { completed: await row('completed', 31), failed: await row('failed', 45), cancelled: await row('cancelled', 400) };
  const recent = await row('completed', 29);
  const stillRunning = await row('executing', 90);
  const stillQueued = await row('queued', 90);
  // A ticket issued while it ran (and not used) goes with its execution.
  const ticket = await tickets.issue(old.completed, user.id);
  const kept = await tickets.issue(stillRunning, user.id);
  const key = (name: string, executionId: string, ageHours: number) =>
    stack.pool.query(
      `INSERT INTO idempotency_keys (owner_id, key, request_digest, execution_id, created_at) VALUES ($1, $2, '\\x00', $3, now() - make_interval(hours => $4))`,
      [user.id, name, executionId, ageHours],
    );
  await key('past-its-day', stillRunning, 25);
  await key('fresh', stillQueued, 23);
  // A key goes with the execution it names, whatever its age.
  await key('of-a-removed-execution', old.completed, 1);

  const blobs = new BlobStore(config.blobsDir);
  const stale = await blobs.put(Buffer.from('used 31 days ago'));
  const fresh = await blobs.put(Buffer.from('used yesterday'));
  const at = (days: number) => new Date(Date.now() - days * DAY_MS);
  await utimes(join(config.blobsDir, stale.sha256.slice(0, 2), stale.sha256), at(31), at(31));
  await utimes(join(config.blobsDir, fresh.sha256.slice(0, 2), fresh.sha256), at(1), at(1));

  const cleaner = new RetentionCleaner(stack.pool, store, blobs, config.retentionMs, stack.log);
  const counts = await cleaner.runOnce();
  assert.deepEqual(counts, { executions: 3, expiredTickets: 0, idempotencyKeys: 1, blobs: 1 });
  const keys = await stack.pool.query<{ key: string }>(`SELECT key FROM idempotency_keys WHERE owner_id = $1`, [user.id]);
  assert.deepEqual(keys.rows.map((r) => r.key), ['fresh'], 'a key within its 24 h stays, unless its execution went');

  for (const id of Object.values(old)) assert.equal(await store.get(id, null), null, `${id} is removed`);
  for (const id of [recent, stillRunning, stillQueued]) assert.ok(await store.get(id, null), `${id} is kept`);
  assert.equal(await tickets.take(ticket.ticket), null, 'the ticket of a removed execution is gone');
  assert.deepEqual(await tickets.take(kept.ticket), { executionId: stillRunning, userId: user.id });
  await assert.rejects(blobs.get(stale), /is not in the blob store/);
  assert.equal((await blobs.get(fresh)).toString(), 'used yesterday');

  assert.deepEqual(await cleaner.runOnce(), { executions: 0, expiredTickets: 0, idempotencyKeys: 0, blobs: 0 }, 'a second pass finds nothing');
  await cleaner.stop();
});

test('a retention below one day is refused when the configuration is compiled', () => {
  assert.throws(() => stack.config({ PADDOCK_RETENTION_DAYS: '0' }), /PADDOCK_RETENTION_DAYS/);
});
