import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { PermanentError } from '@paddock/errors';
import { ExecutionState, ExecutionStateChanged } from '@paddock/proto';
import { startNatsServer, type NatsServer } from '@paddock/testkit';
import { Bus, deadLetters, topics, type BusObserver, type DeadLetter } from '../src/index.js';

const log = pino({ level: process.env['BUS_TEST_LOG'] ?? 'silent' });

/** A nats-server of the test's own: consumers that replay a whole stream see only this test's messages. */
async function natsFor(t: TestContext): Promise<NatsServer> {
  const nats = await startNatsServer();
  t.after(() => nats.stop());
  return nats;
}

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

/** Resolves once `check()` holds; fails after `timeoutMs`. */
function waitFor(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (check()) return resolve();
      if (Date.now() - started > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 25);
    };
    tick();
  });
}

/** The dead letters of `consumer` once there are `count` of them; whatever there is after 20 s. */
async function deadLettersOf(bus: Bus, consumer: string, count: number): Promise<DeadLetter[]> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const found = await bus.deadLetters(consumer);
    if (found.length >= count || Date.now() > deadline) return found;
    await new Promise((r) => setTimeout(r, 50));
  }
}

function countingObserver(): BusObserver & { redelivered: number; deadLettered: number; errors: string[] } {
  const o = {
    redelivered: 0,
    deadLettered: 0,
    errors: [] as string[],
    busRedelivered: () => void o.redelivered++,
    busDeadLettered: () => void o.deadLettered++,
    errorOccurred: (kind: string) => void o.errors.push(kind),
  };
  return o;
}

test('a message whose handler keeps failing is retried with growing pauses, then dead-lettered; the others go on', async (t) => {
  const nats = await natsFor(t);
  const observer = countingObserver();
  const bus = await Bus.connect({ url: nats.url, name: 'dl-transient', log, observer });
  try {
    const handled = new Set<string>();
    const poisonAttemptsAtMs: number[] = [];
    const sub = await bus.consume(
      topics.executionState,
      { durable: 'dl-transient', maxDeliver: 4, retryInitialDelayMs: 200, retryMaxDelayMs: 2000 },
      async (d) => {
        if (d.id === 'poison') {
          poisonAttemptsAtMs.push(Date.now());
          throw new Error('database is unreachable');
        }
        handled.add(d.id);
      },
    );
    await bus.publish(topics.executionState, 'good1', state('good1', 1));
    const poisonAck = await bus.publish(topics.executionState, 'poison', state('poison', 7));
    await bus.publish(topics.executionState, 'good2', state('good2', 1));
    await waitFor('the good messages', () => handled.has('good1') && handled.has('good2'));

    const [letter] = await deadLettersOf(bus, 'dl-transient', 1);
    assert.ok(letter, 'the poison message is on the dead-letter subject');
    assert.equal(poisonAttemptsAtMs.length, 4, 'delivered max_deliver times, no more');
    // 200, 400, 800 ms: each pause at least the one before, doubled, counted by NATS from the first delivery.
    const pauses = poisonAttemptsAtMs.slice(1).map((t, i) => t - poisonAttemptsAtMs[i]!);
    assert.ok(pauses[0]! >= 180 && pauses[1]! >= 380 && pauses[2]! >= 780, `pauses grow: ${pauses.join(', ')} ms`);

    assert.equal(letter.originalSubject, topics.executionState.subject('poison'));
    assert.equal(letter.originalStream, 'PADDOCK_EXECUTIONS');
    assert.equal(letter.originalSeq, poisonAck.seq);
    assert.equal(letter.consumer, 'dl-transient');
    assert.equal(letter.deliveries, 4);
    assert.match(letter.reason, /handling failed 4 times .*database is unreachable/);
    assert.equal(letter.errorName, 'Error');
    assert.deepEqual(ExecutionStateChanged.decode(letter.payload).version, 7, 'the original payload, unchanged');

    // The consumer goes on after it.
    await bus.publish(topics.executionState, 'good3', state('good3', 1));
    await waitFor('a message after the dead letter', () => handled.has('good3'));
    await sub.stop();

    const stats = bus.stats().consumers['dl-transient']!;
    assert.equal(stats.deadLetters, 1);
    assert.equal(stats.retried, 3);
    assert.equal(stats.redeliveries, 3);
    assert.equal(observer.deadLettered, 1);
    assert.equal(observer.redelivered, 3);
  } finally {
    await bus.drain();
  }
});

test('a PermanentError dead-letters the message at once, with its words as the reason', async (t) => {
  const nats = await natsFor(t);
  const bus = await Bus.connect({ url: nats.url, name: 'dl-permanent', log });
  try {
    const handled = new Set<string>();
    let poisonCalls = 0;
    const sub = await bus.consume(topics.executionState, { durable: 'dl-permanent' }, async (d) => {
      if (d.id === 'bad') {
        poisonCalls++;
        throw new PermanentError('execution bad names image "nope:1", which does not exist', { cause: new Error('404 from the engine') });
      }
      handled.add(d.id);
    });
    await bus.publish(topics.executionState, 'bad', state('bad', 1));
    await bus.publish(topics.executionState, 'fine', state('fine', 1));
    const [letter] = await deadLettersOf(bus, 'dl-permanent', 1);
    await waitFor('the good message', () => handled.has('fine'));
    await sub.stop();
    assert.ok(letter);
    assert.equal(poisonCalls, 1, 'never retried');
    assert.equal(letter.deliveries, 1);
    assert.equal(letter.reason, 'execution bad names image "nope:1", which does not exist');
    assert.equal(letter.errorName, 'PermanentError');
  } finally {
    await bus.drain();
  }
});

