// PostgreSQL and NATS taken away (kill -9) and brought back while the broker runs jobs: a dependency that
// is briefly away delays what the broker does, and never changes how a job ends or drops it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { topics } from '@paddock/bus';
import { createPool, type Pool } from '@paddock/db';
import { ExitCause, OutputStream, type ExecutionSpec } from '@paddock/proto';
import type { StartedBroker } from '../src/broker.js';
import { InstanceStore } from '../src/instanceStore.js';
import { LaunchError } from '../src/lifecycle/launchError.js';
import { containersOf, waitUntilExited } from './support/containers.js';
import { exitedOf, outputContains, outputOf, startedOf, storedCount, textOf } from './support/jetstream.js';
import { shellSpec } from './support/specs.js';
import { setUpTestBroker, type TestBroker } from './support/testBroker.js';

let t: TestBroker;
let broker: StartedBroker;
let pool: Pool;

before(async () => {
  t = await setUpTestBroker('outages');
  broker = await t.start();
  pool = createPool(t.services.databaseUrl);
});
after(async () => {
  await pool?.end();
  await t?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function launch(spec: ExecutionSpec, executionId = randomUUID()) {
  return broker.instances.launch({ executionId, ownerId: 'erin', spec });
}

/** The execution ids of every heartbeat of this broker heard during `forMs`. */
async function heartbeatsDuring(forMs: number): Promise<string[][]> {
  const beats: string[][] = [];
  const sub = t.bus.subscribe(topics.brokerHeartbeat, t.brokerId, (d) => beats.push(d.message.executionIds));
  await sleep(forMs);
  await sub.stop();
  return beats;
}

async function waitUntilRunning(executionId: string, timeoutMs = 20_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(100)) {
    const [c] = await containersOf(t.docker, t.brokerId, executionId);
    if (c?.State === 'running') return;
  }
  throw new Error(`the container of ${executionId} did not run within ${timeoutMs} ms`);
}

test('PostgreSQL killed while a job ends: the instance stays held and named in the heartbeat; once PostgreSQL is back the job ends with its real exit, published once', async () => {
  const id = randomUUID();
  await launch(shellSpec('echo before; sleep 1; echo after; exit 3'), id);
  await outputContains(t.bus, id, 'before');
  await t.services.killDatabase();
  try {
    await waitUntilExited(t.docker, t.brokerId, id);
    const beats = await heartbeatsDuring(3_000);
    assert.ok(beats.length >= 2, `heard ${beats.length} heartbeats`);
    assert.ok(beats.every((ids) => ids.includes(id)), 'every heartbeat of the outage names the execution');
    // A periodic reconciliation meanwhile decides nothing about it.
    await broker.instances.reconcile();
    assert.ok(broker.instances.executionIds.includes(id));
    assert.equal(await storedCount(t.bus, topics.instanceExited, id), 0, 'nothing is published before the exit is recorded');
  } finally {
    await t.services.startDatabase();
  }
  const exited = await exitedOf(t.bus, id, 30_000);
  assert.equal(exited.cause, ExitCause.EXIT_CAUSE_EXITED);
  assert.equal(exited.exitCode, 3);
  assert.equal(exited.artifactsSaved, true);
  const chunks = await outputOf(t.bus, id);
  assert.equal(textOf(chunks, OutputStream.OUTPUT_STREAM_STDOUT), 'before\nafter\n');
  assert.equal(chunks.filter((c) => c.eof).length, 1);
  assert.deepEqual(await containersOf(t.docker, t.brokerId, id), []);
  await sleep(1_500);
  assert.equal(await storedCount(t.bus, topics.instanceExited, id), 1);
  assert.equal(broker.instances.executionIds.includes(id), false, 'let go once its end is published');
  assert.equal((await new InstanceStore(pool).get(id))?.state, 'ended');
});

test('NATS killed while a job starts, for longer than a publish waits: Launch answers success once NATS is back, the start is published once, the job ends normally', async () => {
  const id = randomUUID();
  await t.services.killNats();
  let launched: Promise<unknown> | undefined;
  try {
    launched = launch(shellSpec('echo hello; sleep 2; echo bye'), id);
    launched.catch(() => {});
    await waitUntilRunning(id);
    // JetStream's answer to one publish is awaited for 10 s: past that, a single attempt would have failed.
    await sleep(12_000);
    assert.ok(broker.instances.executionIds.includes(id));
  } finally {
    await t.services.startNats();
  }
  const reply = (await launched) as { startedAtMs: number; containerId: string };
  assert.ok(reply.startedAtMs > 0, 'answers with the time the job started');
  const started = await startedOf(t.bus, id, 30_000);
  assert.equal(started.containerId, reply.containerId);
  const exited = await exitedOf(t.bus, id, 30_000);
  assert.equal(exited.cause, ExitCause.EXIT_CAUSE_EXITED, `ended ${JSON.stringify(exited)}`);
  assert.equal(exited.exitCode, 0);
  const chunks = await outputOf(t.bus, id);
  assert.equal(textOf(chunks, OutputStream.OUTPUT_STREAM_STDOUT), 'hello\nbye\n');
  assert.equal(await storedCount(t.bus, topics.instanceStarted, id), 1);
  assert.equal(await storedCount(t.bus, topics.instanceExited, id), 1);
  assert.deepEqual(await containersOf(t.docker, t.brokerId, id), []);
});

test('a Launch while PostgreSQL is down answers UNAVAILABLE and leaves nothing behind; the same Launch once it is back runs the job once', async () => {
  const id = randomUUID();
  const spec = shellSpec('echo ran');
  await t.services.killDatabase();
  try {
    await assert.rejects(launch(spec, id), (err: unknown) => {
      assert.ok(err instanceof LaunchError, String(err));
      assert.equal(err.code, GrpcStatus.UNAVAILABLE);
      assert.match(err.details, /database is unavailable.*try again/);
      return true;
    });
    assert.deepEqual(await containersOf(t.docker, t.brokerId, id), []);
    assert.equal(broker.instances.executionIds.includes(id), false);
  } finally {
    await t.services.startDatabase();
  }
  await launch(spec, id);
  const exited = await exitedOf(t.bus, id);
  assert.equal(exited.cause, ExitCause.EXIT_CAUSE_EXITED);
  assert.equal(textOf(await outputOf(t.bus, id), OutputStream.OUTPUT_STREAM_STDOUT), 'ran\n');
  assert.equal(await storedCount(t.bus, topics.instanceStarted, id), 1);
  assert.equal(await storedCount(t.bus, topics.instanceExited, id), 1);
});

test('nothing labelled with this broker id is left behind', async () => {
  assert.deepEqual(await containersOf(t.docker, t.brokerId), []);
});
