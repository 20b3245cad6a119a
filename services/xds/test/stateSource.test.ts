import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Bus, topics } from '@paddock/bus';
import { startNatsServer } from '@paddock/testkit';
import type { Logger } from '@paddock/telemetry';
import { StateSource } from '../src/state/stateSource.js';
import { eventually, log } from './support.js';

/** A StateSource on a clock the test moves. */
function manualSource(opts: { resolveHost?: (host: string) => Promise<string>; log?: Logger } = {}) {
  let nowMs = 1_000_000;
  let changes = 0;
  const source = new StateSource({ brokerStaleMs: 5_000, instanceSettleMs: 2_000, log, now: () => nowMs, ...opts });
  source.onChange(() => changes++);
  return {
    source,
    advance: (ms: number) => {
      nowMs += ms;
    },
    changes: () => changes,
  };
}

const portsOf = (source: StateSource, id: string) => [...(source.state().instances.get(id)?.ports.values() ?? [])].map((p) => [p.port, p.visibility]);

test('heartbeats on NATS make brokers and their instances; a broker that falls silent goes with them', async () => {
  const nats = await startNatsServer();
  const bus = await Bus.connect({ url: nats.url, name: 'xds-test', log });
  const source = new StateSource({ brokerStaleMs: 800, instanceSettleMs: 2_000, log });
  let changes = 0;
  source.onChange(() => changes++);
  source.start(bus);
  try {
    const beat = (brokerId: string, grpcAddress: string, executionIds: string[]) =>
      bus.publishCore(topics.brokerHeartbeat, brokerId, { brokerId, grpcAddress, relayAddress: '', executionIds, providers: ['docker'], running: executionIds.length, capacity: 8, atMs: Date.now() });
    beat('b1', '127.0.0.1:7001', ['e1', 'e2']);
    beat('b2', '[::1]:7002', ['e3']);
    const both = await eventually('two brokers', () => (source.state().brokers.size === 2 ? source.state() : undefined));
    assert.deepEqual(both.brokers.get('b1')?.grpc, { host: '127.0.0.1', port: 7001 });
    assert.deepEqual(both.brokers.get('b2')?.grpc, { host: '::1', port: 7002 });
    assert.equal(both.brokers.get('b1')?.relay, null, 'a heartbeat with an empty relay address: no edge endpoint');
    assert.deepEqual([...both.instances.values()].map((i) => [i.id, i.brokerId, i.ports.size]).sort(), [
      ['e1', 'b1', 0],
      ['e2', 'b1', 0],
      ['e3', 'b2', 0],
    ]);

    const before = changes;
    const keepB1 = setInterval(() => beat('b1', '127.0.0.1:7001', ['e1']), 100);
    try {
      await eventually('e2 gone from b1', () => (source.state().instances.has('e2') ? undefined : true));
      const changesAfterE2 = changes;
      assert.ok(changesAfterE2 > before);
      // b2 beats no more: it goes after 800 ms, with e3; b1's identical heartbeats change nothing.
      const gone = await eventually('b2 gone', () => (source.state().brokers.has('b2') ? undefined : source.state()), 5_000);
      assert.deepEqual([...gone.brokers.keys()], ['b1']);
      assert.deepEqual([...gone.instances.keys()], ['e1']);
      assert.equal(changes, changesAfterE2 + 1, 'one change: b2 went');
    } finally {
      clearInterval(keepB1);
    }
  } finally {
    await source.stop();
    await bus.drain();
    await nats.stop();
  }
});

