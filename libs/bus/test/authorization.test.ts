import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { AckPolicy, connect, ErrorCode, NatsError, nkeyAuthenticator, type NatsConnection } from 'nats';
import { createUser } from 'nkeys.js';
import { pino } from 'pino';
import { PermanentError } from '@paddock/errors';
import { ExecutionState, ExitCause, OutputStream } from '@paddock/proto';
import { startNatsServer } from '@paddock/testkit';
import {
  Bus,
  inboxPrefix,
  NatsAuthError,
  natsAuth,
  NatsPermissionError,
  streamOf,
  topics,
  type Delivery,
  type NatsIdentity,
  type ServiceName,
  type Topic,
} from '../src/index.js';

type Server = Awaited<ReturnType<typeof startNatsServer<ServiceName>>>;
let nats: Server;

before(async () => {
  nats = await startNatsServer({ auth: natsAuth });
});
after(async () => {
  await nats.stop();
});

/** A logger that keeps what the bus logs at warn and above, to find the permission errors it reports. */
function recordingLog() {
  const lines: Array<{ level: number; msg: string; subject?: string; operation?: string; natsUser?: string }> = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const refusals = () => lines.filter((l) => l.msg.startsWith('nats-server refused'));
  return { log, lines, refusals };
}

const quiet = pino({ level: process.env['BUS_TEST_LOG'] ?? 'silent' });
let serial = 0;
/** A fresh execution id per use: the streams are shared by the tests of this file. */
const freshId = (what: string) => `${what}-${process.pid}-${++serial}`;

function busAs(user: ServiceName | 'admin', log = quiet): Promise<Bus> {
  const identity: NatsIdentity = user === 'admin' ? nats.admin : nats.identityFor(user);
  return Bus.connect({ url: nats.url, name: `test-${user}`, log, identity });
}

/** A bare nats.js connection as `who`, for what the bus does not do on purpose (subscribing to any subject). */
function rawAs(who: NatsIdentity): Promise<NatsConnection> {
  return connect({ servers: nats.url, authenticator: nkeyAuthenticator(new TextEncoder().encode(who.seed)), inboxPrefix: inboxPrefix(who.user), timeout: 3000 });
}

