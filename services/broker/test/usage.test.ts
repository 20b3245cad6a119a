// What billing receives from the broker: each instance's compute usage (CPU from its cgroup, memory
// integrated over time, wall time), as totals while it runs and once, final, when it has ended; across a
// broker crash and a NATS outage.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { topics } from '@paddock/bus';
import { ContainerRuntime, ExecutionKind, type ComputeUsage, type ExecutionSpec } from '@paddock/proto';
import type Docker from 'dockerode';
import type { StartedBroker } from '../src/broker.js';
import { labels } from '../src/providers/docker/labels.js';
import { cgroupLayout, folderOf } from '../src/usage/cgroupLayout.js';
import { ExecutionCgroup, executionCgroupParent } from '../src/usage/executionCgroup.js';
import { startBrokerProcess } from './support/brokerProcess.js';
import { waitUntilExited } from './support/containers.js';
import { exitedOf, readStored } from './support/jetstream.js';
import { shellSpec } from './support/specs.js';
import { setUpTestBroker, type TestBroker } from './support/testBroker.js';

const INTERVAL_MS = 500;
const MEMORY_LIMIT_MIB = 256;

let t: TestBroker;
let broker: StartedBroker | null = null;

before(async () => {
  t = await setUpTestBroker('usage', { PADDOCK_USAGE_INTERVAL_MS: String(INTERVAL_MS) });
});
after(async () => {
  await broker?.stop();
  await t?.stop();
});

async function inProcessBroker(): Promise<StartedBroker> {
  broker ??= await t.start();
  return broker;
}

function python(script: string, spec: Partial<ExecutionSpec> = {}): ExecutionSpec {
  return shellSpec('', { kind: ExecutionKind.EXECUTION_KIND_PYTHON, script, memoryBytes: MEMORY_LIMIT_MIB * 1024 * 1024, ...spec });
}

/** Burns `seconds` of CPU time (its own process time), then exits. */
function burn(seconds: number, spec: Partial<ExecutionSpec> = {}): ExecutionSpec {
  return python(`import time\nt = time.process_time()\nwhile time.process_time() - t < ${seconds}: pass\n`, spec);
}

/** Every compute event stored for the execution, up to and including the final one. */
function usageOf(executionId: string, timeoutMs = 40_000): Promise<ComputeUsage[]> {
  return readStored(t.bus, topics.usageCompute, executionId, (u) => u.final, timeoutMs);
}

interface ContainerLife {
  readonly startedAtMs: number;
  readonly finishedAtMs: number;
}

/**
 * When the engine started and stopped the execution's container (its StartedAt and FinishedAt), from its
 * own events, heard from before the launch; the events are no longer listened to once it has stopped.
 */
async function containerLife(docker: Docker, executionId: string): Promise<{ ended: Promise<ContainerLife> }> {
  const filters = { type: ['container' as const], event: ['start', 'die'], label: [`${labels.executionId}=${executionId}`] };
  const events = (await docker.getEvents({ filters })) as NodeJS.ReadableStream & { destroy(): void };
  const ended = new Promise<ContainerLife>((resolve, reject) => {
    let startedAtMs = 0;
    let buffered = '';
    events.on('data', (data: Buffer) => {
      buffered += data.toString('utf8');
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines.filter((l) => l.trim() !== '')) {
        const event = JSON.parse(line) as { status: string; timeNano: number };
        if (event.status === 'start') startedAtMs = event.timeNano / 1e6;
        if (event.status !== 'die') continue;
        events.destroy();
        resolve({ startedAtMs, finishedAtMs: event.timeNano / 1e6 });
      }
    });
    events.on('error', reject);
  });
  ended.catch(() => {});
  return { ended };
}

/** What every execution's events must show: numbered from 1 without gaps, one final at the end, totals that never go back. */
function assertWellFormed(executionId: string, events: readonly ComputeUsage[]): ComputeUsage {
  assert.ok(events.length >= 2, `${events.length} events`);
  assert.deepEqual(
    events.map((e) => e.seq),
    events.map((_, i) => i + 1),
  );
  assert.deepEqual(
    events.map((e) => e.final),
    events.map((_, i) => i === events.length - 1),
  );
  for (const e of events) {
    assert.equal(e.executionId, executionId);
    assert.equal(e.brokerId, t.brokerId);
  }
  assertNeverBack(events);
  return events.at(-1)!;
}

function assertNeverBack(events: readonly ComputeUsage[]): void {
  for (let i = 1; i < events.length; i++) {
    const [a, b] = [events[i - 1]!, events[i]!];
    assert.ok(b.cpuMsTotal >= a.cpuMsTotal && b.memoryMibMsTotal >= a.memoryMibMsTotal && b.wallMsTotal >= a.wallMsTotal && b.atMs >= a.atMs, `event ${b.seq} goes below ${a.seq}`);
  }
}