test('applyPortEvent: the newest event is the whole state, older ones are ignored, an ended instance stays ended', () => {
  const { source, changes } = manualSource();
  source.applyHeartbeat({ brokerId: 'b1', grpcAddress: '127.0.0.1:7001', executionIds: ['i1'] });
  assert.deepEqual(portsOf(source, 'i1'), []);
  source.applyPortEvent({ instanceId: 'i1', brokerId: 'b1', open: [{ port: 3000 }], seq: 1, instanceEnded: false });
  source.applyPortEvent({ instanceId: 'i1', brokerId: 'b1', open: [{ port: 3000 }, { port: 8080 }], seq: 3, instanceEnded: false });
  source.applyPortEvent({ instanceId: 'i1', brokerId: 'b1', open: [{ port: 5000 }], seq: 2, instanceEnded: false });
  assert.deepEqual(portsOf(source, 'i1'), [
    [3000, 'private'],
    [8080, 'private'],
  ]);
  const afterOpen = changes();
  source.applyPortEvent({ instanceId: 'i1', brokerId: 'b1', open: [{ port: 3000 }, { port: 8080 }], seq: 4, instanceEnded: false });
  assert.equal(changes(), afterOpen, 'the same ports again change nothing');

  assert.equal(source.setPortVisibility('i1', 8080, 'public'), true);
  assert.deepEqual(portsOf(source, 'i1'), [
    [3000, 'private'],
    [8080, 'public'],
  ]);
  assert.equal(source.setPortVisibility('nope', 8080, 'public'), false);

  source.applyPortEvent({ instanceId: 'i1', brokerId: 'b1', open: [], seq: 5, instanceEnded: true });
  assert.equal(source.state().instances.has('i1'), false);
  source.applyPortEvent({ instanceId: 'i1', brokerId: 'b1', open: [{ port: 3000 }], seq: 4, instanceEnded: false });
  source.applyHeartbeat({ brokerId: 'b1', grpcAddress: '127.0.0.1:7001', executionIds: ['i1'] });
  assert.equal(source.state().instances.has('i1'), false, 'a late event or a heartbeat of the ending instance does not bring it back');
});

test('a port event may come before the heartbeat that lists its instance', () => {
  const { source, advance } = manualSource();
  source.applyHeartbeat({ brokerId: 'b1', grpcAddress: '127.0.0.1:7001', executionIds: [] });
  source.applyPortEvent({ instanceId: 'i2', brokerId: 'b1', open: [{ port: 3000 }], seq: 1, instanceEnded: false });
  advance(1_000);
  source.applyHeartbeat({ brokerId: 'b1', grpcAddress: '127.0.0.1:7001', executionIds: [] });
  assert.deepEqual(portsOf(source, 'i2'), [[3000, 'private']], 'within instanceSettleMs the instance stays');
  advance(1_500);
  source.applyHeartbeat({ brokerId: 'b1', grpcAddress: '127.0.0.1:7001', executionIds: [] });
  assert.equal(source.state().instances.has('i2'), false, 'its broker does not hold it: it is gone');
});

test('a broker announced by host name joins once the name resolves; a bad address is left out', async () => {
  const resolved: string[] = [];
  const { source } = manualSource({
    resolveHost: async (host) => {
      resolved.push(host);
      if (host === 'broker-1.internal') return '10.1.2.3';
      throw new Error(`getaddrinfo ENOTFOUND ${host}`);
    },
  });
  source.applyHeartbeat({ brokerId: 'b1', grpcAddress: 'broker-1.internal:7071', executionIds: [] });
  source.applyHeartbeat({ brokerId: 'b2', grpcAddress: 'nowhere.internal:7071', executionIds: [] });
  source.applyHeartbeat({ brokerId: 'b3', grpcAddress: '127.0.0.1:99999', executionIds: [] });
  source.applyHeartbeat({ brokerId: 'b4', grpcAddress: '127.0.0.1', executionIds: [] });
  await eventually('b1 resolved', () => source.state().brokers.get('b1'));
  assert.deepEqual(source.state().brokers.get('b1')?.grpc, { host: '10.1.2.3', port: 7071 });
  assert.deepEqual([...source.state().brokers.keys()], ['b1']);
  source.applyHeartbeat({ brokerId: 'b2', grpcAddress: 'nowhere.internal:7071', executionIds: [] });
  assert.deepEqual(resolved, ['broker-1.internal', 'nowhere.internal'], 'a failed name is not looked up again at once');
});

