import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { topics } from '@paddock/bus';
import { createPool, migrate } from '@paddock/db';
import { ExitCause, OutputStream, type ExecutionSpec } from '@paddock/proto';
import { artifactPath } from '../src/artifacts.js';
import { MIGRATIONS_DIR } from '../src/broker.js';
import { containerSpec } from '../src/providers/docker/containerSpec.js';
import { InstanceStore } from '../src/instanceStore.js';
import { startBrokerProcess, type BrokerProcess } from './support/brokerProcess.js';
import { containersOf, waitUntilExited } from './support/containers.js';
import { exitedOf, outputContains, outputOf, storedCount, textOf } from './support/jetstream.js';
import { shellSpec } from './support/specs.js';
import { setUpTestBroker, type TestBroker } from './support/testBroker.js';

let t: TestBroker;

before(async () => {
  t = await setUpTestBroker('reconcile');
});
after(async () => {
  await t?.stop();
});

/** A broker process that runs one job, then dies as told; the job's container is left behind. */
async function runThenDie(
  spec: ExecutionSpec,
  waitFor: string,
  signal: NodeJS.Signals,
): Promise<{ id: string; first: BrokerProcess; end: { code: number | null; signal: NodeJS.Signals | null } }> {
  const id = randomUUID();
  const first = await startBrokerProcess(t.env, t.bus, t.brokerId);
  try {
    await first.launch({ executionId: id, ownerId: 'carol', spec });
    await outputContains(t.bus, id, waitFor);
  } catch (err) {
    await first.kill('SIGKILL');
    throw new Error(`${(err as Error).message}\nbroker log:\n${first.log()}`, { cause: err });
  }
  const end = await first.kill(signal);
  return { id, first, end };
}

test('a broker killed mid-job: the next one adopts the running container, resumes its output without loss or repeats, and finishes it', async () => {
  const { id } = await runThenDie(shellSpec('echo one; sleep 3; echo two; echo kept > kept.txt; exit 4'), 'one', 'SIGKILL');
  const [left] = await containersOf(t.docker, t.brokerId, id);
  assert.equal(left?.State, 'running', 'a crashed broker leaves its containers running');

  const next = await t.start();
  const exited = await exitedOf(t.bus, id);
  assert.equal(exited.cause, ExitCause.EXIT_CAUSE_EXITED);
  assert.equal(exited.exitCode, 4);
  assert.equal(exited.brokerId, t.brokerId);
  assert.equal(exited.artifactsSaved, true);
  const chunks = await outputOf(t.bus, id);
  assert.equal(textOf(chunks, OutputStream.OUTPUT_STREAM_STDOUT), 'one\ntwo\n');
  assert.equal(chunks.filter((c) => c.eof).length, 1);
  assert.deepEqual(await containersOf(t.docker, t.brokerId, id), []);
  assert.equal(execFileSync('unzip', ['-p', artifactPath(t.config.artifactsDir, id), 'kept.txt']).toString(), 'kept\n');
  await next.stop();
});

/** Every line of `line-0` … `line-<lines - 1>` once and in order, or what is missing and repeated. */
function assertAllLinesOnce(text: string, lines: number): void {
  const got = text.split('\n').filter((l) => l !== '');
  const seen = new Set<string>();
  const repeated = got.filter((l) => (seen.has(l) ? true : (seen.add(l), false)));
  const missing = Array.from({ length: lines }, (_, i) => `line-${i}`).filter((l) => !seen.has(l));
  assert.deepEqual({ missing: missing.slice(0, 20), repeated: repeated.slice(0, 20) }, { missing: [], repeated: [] });
  assert.ok(got.every((l, i) => l === `line-${i}`), 'in order');
}

test('output written steadily across a crash reaches the bus complete: every line once, in order', async () => {
  const lines = 200;
  const { id } = await runThenDie(
    shellSpec(`i=0; while [ $i -lt ${lines} ]; do echo line-$i; i=$((i+1)); sleep 0.01; done`),
    'line-40\n',
    'SIGKILL',
  );
  const next = await t.start();
  assert.equal((await exitedOf(t.bus, id)).exitCode, 0);
  assertAllLinesOnce(textOf(await outputOf(t.bus, id), OutputStream.OUTPUT_STREAM_STDOUT), lines);
  await next.stop();
});

test(
  'output written in bursts across a crash reaches the bus complete: every line once, in order',
  async () => {
    const lines = 60_000;
    const { id } = await runThenDie(
      shellSpec(`i=0; while [ $i -lt ${lines} ]; do echo line-$i; i=$((i+1)); [ $((i % 2000)) -eq 0 ] && sleep 0.05; done`),
      'line-10000\n',
      'SIGKILL',
    );
    const next = await t.start();
    try {
      assert.equal((await exitedOf(t.bus, id)).exitCode, 0);
      assertAllLinesOnce(textOf(await outputOf(t.bus, id), OutputStream.OUTPUT_STREAM_STDOUT), lines);
    } finally {
      await next.stop();
    }
  },
);

