import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { startNatsServer, type NatsServer } from '@paddock/testkit';
import { ExecutionState } from '@paddock/proto';
import { Bus, topics, subjectId, type Delivery } from '../src/index.js';

const log = pino({ level: process.env['BUS_TEST_LOG'] ?? 'silent' });
let nats: NatsServer;

before(async () => {
  nats = await startNatsServer();
});
after(async () => {
  await nats.stop();
});

const state = (executionId: string, version: number) => ({
  executionId,
  ownerId: 'u1',
  state: ExecutionState.EXECUTION_STATE_QUEUED,
  version,
  atMs: Date.now(),
  reason: '',
  brokerId: '',
  startedAtMs: 0,
  finishedAtMs: 0,
});

function collect<T>(n: number): { got: Delivery<T>[]; done: Promise<void>; push: (d: Delivery<T>) => void } {
  const got: Delivery<T>[] = [];
  let resolve!: () => void;
  const done = new Promise<void>((r) => (resolve = r));
  return { got, done, push: (d) => (got.push(d), got.length >= n && resolve()) };
}

test('subjects put the id in the fourth token and refuse tokens that would break wildcards', () => {
  assert.equal(topics.executionState.subject('abc'), 'paddock.v1.execution.abc.state');
  assert.equal(subjectId(topics.output.subject('abc')), 'abc');
  assert.throws(() => topics.executionState.subject('a.b'), /invalid subject token/);
  assert.throws(() => topics.executionState.subject('a>'), /invalid subject token/);
});

test('a durable consumer gets what was published before it started, decoded, once acked', async () => {
  const bus = await Bus.connect({ url: nats.url, name: 't1', log });
  try {
    await bus.publish(topics.executionState, 'e1', state('e1', 1));
    await bus.publish(topics.executionState, 'e2', state('e2', 1));
    const c = collect<ReturnType<typeof state>>(2);
    const sub = await bus.consume(topics.executionState, { durable: 'test-durable-1' }, async (d) => c.push(d));
    await c.done;
    await sub.stop();
    assert.deepEqual(c.got.map((d) => [d.id, d.message.executionId, d.message.version]).sort(), [['e1', 'e1', 1], ['e2', 'e2', 1]]);
  } finally {
    await bus.drain();
  }
});

test('a handler that throws gets the message again', async () => {
  const bus = await Bus.connect({ url: nats.url, name: 't2', log });
  try {
    let calls = 0;
    const c = collect<unknown>(1);
    const sub = await bus.consume(topics.instanceStarted, { durable: 'test-durable-2' }, async (d) => {
      calls++;
      if (calls === 1) throw new Error('first try fails');
      c.push(d);
    });
    await bus.publish(topics.instanceStarted, 'x1', { executionId: 'x1', brokerId: 'b', containerId: 'c', startedAtMs: 1 });
    await c.done;
    await sub.stop();
    assert.equal(calls, 2);
    assert.equal(c.got[0]!.redelivered, true);
  } finally {
    await bus.drain();
  }
});

test('messages of one id are handled in order even with concurrency', async () => {
  const bus = await Bus.connect({ url: nats.url, name: 't3', log });
  try {
    for (let v = 1; v <= 20; v++) await bus.publish(topics.executionState, 'ordered', state('ordered', v));
    const c = collect<ReturnType<typeof state>>(20);
    const sub = await bus.consume(topics.executionState, { durable: 'test-durable-3', concurrency: 8 }, async (d) => {
      if (d.id !== 'ordered') return;
      await new Promise((r) => setTimeout(r, Math.random() * 5));
      c.push(d);
    });
    await c.done;
    await sub.stop();
    assert.deepEqual(c.got.map((d) => d.message.version), Array.from({ length: 20 }, (_, i) => i + 1));
  } finally {
    await bus.drain();
  }
});

test('work published while nats-server restarts is not lost', async () => {
  const bus = await Bus.connect({ url: nats.url, name: 't4', log });
  try {
    await bus.publish(topics.executionCancel, 'r1', { executionId: 'r1', requestedBy: 'u', requestedAtMs: 1 });
    await nats.restart();
    await bus.publish(topics.executionCancel, 'r2', { executionId: 'r2', requestedBy: 'u', requestedAtMs: 2 }, { msgId: 'r2', retryForMs: 30_000 });
    const c = collect<unknown>(2);
    const sub = await bus.consume(topics.executionCancel, { durable: 'test-durable-4' }, async (d) => c.push(d));
    await c.done;
    await sub.stop();
    assert.deepEqual(c.got.map((d) => d.id).sort(), ['r1', 'r2']);
  } finally {
    await bus.drain();
  }
});

test('a consumer comes back when nats-server returns without its store: streams and consumer are made again', async () => {
  const bus = await Bus.connect({ url: nats.url, name: 't5', log });
  try {
    // Earlier tests published on this subject too: wait for particular ids.
    const seen = new Set<string>();
    const waiters = new Map<string, () => void>();
    const seenId = (id: string) => new Promise<void>((resolve) => (seen.has(id) ? resolve() : waiters.set(id, resolve)));
    const sub = await bus.consume(topics.executionState, { durable: 'test-durable-5' }, async (d) => {
      seen.add(d.id);
      waiters.get(d.id)?.();
    });
    await bus.publish(topics.executionState, 'w1', state('w1', 1));
    await seenId('w1');
    await nats.restart({ wipe: true });
    // The bus makes the streams again once it is reconnected.
    for (let i = 0; ; i++) {
      const back = await bus.jsm.streams.info('PADDOCK_EXECUTIONS').then(() => true, () => false);
      if (back) break;
      assert.ok(i < 300, 'the stream came back within 30 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    await bus.publish(topics.executionState, 'w2', state('w2', 1), { msgId: 'w2', retryForMs: 30_000 });
    await seenId('w2');
    await sub.stop();
  } finally {
    await bus.drain();
  }
});