/** The messages a StateSource logs, by level. */
function recordingLog(): { log: Logger; lines: { level: string; message: string }[] } {
  const lines: { level: string; message: string }[] = [];
  const record = (level: string) => (_fields: unknown, message: string) => void lines.push({ level, message });
  return { log: { info: record('info'), warn: record('warn'), debug: record('debug'), error: record('error') } as unknown as Logger, lines };
}

test("a heartbeat's relay address is the broker's edge endpoint; a broker that announces none is said once, and a move is a change", async () => {
  const recorded = recordingLog();
  const { source, changes } = manualSource({ log: recorded.log, resolveHost: async (host) => (host === 'relay.internal' ? '10.0.0.7' : Promise.reject(new Error(`ENOTFOUND ${host}`))) });
  source.applyHeartbeat({ brokerId: 'b1', grpcAddress: '127.0.0.1:7071', relayAddress: '127.0.0.1:7072', executionIds: [] });
  source.applyHeartbeat({ brokerId: 'b2', grpcAddress: '127.0.0.1:7081', relayAddress: '', executionIds: [] });
  source.applyHeartbeat({ brokerId: 'b2', grpcAddress: '127.0.0.1:7081', relayAddress: '', executionIds: [] });
  source.applyHeartbeat({ brokerId: 'b2', grpcAddress: '127.0.0.1:7081', executionIds: [] });
  assert.deepEqual(source.state().brokers.get('b1')?.relay, { host: '127.0.0.1', port: 7072 });
  assert.equal(source.state().brokers.get('b2')?.relay, null);
  const none = recorded.lines.filter((l) => l.message.includes('announces no HTTP relay address'));
  assert.deepEqual(none.map((l) => [l.level, l.message.split(':')[0]]), [['info', 'broker b2 announces no HTTP relay address']], 'once, however many heartbeats');

  const before = changes();
  source.applyHeartbeat({ brokerId: 'b1', grpcAddress: '127.0.0.1:7071', relayAddress: '127.0.0.1:7073', executionIds: [] });
  assert.deepEqual(source.state().brokers.get('b1')?.relay, { host: '127.0.0.1', port: 7073 });
  assert.equal(changes(), before + 1, 'a relay that moved is a new configuration');
  source.applyHeartbeat({ brokerId: 'b1', grpcAddress: '127.0.0.1:7071', relayAddress: '127.0.0.1:7073', executionIds: [] });
  assert.equal(changes(), before + 1, 'the same heartbeat again changes nothing');

  source.applyHeartbeat({ brokerId: 'b3', grpcAddress: '127.0.0.1:7091', relayAddress: 'relay.internal:7092', executionIds: [] });
  assert.deepEqual(await eventually('b3 resolved', () => source.state().brokers.get('b3')?.relay ?? undefined), { host: '10.0.0.7', port: 7092 });
  source.applyHeartbeat({ brokerId: 'b4', grpcAddress: '127.0.0.1:7101', relayAddress: '127.0.0.1:0', executionIds: [] });
  assert.equal(source.state().brokers.has('b4'), false, 'a relay address no endpoint can have leaves the broker out');
  assert.ok(recorded.lines.some((l) => l.level === 'warn' && l.message.startsWith('broker b4 announced an address no endpoint can have')));
});

test('a broker silent for brokerStaleMs is swept with its instances', () => {
  const { source, advance } = manualSource();
  source.applyHeartbeat({ brokerId: 'b1', grpcAddress: '127.0.0.1:7001', executionIds: ['i1'] });
  source.applyHeartbeat({ brokerId: 'b2', grpcAddress: '127.0.0.1:7002', executionIds: ['i2'] });
  advance(4_000);
  source.applyHeartbeat({ brokerId: 'b2', grpcAddress: '127.0.0.1:7002', executionIds: ['i2'] });
  advance(1_500);
  source.sweep();
  assert.deepEqual([...source.state().brokers.keys()], ['b2']);
  assert.deepEqual([...source.state().instances.keys()], ['i2']);
});