test('a job that ended while no broker ran is finished by the next one, with the output it wrote meanwhile', async () => {
  const { id } = await runThenDie(shellSpec('echo early; sleep 1; echo late >&2; exit 7'), 'early', 'SIGTERM');
  assert.equal((await containersOf(t.docker, t.brokerId, id)).length, 1, 'a stopped broker leaves its containers to the next');
  await waitUntilExited(t.docker, t.brokerId, id);

  const next = await t.start();
  const exited = await exitedOf(t.bus, id);
  assert.equal(exited.cause, ExitCause.EXIT_CAUSE_EXITED);
  assert.equal(exited.exitCode, 7);
  const chunks = await outputOf(t.bus, id);
  assert.equal(textOf(chunks, OutputStream.OUTPUT_STREAM_STDOUT), 'early\n');
  assert.equal(textOf(chunks, OutputStream.OUTPUT_STREAM_STDERR), 'late\n');
  assert.deepEqual(await containersOf(t.docker, t.brokerId, id), []);
  await next.stop();
});

test('the timeout still applies to an adopted job', async () => {
  const { id } = await runThenDie(shellSpec('echo waiting; sleep 60', { timeoutMs: 3_000 }), 'waiting', 'SIGKILL');
  const next = await t.start();
  const exited = await exitedOf(t.bus, id);
  assert.equal(exited.cause, ExitCause.EXIT_CAUSE_TIMED_OUT);
  assert.ok(exited.finishedAtMs - exited.startedAtMs < 15_000, `ran ${exited.finishedAtMs - exited.startedAtMs} ms`);
  assert.deepEqual(await containersOf(t.docker, t.brokerId, id), []);
  await next.stop();
});

let sigtermEnd: { code: number | null; signal: NodeJS.Signals | null } | undefined;

test('a broker stopped with SIGTERM leaves its running job to the next broker, which can cancel it', async () => {
  const { id, end } = await runThenDie(shellSpec('echo up; sleep 60'), 'up', 'SIGTERM');
  sigtermEnd = end;
  const [left] = await containersOf(t.docker, t.brokerId, id);
  assert.equal(left?.State, 'running');
  const next = await t.start();
  assert.equal(await next.instances.cancel(id, 1000), true);
  const exited = await exitedOf(t.bus, id);
  assert.equal(exited.cause, ExitCause.EXIT_CAUSE_CANCELLED);
  assert.deepEqual(await containersOf(t.docker, t.brokerId, id), []);
  await next.stop();
});

test(
  'SIGTERM stops the broker cleanly: exit status 0',
  () => {
    assert.deepEqual(sigtermEnd, { code: 0, signal: null });
  },
);

test('a job whose container vanished while its broker was down is reported lost', async () => {
  const { id } = await runThenDie(shellSpec('echo here; sleep 60'), 'here', 'SIGKILL');
  for (const c of await containersOf(t.docker, t.brokerId, id)) await t.docker.getContainer(c.Id).remove({ force: true });

  const next = await t.start();
  const exited = await exitedOf(t.bus, id);
  assert.equal(exited.cause, ExitCause.EXIT_CAUSE_LOST);
  assert.equal(exited.exitCode, undefined);
  assert.match(exited.detail, /disappeared/);
  const chunks = await outputOf(t.bus, id);
  assert.equal(textOf(chunks, OutputStream.OUTPUT_STREAM_STDOUT), 'here\n');
  assert.match(textOf(chunks, OutputStream.OUTPUT_STREAM_SYSTEM), /\[paddock\] the container disappeared while its broker was down/);
  await next.stop();
});

test('launches the broker died in before their jobs started are forgotten, not failed, and run once when launched again', async () => {
  // The states the broker leaves when it dies mid-launch: one execution with its row claimed and its
  // container created (labelled, recorded) but never started; another with only its row claimed.
  const created = randomUUID();
  const claimed = randomUUID();
  const pool = createPool(t.services.databaseUrl);
  const store = new InstanceStore(pool);
  try {
    await migrate(pool, 'broker', MIGRATIONS_DIR);
    await store.claim(created, t.brokerId, 'dave');
    await store.claim(claimed, t.brokerId, 'dave');
    const container = await t.docker.createContainer(
      containerSpec({ executionId: created, ownerId: 'dave', brokerId: t.brokerId, spec: shellSpec('echo never'), image: t.config.defaultImage, imageIsOurs: true, pidsLimit: 512, deadlineMs: Date.now() + 30_000 }),
    );
    await store.containerCreated(created, container.id);

    const next = await t.start();
    try {
      // The start's reconciliation is over when start() resolves.
      for (const id of [created, claimed]) {
        assert.deepEqual(await containersOf(t.docker, t.brokerId, id), [], 'its container is removed');
        assert.equal(await store.get(id), null, 'its row is removed');
        assert.equal(await storedCount(t.bus, topics.instanceExited, id), 0, 'no end is published: its scheduler launches it again');
        assert.equal(next.instances.executionIds.includes(id), false, 'not held: its scheduler sees it is not here');
      }
      // Launched again on the same broker, each runs, once.
      for (const id of [created, claimed]) {
        await next.instances.launch({ executionId: id, ownerId: 'dave', spec: shellSpec(`echo ran ${id}`) });
        const exited = await exitedOf(t.bus, id);
        assert.equal(exited.cause, ExitCause.EXIT_CAUSE_EXITED);
        assert.equal(textOf(await outputOf(t.bus, id), OutputStream.OUTPUT_STREAM_STDOUT), `ran ${id}\n`);
        assert.equal(await storedCount(t.bus, topics.instanceStarted, id), 1);
      }
    } finally {
      await next.stop();
    }
  } finally {
    await pool.end();
  }
});

test('nothing labelled with this broker id is left behind', async () => {
  assert.deepEqual(await containersOf(t.docker, t.brokerId), []);
});
