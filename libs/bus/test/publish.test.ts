import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { MessageTooLargeError, PermanentError } from '@paddock/errors';
import { OutputStream } from '@paddock/proto';
import { startNatsServer, type NatsServer } from '@paddock/testkit';
import { Bus, topics } from '../src/index.js';

const log = pino({ level: process.env['BUS_TEST_LOG'] ?? 'silent' });

async function natsFor(t: TestContext): Promise<NatsServer> {
  const nats = await startNatsServer();
  t.after(() => nats.stop());
  return nats;
}

const chunk = (executionId: string, sizeBytes: number) => ({
  stream: OutputStream.OUTPUT_STREAM_STDOUT,
  data: Buffer.alloc(sizeBytes, 0x61),
  atMs: Date.now(),
  eof: false,
  stdoutOffset: 0,
  stderrOffset: 0,
  executionId,
});

test("a message larger than nats-server's max payload fails at once with its size and the limit, even with retries asked", async (t) => {
  const nats = await natsFor(t);
  const bus = await Bus.connect({ url: nats.url, name: 'pub-too-large', log });
  try {
    const startedAtMs = Date.now();
    const err = await bus.publish(topics.output, 'big', chunk('big', 3 * 1024 * 1024), { msgId: 'big-1', retryForMs: 30_000 }).then(
      () => assert.fail('a 3 MiB message was accepted'),
      (e: unknown) => e,
    );
    assert.ok(Date.now() - startedAtMs < 2000, 'not retried');
    assert.ok(err instanceof MessageTooLargeError);
    assert.ok(err instanceof PermanentError, 'callers see a PermanentError');
    const limit = bus.nc.info!.max_payload;
    assert.equal(err.limitBytes, limit);
    assert.ok(err.sizeBytes > 3 * 1024 * 1024, `the size counts payload and headers: ${err.sizeBytes}`);
    assert.match(err.message, new RegExp(`is ${err.sizeBytes} bytes but nats-server's max_payload accepts at most ${limit} bytes`));
    assert.equal(err.subject, topics.output.subject('big'));
    assert.equal(bus.stats().publishRetries, 0);
    assert.equal(bus.stats().publishFailures, 1);
    // Nothing was stored.
    assert.equal(await bus.lastStored(topics.output, 'big'), null);
  } finally {
    await bus.drain();
  }
});

test("a message larger than its stream's max message size fails at once and names the setting", async (t) => {
  const nats = await natsFor(t);
  const bus = await Bus.connect({ url: nats.url, name: 'pub-stream-limit', log, streamLimits: { PADDOCK_INSTANCES: { maxMsgSizeBytes: 4096 } } });
  try {
    const exited = (detail: string) => ({ executionId: 'x', brokerId: 'b', cause: 1, detail, startedAtMs: 1, finishedAtMs: 2, artifactsSaved: false });
    await bus.publish(topics.instanceExited, 'x', exited('fits'));
    const err = await bus.publish(topics.instanceExited, 'x', exited('y'.repeat(8000)), { msgId: 'x-2', retryForMs: 30_000 }).then(
      () => assert.fail('an 8 KB message was stored in a stream that takes 4 KiB'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof MessageTooLargeError);
    assert.equal(err.limitBytes, 4096);
    assert.ok(err.sizeBytes > 8000);
    assert.match(err.message, /stream PADDOCK_INSTANCES \(PADDOCK_STREAM_INSTANCES_MAX_MSG_BYTES\) accepts at most 4096 bytes/);
    assert.equal((await bus.lastStored(topics.instanceExited, 'x'))?.message.detail, 'fits');
  } finally {
    await bus.drain();
  }
});

test('a transient failure is retried until retryForMs after the first attempt, then the last error is thrown', async (t) => {
  const nats = await natsFor(t);
  const bus = await Bus.connect({ url: nats.url, name: 'pub-deadline', log });
  try {
    // No stream takes the subject: JetStream answers "no responders" at once, which may pass (a stream
    // being made again), so it is retried.
    await bus.jsm.streams.delete('PADDOCK_INSTANCES');
    const startedAtMs = Date.now();
    const err = await bus.publish(topics.instanceStarted, 'd1', { executionId: 'd1', brokerId: 'b', containerId: 'c', startedAtMs: 1 }, { msgId: 'd1', retryForMs: 1500 }).then(
      () => assert.fail('published to a stream that does not exist'),
      (e: unknown) => e,
    );
    const tookMs = Date.now() - startedAtMs;
    assert.ok(tookMs >= 1500 && tookMs < 2500, `gave up when the time was up: ${tookMs} ms`);
    assert.ok(!(err instanceof PermanentError));
    // Pauses of 100, 200, 400, 800 ms: a handful of attempts, not a busy loop.
    const retries = bus.stats().publishRetries;
    assert.ok(retries >= 3 && retries <= 6, `${retries} retries`);
  } finally {
    await bus.drain();
  }
});

test('a publish retried while its stream comes back is stored once', async (t) => {
  const nats = await natsFor(t);
  const bus = await Bus.connect({ url: nats.url, name: 'pub-recover', log });
  try {
    await bus.jsm.streams.delete('PADDOCK_INSTANCES');
    const started = { executionId: 'r1', brokerId: 'b', containerId: 'c', startedAtMs: 1 };
    const publishing = bus.publish(topics.instanceStarted, 'r1', started, { msgId: 'r1', retryForMs: 20_000 });
    await new Promise((r) => setTimeout(r, 700));
    // Another service connecting makes the streams again.
    const other = await Bus.connect({ url: nats.url, name: 'pub-recover-2', log });
    await other.drain();
    const ack = await publishing;
    assert.equal(ack.stream, 'PADDOCK_INSTANCES');
    assert.ok(bus.stats().publishRetries >= 1);
    const info = await bus.jsm.streams.info('PADDOCK_INSTANCES');
    assert.equal(info.state.messages, 1);
  } finally {
    await bus.drain();
  }
});
