import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createLogger } from '@paddock/telemetry';
import { PortDetector } from '../src/portDetector.js';
import { listenIn, RecordingSink, startInstance, stopListening, waitFor } from './support.js';

const log = createLogger('portdetect-test', 'warn');
const options = { procDir: '/proc', intervalMs: 50, verifyMs: 5_000, busyMs: 100 };
let instance: Awaited<ReturnType<typeof startInstance>>;

before(async () => {
  instance = await startInstance();
});
after(async () => {
  await instance.remove();
});

test('ports opened and closed inside a no-network instance, IPv4 and IPv6, loopback and any address', async () => {
  const sink = new RecordingSink();
  const detector = new PortDetector(sink, log, options);
  await detector.add({ id: instance.id, brokerId: 'b1', containerId: instance.container.id, pid: instance.pid });
  detector.start();
  try {
    assert.equal(sink.of(instance.id).length, 0, 'an instance with nothing listening says nothing');

    const listenedAtMs = await listenIn(instance.container, '127.0.0.1', 8000);
    const opened = await waitFor('8000 opened', () => sink.of(instance.id).find((e) => e.change === 'opened' && e.event.port === 8000));
    assert.deepEqual(opened.event.open.map((p) => [p.port, p.address, p.family]), [[8000, '127.0.0.1', 4]]);
    assert.equal(opened.event.brokerId, 'b1');
    assert.equal(opened.event.seq, 1);
    assert.ok(opened.event.atMs - listenedAtMs < 1_000, `seen ${opened.event.atMs - listenedAtMs} ms after listen()`);

    await listenIn(instance.container, '::', 9000);
    const second = await waitFor('9000 opened', () => sink.of(instance.id).find((e) => e.change === 'opened' && e.event.port === 9000));
    assert.deepEqual(second.event.open.map((p) => [p.port, p.address, p.family]), [[8000, '127.0.0.1', 4], [9000, '::', 6]]);
    assert.equal(second.event.seq, 2);

    await stopListening(instance.container, 8000);
    const closed = await waitFor('8000 closed', () => sink.of(instance.id).find((e) => e.change === 'closed' && e.event.port === 8000));
    assert.deepEqual(closed.event.open.map((p) => p.port), [9000]);
    assert.equal(closed.event.seq, 3);
    assert.equal(closed.event.instanceEnded, false);

    await detector.remove(instance.id);
    const ended = sink.of(instance.id).at(-1)!;
    assert.deepEqual([ended.change, ended.event.port, ended.event.open.length, ended.event.instanceEnded, ended.event.seq], ['closed', 9000, 0, true, 4]);
  } finally {
    await detector.stop();
    await stopListening(instance.container, 9000).catch(() => {});
  }
});

test('a detector that starts again publishes only what changed while it was away, continuing the sequence', async () => {
  const sink = new RecordingSink();
  const running = { id: instance.id, brokerId: 'b1', containerId: instance.container.id, pid: instance.pid };
  const first = new PortDetector(sink, log, options);
  await listenIn(instance.container, '0.0.0.0', 7000);
  await first.add(running);
  await waitFor('7000 opened', () => sink.of(instance.id).find((e) => e.event.port === 7000));
  const before = sink.of(instance.id).length;
  await first.stop();

  // Nothing changed: a new detector reads the last event back and has nothing to say.
  const second = new PortDetector(sink, log, options);
  await second.add(running);
  assert.equal(sink.of(instance.id).length, before, 'no event repeated');
  await second.stop();

  // A change while no detector ran: the next one reports it once, with the next sequence number.
  await listenIn(instance.container, '0.0.0.0', 7001);
  await stopListening(instance.container, 7000);
  const third = new PortDetector(sink, log, options);
  await third.add(running);
  const last = sink.of(instance.id).slice(before);
  assert.deepEqual(last.map((e) => [e.change, e.event.port, e.event.seq]), [['opened', 7001, before + 1], ['closed', 7000, before + 2]]);
  assert.deepEqual(last.at(-1)!.event.open.map((p) => p.port), [7001]);
  await third.stop();
  await stopListening(instance.container, 7001);
});

test('a listener replaced by another within one interval is found by the periodic full read', async () => {
  const sink = new RecordingSink();
  // Counts never differ between ticks here, so only verification can see the swap.
  const detector = new PortDetector(sink, log, { ...options, intervalMs: 60_000, verifyMs: 300 });
  const running = { id: instance.id, brokerId: 'b1', containerId: instance.container.id, pid: instance.pid };
  await listenIn(instance.container, '0.0.0.0', 6000);
  await detector.add(running);
  const start = sink.of(instance.id).length;
  await stopListening(instance.container, 6000);
  await listenIn(instance.container, '0.0.0.0', 6001);
  const timer = setInterval(() => detector.tick(), 50);
  try {
    await waitFor('6001 opened by verification', () => sink.of(instance.id).slice(start).find((e) => e.event.port === 6001 && e.change === 'opened'));
    await waitFor('6000 closed by verification', () => sink.of(instance.id).slice(start).find((e) => e.event.port === 6000 && e.change === 'closed'));
  } finally {
    clearInterval(timer);
    await detector.stop();
    await stopListening(instance.container, 6001);
  }
});

test('under gVisor the sandbox shares the instance namespace: its listeners are seen the same way', async (t) => {
  const gvisor = await startInstance({ runtime: 'runsc' }).catch((err: Error) => err);
  if (gvisor instanceof Error) {
    t.skip(`runsc is not registered with this Docker engine: ${gvisor.message}`);
    return;
  }
  const sink = new RecordingSink();
  const detector = new PortDetector(sink, log, options);
  detector.start();
  try {
    await detector.add({ id: gvisor.id, brokerId: 'b1', containerId: gvisor.container.id, pid: gvisor.pid });
    await listenIn(gvisor.container, '127.0.0.1', 8080);
    const opened = await waitFor('8080 opened under gVisor', () => sink.of(gvisor.id).find((e) => e.change === 'opened' && e.event.port === 8080));
    assert.equal(opened.event.open[0]?.address, '127.0.0.1');
  } finally {
    await detector.stop();
    await gvisor.remove();
  }
});
