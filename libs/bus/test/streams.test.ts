import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { ConfigError, StreamStorageError } from '@paddock/errors';
import { startNatsServer, type NatsServer } from '@paddock/testkit';
import { Bus, busSettingsFromEnv, compileBusConfig, DAY_MS, streams, topics } from '../src/index.js';

const log = pino({ level: process.env['BUS_TEST_LOG'] ?? 'silent' });
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const NANOS_PER_MS = 1_000_000;

async function natsFor(t: TestContext): Promise<NatsServer> {
  const nats = await startNatsServer();
  t.after(() => nats.stop());
  return nats;
}

test('every stream carries byte, message size and age limits and discards its oldest messages first', async (t) => {
  const nats = await natsFor(t);
  const bus = await Bus.connect({ url: nats.url, name: 'streams-defaults', log });
  try {
    const limits = Object.fromEntries(
      await Promise.all(
        streams.map(async (s) => {
          const { config } = await bus.jsm.streams.info(s.name);
          return [s.name, { maxBytes: config.max_bytes, maxMsgSize: config.max_msg_size, maxAgeDays: config.max_age / NANOS_PER_MS / DAY_MS, discard: config.discard }];
        }),
      ),
    );
    assert.deepEqual(limits, {
      PADDOCK_EXECUTIONS: { maxBytes: 1 * GiB, maxMsgSize: 1 * MiB, maxAgeDays: 30, discard: 'old' },
      PADDOCK_INSTANCES: { maxBytes: 1 * GiB, maxMsgSize: 256 * 1024, maxAgeDays: 30, discard: 'old' },
      PADDOCK_OUTPUT: { maxBytes: 8 * GiB, maxMsgSize: 1 * MiB, maxAgeDays: 30, discard: 'old' },
      PADDOCK_PORTS: { maxBytes: 256 * MiB, maxMsgSize: 256 * 1024, maxAgeDays: 30, discard: 'old' },
      PADDOCK_USAGE: { maxBytes: 1 * GiB, maxMsgSize: 64 * 1024, maxAgeDays: 30, discard: 'old' },
      PADDOCK_BUDGETS: { maxBytes: 64 * MiB, maxMsgSize: 64 * 1024, maxAgeDays: 30, discard: 'old' },
      PADDOCK_DEADLETTER: { maxBytes: 1 * GiB, maxMsgSize: 1 * MiB, maxAgeDays: 90, discard: 'old' },
    });
  } finally {
    await bus.drain();
  }
});

test('streams that exist get the limits of the settings on connect, from the environment as main.ts reads it', async (t) => {
  const nats = await natsFor(t);
  const first = await Bus.connect({ url: nats.url, name: 'streams-first', log });
  await first.drain();
  const settings = busSettingsFromEnv({
    PADDOCK_RETENTION_DAYS: '7',
    PADDOCK_DEADLETTER_RETENTION_DAYS: '14',
    PADDOCK_STREAM_OUTPUT_MAX_BYTES: String(64 * MiB),
    PADDOCK_STREAM_OUTPUT_MAX_MSG_BYTES: String(512 * 1024),
  });
  const bus = await Bus.connect({ url: nats.url, name: 'streams-second', log, ...settings });
  try {
    const output = (await bus.jsm.streams.info('PADDOCK_OUTPUT')).config;
    assert.equal(output.max_bytes, 64 * MiB);
    assert.equal(output.max_msg_size, 512 * 1024);
    assert.equal(output.max_age, 7 * DAY_MS * NANOS_PER_MS);
    const executions = (await bus.jsm.streams.info('PADDOCK_EXECUTIONS')).config;
    assert.equal(executions.max_bytes, 1 * GiB, 'streams not named keep their defaults');
    assert.equal(executions.max_age, 7 * DAY_MS * NANOS_PER_MS);
    assert.equal((await bus.jsm.streams.info('PADDOCK_DEADLETTER')).config.max_age, 14 * DAY_MS * NANOS_PER_MS);
  } finally {
    await bus.drain();
  }
});

test('a full stream drops its oldest messages and keeps taking new ones', async (t) => {
  const nats = await natsFor(t);
  const bus = await Bus.connect({ url: nats.url, name: 'streams-full', log, streamLimits: { PADDOCK_INSTANCES: { maxBytes: 64 * 1024, maxMsgSizeBytes: 16 * 1024 } } });
  try {
    const exited = (i: number) => ({ executionId: `e${i}`, brokerId: 'b', cause: 1, detail: 'z'.repeat(8000), startedAtMs: 1, finishedAtMs: 2, artifactsSaved: false });
    for (let i = 0; i < 20; i++) await bus.publish(topics.instanceExited, `e${i}`, exited(i));
    const { state } = await bus.jsm.streams.info('PADDOCK_INSTANCES');
    assert.ok(state.bytes <= 64 * 1024, `${state.bytes} bytes stored`);
    assert.ok(state.first_seq > 1, 'the oldest messages went');
    assert.equal(state.last_seq, 20, 'the newest is there');
  } finally {
    await bus.drain();
  }
});

test('limits nats-server cannot set aside fail the connect with what to change', async (t) => {
  const nats = await natsFor(t);
  const err = await Bus.connect({ url: nats.url, name: 'streams-huge', log, streamLimits: { PADDOCK_OUTPUT: { maxBytes: 2 ** 50 } } }).then(
    async (bus) => {
      await bus.drain();
      return assert.fail('a 1 PiB stream was accepted');
    },
    (e: unknown) => e,
  );
  assert.ok(err instanceof StreamStorageError);
  assert.equal(err.stream, 'PADDOCK_OUTPUT');
  assert.match(err.message, /cannot reserve 1125899906842624 bytes for stream PADDOCK_OUTPUT.*lower PADDOCK_STREAM_OUTPUT_MAX_BYTES/);
});

test('settings that contradict each other are refused before anything connects', () => {
  assert.throws(
    () => compileBusConfig({ streamLimits: { PADDOCK_OUTPUT: { maxBytes: 1024, maxMsgSizeBytes: 4096 } } }),
    (e: unknown) => e instanceof ConfigError && e.setting === 'PADDOCK_STREAM_OUTPUT_MAX_BYTES' && /cannot hold one message of the 4096 bytes/.test(e.message),
  );
  assert.throws(() => compileBusConfig({ maxDeliver: 0 }), (e: unknown) => e instanceof ConfigError && e.setting === 'PADDOCK_BUS_MAX_DELIVER');
  assert.throws(() => compileBusConfig({ retryInitialDelayMs: 5000, retryMaxDelayMs: 1000 }), ConfigError);
  assert.throws(() => busSettingsFromEnv({ PADDOCK_RETENTION_DAYS: 'forever' }), (e: unknown) => e instanceof ConfigError && e.setting === 'PADDOCK_RETENTION_DAYS');
  const config = compileBusConfig();
  assert.ok(Object.isFrozen(config) && Object.isFrozen(config.streams) && Object.isFrozen(config.streams.PADDOCK_OUTPUT));
  assert.equal(config.maxDeliver, 20);
});
