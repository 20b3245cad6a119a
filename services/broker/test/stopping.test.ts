import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { topics } from '@paddock/bus';
import { ExitCause, OutputStream, type ExecutionSpec } from '@paddock/proto';
import type { StartedBroker } from '../src/broker.js';
import { containersOf } from './support/containers.js';
import { exitedOf, outputContains, outputOf, storedCount, textOf } from './support/jetstream.js';
import { shellSpec } from './support/specs.js';
import { setUpTestBroker, type TestBroker } from './support/testBroker.js';

let t: TestBroker;
let broker: StartedBroker;

before(async () => {
  t = await setUpTestBroker('stopping');
  broker = await t.start();
});
after(async () => {
  await t?.stop();
});

function launch(spec: ExecutionSpec, executionId = randomUUID()) {
  return broker.instances.launch({ executionId, ownerId: 'bob', spec });
}

test('cancel sends SIGTERM: the job ends as CANCELLED well before the grace period, and its container is gone', async () => {
  const id = randomUUID();
  await launch(shellSpec('echo started; sleep 60'), id);
  await outputContains(t.bus, id, 'started');
  const t0 = Date.now();
  assert.equal(await broker.instances.cancel(id, 10_000), true);
  const exited = await exitedOf(t.bus, id);
  assert.ok(Date.now() - t0 < 8_000, `took ${Date.now() - t0} ms`);
  assert.equal(exited.cause, ExitCause.EXIT_CAUSE_CANCELLED);
  assert.equal(exited.exitCode, 143);
  assert.equal(exited.detail, 'cancelled');
  assert.match(textOf(await outputOf(t.bus, id), OutputStream.OUTPUT_STREAM_SYSTEM), /\[paddock\] cancelled/);
  assert.deepEqual(await containersOf(t.docker, t.brokerId, id), []);
  assert.equal(await broker.instances.cancel(randomUUID(), 1000), false, 'an unknown execution is not found');
});

test(
  'a cancel that comes once the exit is published finds nothing, and adds nothing after the end of the output',
  async () => {
    const id = randomUUID();
    await launch(shellSpec('echo done'), id);
    const exited = await exitedOf(t.bus, id);
    assert.equal(exited.cause, ExitCause.EXIT_CAUSE_EXITED);
    const found = await broker.instances.cancel(id, 1000);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(
      { found, storedChunks: await storedCount(t.bus, topics.output, id) },
      { found: false, storedChunks: 2 },
      'one chunk of output and the eof, nothing after',
    );
  },
);

test('a job that ignores SIGTERM is killed after the grace period and still ends as CANCELLED', async () => {
  const id = randomUUID();
  await launch(shellSpec("trap '' TERM; echo ready; sleep 60"), id);
  await outputContains(t.bus, id, 'ready');
  const t0 = Date.now();
  await broker.instances.cancel(id, 1000);
  assert.ok(Date.now() - t0 >= 900, 'the grace period was given');
  const exited = await exitedOf(t.bus, id);
  assert.equal(exited.cause, ExitCause.EXIT_CAUSE_CANCELLED);
  assert.equal(exited.exitCode, 137);
});

test('a job past its timeout is stopped and ends as TIMED_OUT, saying so in its log', async () => {
  const id = randomUUID();
  await launch(shellSpec('echo going; sleep 60', { timeoutMs: 1500 }), id);
  const exited = await exitedOf(t.bus, id);
  assert.equal(exited.cause, ExitCause.EXIT_CAUSE_TIMED_OUT);
  assert.match(exited.detail, /^timed out/);
  assert.ok(exited.finishedAtMs - exited.startedAtMs < 10_000);
  const chunks = await outputOf(t.bus, id);
  assert.equal(textOf(chunks, OutputStream.OUTPUT_STREAM_STDOUT), 'going\n');
  assert.match(textOf(chunks, OutputStream.OUTPUT_STREAM_SYSTEM), /\[paddock\] timed out after 2s/);
  assert.deepEqual(await containersOf(t.docker, t.brokerId, id), []);
});

test('nothing labelled with this broker id is left behind', async () => {
  assert.deepEqual(await containersOf(t.docker, t.brokerId), []);
  // The count drops just after the exit is published (the row is marked ended in between).
  for (let i = 0; i < 50 && broker.instances.running > 0; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(broker.instances.running, 0);
});