/**
 * The wall time ends when the engine tells the broker the job ended: on a loaded host that comes up to
 * about 150 ms after the engine's FinishedAt, which 5% of a life of 5 s covers.
 */
function assertWallNear(final: ComputeUsage, life: ContainerLife): void {
  const lifeMs = life.finishedAtMs - life.startedAtMs;
  assert.ok(Math.abs(final.wallMsTotal - lifeMs) <= lifeMs * 0.05, `wall ${final.wallMsTotal} ms against a container life of ${Math.round(lifeMs)} ms`);
}

function cgroupOf(executionId: string): ExecutionCgroup {
  const layout = cgroupLayout();
  assert.ok(layout, 'this host has cgroups');
  return new ExecutionCgroup(layout, executionCgroupParent(t.brokerId, executionId));
}

function assertCgroupGone(executionId: string): void {
  assert.equal(cgroupOf(executionId).read(), null, 'the cgroup goes with the final event');
}

/** Until the watching connection is back and JetStream, restarted, answers it. */
async function untilJetStreamAnswers(timeoutMs = 30_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; ; await new Promise((r) => setTimeout(r, 200))) {
    try {
      await t.bus.jsm.streams.info(topics.usageCompute.stream!);
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
  }
}

test('a busy job and an idle one: totals while they run, then a final event with the CPU each burnt, its wall time, and no cgroup left', async () => {
  const b = await inProcessBroker();
  const [busy, idle] = [randomUUID(), randomUUID()];
  const [busyLife, idleLife] = await Promise.all([containerLife(t.docker, busy), containerLife(t.docker, idle)]);
  await b.instances.launch({ executionId: busy, ownerId: 'uma', spec: burn(2) });
  await b.instances.launch({ executionId: idle, ownerId: 'uma', spec: shellSpec('sleep 5') });

  const busyFinal = assertWellFormed(busy, await usageOf(busy));
  assert.ok(busyFinal.cpuMsTotal >= 1_950 && busyFinal.cpuMsTotal <= 2_600, `busy: ${busyFinal.cpuMsTotal} ms of CPU for 2000 ms burnt`);
  assertWallNear(busyFinal, await busyLife.ended);

  const idleEvents = await usageOf(idle);
  const idleFinal = assertWellFormed(idle, idleEvents);
  assert.ok(idleEvents.length >= 8, `an idle job of 5 s has events every ${INTERVAL_MS} ms: ${idleEvents.length}`);
  assert.ok(idleFinal.cpuMsTotal < 300, `idle: ${idleFinal.cpuMsTotal} ms of CPU`);
  assertWallNear(idleFinal, await idleLife.ended);
  assert.ok(idleFinal.memoryMibMsTotal > 0 && idleFinal.memoryMibMsTotal < 50 * idleFinal.wallMsTotal, `idle memory: ${idleFinal.memoryMibMsTotal} MiB·ms`);

  for (const id of [busy, idle]) {
    await exitedOf(t.bus, id);
    assertCgroupGone(id);
  }
});

test('memory in use is integrated over time: 100 MiB held for 4 s counts at least 100 MiB for 1 s, and never past the limit', async () => {
  const b = await inProcessBroker();
  const id = randomUUID();
  const life = await containerLife(t.docker, id);
  // Written, not only allocated: pages never touched are not in use.
  await b.instances.launch({ executionId: id, ownerId: 'uma', spec: python("import time\nheld = b'x' * (100 * 1024 * 1024)\ntime.sleep(4)\n") });
  const final = assertWellFormed(id, await usageOf(id));
  assert.ok(final.memoryMibMsTotal >= 100 * 1_000, `${final.memoryMibMsTotal} MiB·ms`);
  assert.ok(final.memoryMibMsTotal <= MEMORY_LIMIT_MIB * final.wallMsTotal, `${final.memoryMibMsTotal} MiB·ms over ${final.wallMsTotal} ms under a ${MEMORY_LIMIT_MIB} MiB limit`);
  assertWallNear(final, await life.ended);
});

test('under gVisor the host cgroup counts the sandbox: a busy job costs its CPU, an idle one little', async () => {
  const b = await inProcessBroker();
  const [busy, idle] = [randomUUID(), randomUUID()];
  const gvisor = { containerRuntime: ContainerRuntime.CONTAINER_RUNTIME_GVISOR };
  await b.instances.launch({ executionId: busy, ownerId: 'uma', spec: burn(2.5, gvisor) });
  await b.instances.launch({ executionId: idle, ownerId: 'uma', spec: shellSpec('sleep 3', gvisor) });
  const busyFinal = assertWellFormed(busy, await usageOf(busy));
  const idleFinal = assertWellFormed(idle, await usageOf(idle));
  // runsc's ptrace platform keeps its own clock: 2.5 s of process time inside has cost the host 1.3-2 s.
  assert.ok(busyFinal.cpuMsTotal >= 1_000, `busy under gVisor: ${busyFinal.cpuMsTotal} ms of CPU`);
  assert.ok(idleFinal.cpuMsTotal < busyFinal.cpuMsTotal / 4, `idle under gVisor: ${idleFinal.cpuMsTotal} ms of CPU, busy ${busyFinal.cpuMsTotal} ms`);
  for (const id of [busy, idle]) {
    await exitedOf(t.bus, id);
    assertCgroupGone(id);
  }
});