test('a payload that does not decode is dead-lettered without reaching the handler', async (t) => {
  const nats = await natsFor(t);
  const bus = await Bus.connect({ url: nats.url, name: 'dl-undecodable', log });
  try {
    const seen: string[] = [];
    const sub = await bus.consume(topics.executionState, { durable: 'dl-undecodable' }, async (d) => void seen.push(d.id));
    // Bytes no protobuf message is made of: a field header whose varint never ends.
    await bus.js.publish(topics.executionState.subject('garbled'), new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]));
    await bus.publish(topics.executionState, 'after', state('after', 1));
    const [letter] = await deadLettersOf(bus, 'dl-undecodable', 1);
    await waitFor('the message after it', () => seen.includes('after'));
    await sub.stop();
    assert.ok(letter);
    assert.ok(!seen.includes('garbled'));
    assert.match(letter.reason, /not a execution\.state message/);
    assert.deepEqual([...letter.payload], [0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
  } finally {
    await bus.drain();
  }
});

test('a message whose process dies while handling it, max_deliver times, is dead-lettered by a live process', async (t) => {
  const nats = await natsFor(t);
  const opts = { durable: 'dl-crash', maxDeliver: 1, ackWaitMs: 1000 } as const;
  const crashing = await Bus.connect({ url: nats.url, name: 'dl-crashing', log });
  const survivor = await Bus.connect({ url: nats.url, name: 'dl-survivor', log });
  let release!: () => void;
  const stuck = new Promise<void>((r) => (release = r));
  try {
    let started = false;
    const crashingSub = await crashing.consume(topics.executionState, opts, async () => {
      started = true;
      await stuck;
    });
    await survivor.publish(topics.executionState, 'killer', state('killer', 1));
    await waitFor('the first process to take the message', () => started);
    // The survivor shares the durable; it only starts pulling now, so the first process holds the message.
    const handled = new Set<string>();
    const survivorSub = await survivor.consume(topics.executionState, opts, async (d) => void handled.add(d.id));
    // As a kill -9 would: the connection goes without a word, the message unacked.
    await crashing.nc.close();
    const [letter] = await deadLettersOf(survivor, 'dl-crash', 1);
    assert.ok(letter);
    assert.equal(letter.originalSubject, topics.executionState.subject('killer'));
    assert.match(letter.reason, /delivered 1 times without an ack/);
    assert.equal(ExecutionStateChanged.decode(letter.payload).executionId, 'killer');
    await survivor.publish(topics.executionState, 'next', state('next', 1));
    await waitFor('the next message', () => handled.has('next'));
    assert.ok(!handled.has('killer'), 'NATS gave up on it: nobody handles it again');
    release();
    await crashingSub.stop();
    await survivorSub.stop();
  } finally {
    release();
    await crashing.drain();
    await survivor.drain();
  }
});

test('a message waiting or handled longer than the ack wait is not given to anyone again', async (t) => {
  const nats = await natsFor(t);
  const bus = await Bus.connect({ url: nats.url, name: 'dl-slow', log });
  try {
    const calls: number[] = [];
    let done = false;
    const sub = await bus.consume(topics.instanceStarted, { durable: 'dl-slow', ackWaitMs: 600, concurrency: 1 }, async (d) => {
      calls.push(d.deliveries);
      await new Promise((r) => setTimeout(r, 1500));
      if (d.id === 's2') done = true;
    });
    // With one handler at a time, s2 waits for s1 longer than the ack wait before its own long turn.
    await bus.publish(topics.instanceStarted, 's1', { executionId: 's1', brokerId: 'b', containerId: 'c', startedAtMs: 1 });
    await bus.publish(topics.instanceStarted, 's2', { executionId: 's2', brokerId: 'b', containerId: 'c', startedAtMs: 1 });
    await waitFor('both messages handled', () => done);
    await new Promise((r) => setTimeout(r, 800));
    await sub.stop();
    assert.deepEqual(calls, [1, 1], 'each handled once, on its first delivery');
    assert.deepEqual(await bus.deadLetters('dl-slow'), []);
  } finally {
    await bus.drain();
  }
});

test('dead letters live in their own stream, one subject per consumer', async (t) => {
  const nats = await natsFor(t);
  const bus = await Bus.connect({ url: nats.url, name: 'dl-stream', log });
  try {
    assert.equal(deadLetters.subject('scheduler-requested'), 'paddock.v1.deadletter.scheduler-requested');
    assert.throws(() => deadLetters.subject('a.b'), /invalid subject token/);
    const info = await bus.jsm.streams.info('PADDOCK_DEADLETTER');
    assert.deepEqual(info.config.subjects, ['paddock.v1.deadletter.>']);
  } finally {
    await bus.drain();
  }
});