/** Resolves with the error nats-server answers a subscription with; fails if none comes within 5 s. */
function refusedSubscription(nc: NatsConnection, subject: string): Promise<NatsError> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the subscription to ${subject} was not refused within 5 s`)), 5000);
    nc.subscribe(subject, {
      callback: (err) => {
        if (!err) return reject(new Error(`a message arrived on ${subject}, which should be refused`));
        clearTimeout(timer);
        resolve(err);
      },
    });
  });
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  for (const started = Date.now(); !check(); ) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const state = (executionId: string, version: number, s = ExecutionState.EXECUTION_STATE_QUEUED) => ({
  executionId,
  ownerId: 'u1',
  state: s,
  version,
  atMs: Date.now(),
  reason: '',
  brokerId: 'b1',
  startedAtMs: 0,
  finishedAtMs: 0,
});

test('a connection without credentials is refused, by nats.js and by the bus with a message that says what to set', async () => {
  await assert.rejects(
    connect({ servers: nats.url, timeout: 3000 }),
    (err: unknown) => err instanceof NatsError && err.code === ErrorCode.AuthorizationViolation,
  );
  await assert.rejects(Bus.connect({ url: nats.url, name: 'nobody', log: quiet }), (err: unknown) => {
    assert.ok(err instanceof NatsAuthError, String(err));
    assert.equal(err.user, undefined);
    assert.match(err.message, /NATS_NKEY_FILE/);
    return true;
  });
});

test('a connection with an nkey the server does not list is refused', async () => {
  const stranger = createUser();
  const seed = new TextDecoder().decode(stranger.getSeed());
  await assert.rejects(
    connect({ servers: nats.url, authenticator: nkeyAuthenticator(new TextEncoder().encode(seed)), timeout: 3000 }),
    (err: unknown) => err instanceof NatsError && err.code === ErrorCode.AuthorizationViolation,
  );
  // A real service name with a key of its own making: the name does not open the door, the key does.
  await assert.rejects(Bus.connect({ url: nats.url, name: 'impostor', log: quiet, identity: { user: 'scheduler', seed } }), (err: unknown) => {
    assert.ok(err instanceof NatsAuthError, String(err));
    assert.equal(err.user, 'scheduler');
    assert.equal(err.publicKey, stranger.getPublicKey());
    return true;
  });
});

test('a service connects with the seed file and user its settings name, as main.ts passes them', async () => {
  const broker = nats.identityFor('broker');
  const bus = await Bus.connect({ url: nats.url, name: 'from-env', log: quiet, nkeyFile: broker.file, natsUser: 'broker' });
  try {
    assert.equal(bus.user, 'broker');
    const id = freshId('env');
    await bus.publish(topics.output, id, { stream: OutputStream.OUTPUT_STREAM_STDOUT, data: Buffer.from([1]), atMs: 1, eof: false, stdoutOffset: 0, stderrOffset: 0 });
    assert.equal((await bus.lastStored(topics.output, id))?.message.data.length, 1);
  } finally {
    await bus.drain();
  }
});

test('each service can do exactly its real flow, and nats-server reports no refusal along the way', async () => {
  const { log, refusals } = recordingLog();
  const [gateway, scheduler, broker, xds, portdetect, admin] = await Promise.all([
    busAs('gateway', log),
    busAs('scheduler', log),
    busAs('broker', log),
    busAs('xds', log),
    busAs('portdetect', log),
    busAs('admin'),
  ]);
  const subs: Array<{ stop(): Promise<void> }> = [];
  try {
    const id = freshId('flow');
    const poison = freshId('poison');
    const seen = { requested: [] as string[], cancel: [] as string[], started: [] as string[], exited: [] as string[], states: [] as number[], live: [] as number[] };
    const heartbeats = { scheduler: 0, gateway: 0, xds: 0, service: 0 };
    const ports = { gateway: [] as string[], xds: [] as string[] };

    // The scheduler: consumes requests and cancels, and what brokers say of their instances.
    subs.push(
      await scheduler.consume(topics.executionRequested, { durable: 'scheduler-requested' }, async ({ id: got }) => {
        if (got === poison) throw new PermanentError('the request names an image that does not exist');
        seen.requested.push(got);
      }),
      await scheduler.consume(topics.executionCancel, { durable: 'scheduler-cancel' }, async ({ id: got }) => void seen.cancel.push(got)),
      await scheduler.consume(topics.instanceStarted, { durable: 'scheduler-instance-started' }, async ({ id: got }) => void seen.started.push(got)),
      await scheduler.consume(topics.instanceExited, { durable: 'scheduler-instance-exited' }, async ({ id: got }) => void seen.exited.push(got)),
      scheduler.subscribe(topics.brokerHeartbeat, '*', () => void heartbeats.scheduler++),
    );
    // The gateway: keeps its table from the states, follows one execution's state live, watches heartbeats.
    subs.push(
      await gateway.consume(topics.executionState, { durable: 'gateway-state' }, async (d: Delivery<{ version: number }>) => {
        if (d.id === id) seen.states.push(d.message.version);
      }),
      gateway.subscribe(topics.executionState, id, ({ message }) => void seen.live.push(message.version)),
      gateway.subscribe(topics.brokerHeartbeat, '*', () => void heartbeats.gateway++),
      gateway.subscribe(topics.serviceHeartbeat, '*', () => void heartbeats.service++),
    );
    // xds: finds brokers by their heartbeats, and routes by the ports and their visibility.
    subs.push(xds.subscribe(topics.brokerHeartbeat, '*', () => void heartbeats.xds++));
    for (const topic of [topics.portOpened, topics.portClosed, topics.portVisibility] as Topic<unknown>[]) {
      subs.push(gateway.subscribe(topic, id, () => void ports.gateway.push(topic.name)), xds.subscribe(topic, '*', ({ id: got }) => void (got === id && ports.xds.push(topic.name))));
    }
    await Promise.all([gateway.nc.flush(), scheduler.nc.flush(), xds.nc.flush()]);

    await gateway.publish(topics.executionRequested, id, { executionId: id, ownerId: 'u1', spec: undefined, requestedAtMs: Date.now() }, { msgId: `${id}.requested` });
    await gateway.publish(topics.executionRequested, poison, { executionId: poison, ownerId: 'u1', spec: undefined, requestedAtMs: Date.now() });
    await gateway.publish(topics.executionCancel, id, { executionId: id, requestedBy: 'u1', requestedAtMs: Date.now() });
    await scheduler.publish(topics.executionState, id, state(id, 1), { msgId: `${id}.v1` });
    scheduler.publishCore(topics.serviceHeartbeat, 'scheduler', { service: 'scheduler', instanceId: '1', atMs: Date.now() });
    xds.publishCore(topics.serviceHeartbeat, 'xds', { service: 'xds', instanceId: '1', atMs: Date.now() });

    await broker.publish(topics.instanceStarted, id, { executionId: id, brokerId: 'b1', containerId: 'c1', startedAtMs: 1 });
    const chunk = (data: string, eof: boolean) => ({ stream: OutputStream.OUTPUT_STREAM_STDOUT, data: Buffer.from(data), atMs: 1, eof, stdoutOffset: 0, stderrOffset: 0 });
    await broker.publish(topics.output, id, chunk('hello ', false));
    await broker.publish(topics.output, id, chunk('world', true));
    // A broker that adopts an instance resumes after the last chunk stored.
    assert.equal((await broker.lastStored(topics.output, id))?.message.eof, true);
    await broker.publish(topics.instanceExited, id, { executionId: id, brokerId: 'b1', cause: ExitCause.EXIT_CAUSE_EXITED, exitCode: 0, detail: '', startedAtMs: 1, finishedAtMs: 2, artifactsSaved: false });
    broker.publishCore(topics.brokerHeartbeat, 'b1', { brokerId: 'b1', grpcAddress: '127.0.0.1:1', relayAddress: '', providers: ['docker'], running: 0, capacity: 1, atMs: Date.now(), executionIds: [] });
    assert.equal((await scheduler.lastStored(topics.instanceExited, id))?.message.cause, ExitCause.EXIT_CAUSE_EXITED);

    // portdetect: picks up where the last event left off, then publishes what changed.
    assert.equal(await portdetect.lastStored(topics.portOpened, id), null);
    const listener = { port: 8000, address: '0.0.0.0', family: 4, openedAtMs: 1 };
    await portdetect.publish(topics.portOpened, id, { instanceId: id, brokerId: 'b1', port: 8000, open: [listener], seq: 1, atMs: 1, instanceEnded: false });
    await portdetect.publish(topics.portClosed, id, { instanceId: id, brokerId: 'b1', port: 8000, open: [], seq: 2, atMs: 2, instanceEnded: false });
    assert.equal((await portdetect.lastStored(topics.portClosed, id))?.message.seq, 2);
    // The gateway sets a port's visibility; it and xds read the ports' last state.
    await gateway.publish(topics.portVisibility, id, { instanceId: id, visibility: { 8000: 'public' }, atMs: 3 });
    assert.equal((await gateway.lastStored(topics.portOpened, id))?.message.port, 8000);
    assert.deepEqual((await xds.lastStored(topics.portVisibility, id))?.message.visibility, { 8000: 'public' });

    // The gateway reads a log as it serves one: the last chunk stored, then an ordered consumer over the id.
    assert.equal((await gateway.lastStored(topics.output, id))?.seq !== undefined, true);
    const reader = await gateway.js.consumers.get(streamOf(topics.output), { filterSubjects: topics.output.subject(id) });
    const messages = await reader.consume();
    let text = '';
    for await (const m of messages) {
      const c = topics.output.type.decode(m.data);
      text += new TextDecoder().decode(c.data);
      if (c.eof) break;
    }
    messages.stop();
    assert.equal(text, 'hello world');

    await waitFor('every consumer and subscriber to get its messages', () =>
      seen.requested.includes(id) && seen.cancel.includes(id) && seen.started.includes(id) && seen.exited.includes(id) &&
      seen.states.includes(1) && seen.live.includes(1) && heartbeats.scheduler > 0 && heartbeats.gateway > 0 && heartbeats.xds > 0 && heartbeats.service >= 2 &&
      ports.gateway.length === 3 && ports.xds.length === 3,
    );
    // The scheduler's dead letter for the poison request is stored, under its own durable's subject.
    await waitFor('the dead letter', () => scheduler.stats().consumers['scheduler-requested']?.deadLetters === 1);
    const dead = await admin.deadLetters('scheduler-requested');
    assert.ok(dead.some((d) => d.originalSubject === topics.executionRequested.subject(poison)), 'the poison request is among the dead letters');
    assert.deepEqual(refusals(), []);
  } finally {
    await Promise.all(subs.map((s) => s.stop()));
    await Promise.all([gateway, scheduler, broker, xds, portdetect, admin].map((b) => b.drain()));
  }
});

test('a service that publishes a topic it does not own is refused at once with a NatsPermissionError, and the refusal is logged', async () => {
  const { log, refusals } = recordingLog();
  const broker = await busAs('broker', log);
  const gateway = await busAs('gateway', log);
  try {
    const id = freshId('forged');
    const started = Date.now();
    await assert.rejects(broker.publish(topics.executionRequested, id, { executionId: id, ownerId: 'u1', spec: undefined, requestedAtMs: 1 }, { retryForMs: 10_000 }), (err: unknown) => {
      assert.ok(err instanceof NatsPermissionError, String(err));
      assert.ok(err instanceof PermanentError, 'a PermanentError: retrying cannot help');
      assert.equal(err.user, 'broker');
      assert.equal(err.subject, topics.executionRequested.subject(id));
      return true;
    });
    // Not retried for 10 s, nor left to time out.
    assert.ok(Date.now() - started < 3000, `refused in ${Date.now() - started} ms`);
    await assert.rejects(gateway.publish(topics.executionState, id, state(id, 1, ExecutionState.EXECUTION_STATE_COMPLETED)), NatsPermissionError);
    await assert.rejects(gateway.publish(topics.output, id, { stream: OutputStream.OUTPUT_STREAM_STDOUT, data: Buffer.from([1]), atMs: 1, eof: true, stdoutOffset: 0, stderrOffset: 0 }), NatsPermissionError);

    // Fire and forget has no answer to fail: the refusal shows in the log, with the subject.
    gateway.publishCore(topics.serviceHeartbeat, 'scheduler', { service: 'scheduler', instanceId: 'fake', atMs: Date.now() });
    await waitFor('the refused heartbeat in the log', () => refusals().some((r) => r.subject === topics.serviceHeartbeat.subject('scheduler')));
    const logged = refusals().find((r) => r.subject === topics.serviceHeartbeat.subject('scheduler'))!;
    assert.equal(logged.natsUser, 'gateway');
    assert.equal(logged.level, 50);

    // Nothing forged was stored.
    const admin = await busAs('admin');
    try {
      assert.equal(await admin.lastStored(topics.executionRequested, id), null);
      assert.equal(await admin.lastStored(topics.executionState, id), null);
    } finally {
      await admin.drain();
    }
  } finally {
    await Promise.all([broker.drain(), gateway.drain()]);
  }
});

test('a service that subscribes to or consumes what it does not own is refused', async () => {
  const broker = await rawAs(nats.identityFor('broker'));
  const gateway = await busAs('gateway');
  const scheduler = await busAs('scheduler');
  try {
    for (const subject of [topics.executionRequested.subject('*'), topics.executionState.subject('*'), 'paddock.v1.>', '>']) {
      const err = await refusedSubscription(broker, subject);
      assert.equal(err.code, ErrorCode.PermissionsViolation, subject);
    }
    // A durable of its own on a topic it does not consume, or another service's durable.
    await assert.rejects(scheduler.consume(topics.output, { durable: 'scheduler-output' }, async () => {}), (err: unknown) => {
      assert.ok(err instanceof NatsPermissionError, String(err));
      assert.equal(err.user, 'scheduler');
      return true;
    });
    await assert.rejects(gateway.consume(topics.executionRequested, { durable: 'scheduler-requested' }, async () => {}), NatsPermissionError);
    // Its own durable, made to read another topic of the same stream.
    await assert.rejects(
      gateway.jsm.consumers.add(streamOf(topics.executionState), { durable_name: 'gateway-state', filter_subject: topics.executionRequested.subject('*'), ack_policy: AckPolicy.Explicit }),
      (err: unknown) => err instanceof NatsError && err.code === ErrorCode.PermissionsViolation,
    );
    // An ordered consumer over another service's topic, and a raw read of a stream it does not read.
    await assert.rejects(
      scheduler.jsm.consumers.add(streamOf(topics.output), { name: 'peek', filter_subject: topics.output.subject('x'), ack_policy: AckPolicy.None }),
      (err: unknown) => err instanceof NatsError && err.code === ErrorCode.PermissionsViolation,
    );
    await assert.rejects(scheduler.lastStored(topics.output, 'x'), NatsPermissionError);
  } finally {
    await broker.close();
    await Promise.all([gateway.drain(), scheduler.drain()]);
  }
});

test("a service cannot subscribe to another's inbox, so it never sees the other's replies", async () => {
  const broker = await rawAs(nats.identityFor('broker'));
  const gateway = await busAs('gateway');
  try {
    const err = await refusedSubscription(broker, `${inboxPrefix('gateway')}.>`);
    assert.equal(err.code, ErrorCode.PermissionsViolation);
    // The default inbox prefix is nobody's: a service that forgot its prefix gets no replies at all.
    assert.equal((await refusedSubscription(broker, '_INBOX.>')).code, ErrorCode.PermissionsViolation);
    // The gateway's own replies still reach it.
    const id = freshId('inbox');
    const ack = await gateway.publish(topics.executionCancel, id, { executionId: id, requestedBy: 'u1', requestedAtMs: 1 });
    assert.equal(ack.stream, 'PADDOCK_EXECUTIONS');
  } finally {
    await broker.close();
    await gateway.drain();
  }
});

test('a bus whose key nats-server stops listing says so in the log, keeps trying, and works again once it is listed', async (t) => {
  const own = await startNatsServer({ auth: natsAuth });
  t.after(() => own.stop());
  const { log, lines } = recordingLog();
  const gateway = own.identityFor('gateway');
  const bus = await Bus.connect({ url: own.url, name: 'relisted', log, identity: gateway });
  try {
    const listed = await readFile(own.configFile, 'utf8');
    await writeFile(own.configFile, listed.replace(gateway.publicKey, createUser().getPublicKey()));
    await own.restart();
    // Refused again and again: nats.js would give up for good after the second refusal in a row.
    const refusedKey = () => lines.filter((l) => l.level === 50 && l.msg.startsWith(`nats-server at ${own.url} refused user gateway (key ${gateway.publicKey})`));
    await waitFor('the refused key in the log, three times', () => refusedKey().length >= 3);
    await writeFile(own.configFile, listed);
    await own.restart();
    const id = freshId('relisted');
    const ack = await bus.publish(topics.executionCancel, id, { executionId: id, requestedBy: 'u1', requestedAtMs: 1 }, { msgId: id, retryForMs: 30_000 });
    assert.equal(ack.stream, 'PADDOCK_EXECUTIONS');
  } finally {
    await bus.drain();
  }
});

test('admin may do anything: operators and tests look behind the services', async () => {
  const admin = await rawAs(nats.admin);
  try {
    const got: string[] = [];
    const sub = admin.subscribe('>', { callback: (_err, m) => void got.push(m.subject) });
    await admin.flush();
    admin.publish(topics.brokerHeartbeat.subject('admin-probe'));
    await waitFor('admin to see its own message', () => got.includes(topics.brokerHeartbeat.subject('admin-probe')));
    sub.unsubscribe();
  } finally {
    await admin.close();
  }
});