test('a broker that adopts a running instance after a crash goes on with its seq and its memory integral', async () => {
  await broker?.stop();
  broker = null;
  const id = randomUUID();
  const first = await startBrokerProcess(t.env, t.bus, t.brokerId);
  try {
    await first.launch({ executionId: id, ownerId: 'uma', spec: python('import time\nt = time.process_time()\nwhile time.process_time() - t < 1: pass\ntime.sleep(4)\n') });
    await readStored(t.bus, topics.usageCompute, id, (_u, all) => all.length >= 4);
  } finally {
    await first.kill('SIGKILL');
  }
  const beforeCrash = await readStored(t.bus, topics.usageCompute, id, () => true);
  const lastBefore = (await t.bus.lastStored(topics.usageCompute, id))!.message;

  await inProcessBroker();
  const adoptedAtMs = Date.now();
  const events = await usageOf(id);
  assert.equal(beforeCrash[0]?.seq, 1);
  const after = events.filter((e) => e.seq > lastBefore.seq);
  assert.ok(after.length >= 2, `${after.length} events after the adoption`);
  // Continued, not started again at 1 (whose ids NATS would drop as repeats): the next seq comes at once.
  assert.equal(after[0]!.seq, lastBefore.seq + 1);
  assert.ok(after[0]!.atMs - adoptedAtMs < 3 * INTERVAL_MS, `the first event after the adoption came ${after[0]!.atMs - adoptedAtMs} ms after it`);
  assert.deepEqual(
    events.map((e) => e.seq),
    events.map((_, i) => i + 1),
  );
  assertNeverBack(events);
  const final = events.at(-1)!;
  assert.equal(final.final, true);
  assert.ok(final.cpuMsTotal >= 950, `${final.cpuMsTotal} ms of CPU for 1000 ms burnt before the crash`);
  assert.ok(final.memoryMibMsTotal > lastBefore.memoryMibMsTotal, 'the memory integral goes on from the last event');
  assert.ok(final.wallMsTotal >= 4_500, `wall ${final.wallMsTotal} ms`);
  await exitedOf(t.bus, id);
  assertCgroupGone(id);
});

test('NATS away while a job ends: the latest totals wait, and the final event arrives once NATS is back', async () => {
  const b = await inProcessBroker();
  const id = randomUUID();
  const life = await containerLife(t.docker, id);
  await b.instances.launch({ executionId: id, ownerId: 'uma', spec: shellSpec('sleep 5') });
  await readStored(t.bus, topics.usageCompute, id, () => true);
  await t.services.killNats();
  try {
    await waitUntilExited(t.docker, t.brokerId, id);
    await new Promise((r) => setTimeout(r, 1_000));
  } finally {
    await t.services.startNats();
  }
  await untilJetStreamAnswers();
  const events = await usageOf(id, 60_000);
  assertNeverBack(events);
  const seqs = events.map((e) => e.seq);
  assert.deepEqual(seqs, [...new Set(seqs)].sort((x, y) => x - y), 'each seq once, in order');
  const final = events.at(-1)!;
  assert.equal(final.final, true);
  assert.equal(events.filter((e) => e.final).length, 1);
  assertWallNear(final, await life.ended);
  await exitedOf(t.bus, id, 30_000);
});

test("reconciliation removes cgroups of this broker's executions that nothing holds, and keeps those of running ones", async () => {
  const b = await inProcessBroker();
  const running = randomUUID();
  await b.instances.launch({ executionId: running, ownerId: 'uma', spec: shellSpec('sleep 3') });
  // What a broker that died between an instance's end and the removal of its cgroup leaves behind.
  const left = randomUUID();
  const layout = cgroupLayout();
  assert.ok(layout);
  const folders = layout.all.map((mount) => folderOf(mount, executionCgroupParent(t.brokerId, left))).filter((f) => f !== null);
  for (const folder of folders) mkdirSync(folder, { recursive: true });

  await b.instances.reconcile();
  assert.deepEqual(folders.filter((f) => existsSync(f)), [], 'the cgroup nothing holds is gone from every hierarchy');
  assert.notEqual(cgroupOf(running).read(), null, 'a running instance keeps its cgroup');
  assert.equal((await usageOf(running)).at(-1)?.final, true);
});
