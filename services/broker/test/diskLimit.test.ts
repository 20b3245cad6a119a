// A workspace's disk limit is enforced by the kernel (its own ext4 filesystem on a loop device): a job
// that writes past it ends failed, saying so, and nothing of it stays mounted on the host.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { ExitCause, OutputStream } from '@paddock/proto';
import type { StartedBroker } from '../src/broker.js';
import { LaunchError } from '../src/lifecycle/launchError.js';
import { containersOf } from './support/containers.js';
import { exitedOf, outputOf, textOf } from './support/jetstream.js';
import { shellSpec } from './support/specs.js';
import { setUpTestBroker, type TestBroker } from './support/testBroker.js';

const MiB = 1024 * 1024;
let t: TestBroker;
let broker: StartedBroker;

before(async () => {
  t = await setUpTestBroker('disk', { PADDOCK_WORKSPACE_MODE: 'bind' });
  broker = await t.start();
});
after(async () => {
  await t?.stop();
});

/** Mount points and loop devices of this host that lead into the workspaces folder. */
function leftoversOnHost(): { mounts: string[]; loops: string[] } {
  const root = t.config.workspacesDir;
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((p) => p.startsWith(root));
  const loops = execFileSync('losetup', ['-a', '-l', '-n', '-O', 'NAME,BACK-FILE']).toString().split('\n').filter((l) => l.includes(root));
  return { mounts, loops };
}

test('a job that writes past its 20 MiB disk limit is stopped and ends failed with the disk reason; no mount or loop device is left', async () => {
  const id = randomUUID();
  // dd fails with ENOSPC; the job carries on as if nothing happened, which is what the limit must end.
  await broker.instances.launch({
    executionId: id,
    ownerId: 'frank',
    spec: shellSpec('dd if=/dev/zero of=big bs=1M count=30 2>&1 | head -1; echo carrying on; sleep 60', { diskBytes: 20 * MiB }),
  });
  const t0 = Date.now();
  assert.equal(leftoversOnHost().mounts.length, 1, 'the workspace is a filesystem of its own while the job runs');
  const exited = await exitedOf(t.bus, id);
  const chunks = await outputOf(t.bus, id);
  assert.equal(exited.cause, ExitCause.EXIT_CAUSE_DISK_FULL, textOf(chunks));
  assert.notEqual(exited.exitCode, 0, textOf(chunks));
  assert.match(exited.detail, /^the workspace exceeded its 20 MiB disk limit/);
  assert.ok(Date.now() - t0 < 15_000, `stopped after ${Date.now() - t0} ms`);
  assert.match(textOf(chunks, OutputStream.OUTPUT_STREAM_STDOUT), /No space left on device/);
  assert.match(textOf(chunks, OutputStream.OUTPUT_STREAM_SYSTEM), /\[paddock\] the workspace exceeded its 20 MiB disk limit/);
  assert.deepEqual(await containersOf(t.docker, t.brokerId, id), []);
  assert.deepEqual(leftoversOnHost(), { mounts: [], loops: [] });
  assert.equal(existsSync(join(t.config.workspacesDir, id)), false);
  assert.equal(existsSync(join(t.config.workspacesDir, `${id}.ext4`)), false);
});

test('a job within its disk limit completes, and the limit does not show in its artifacts', async () => {
  const id = randomUUID();
  await broker.instances.launch({ executionId: id, ownerId: 'frank', spec: shellSpec('dd if=/dev/zero of=ok.bin bs=1M count=5 2>/dev/null; ls -A', { diskBytes: 20 * MiB }) });
  const exited = await exitedOf(t.bus, id);
  assert.equal(exited.exitCode, 0);
  assert.equal(exited.detail, '');
  assert.equal(textOf(await outputOf(t.bus, id), OutputStream.OUTPUT_STREAM_STDOUT), 'ok.bin\n');
  assert.deepEqual(leftoversOnHost(), { mounts: [], loops: [] });
});

test("files that do not fit in the limit fail the launch at once, saying so", async () => {
  const id = randomUUID();
  await assert.rejects(
    broker.instances.launch({ executionId: id, ownerId: 'frank', spec: shellSpec('true', { diskBytes: 2 * MiB, files: { 'big.bin': Buffer.alloc(3 * MiB) } }) }),
    (err: unknown) => err instanceof LaunchError && err.code === GrpcStatus.FAILED_PRECONDITION && /need more room than the workspace's 2 MiB disk limit/.test(err.details),
  );
  assert.equal((await exitedOf(t.bus, id)).cause, ExitCause.EXIT_CAUSE_PROVISIONING_FAILED);
  assert.deepEqual(leftoversOnHost(), { mounts: [], loops: [] });
});

test('a restarted broker unmounts and removes the disk of an execution that ended while it was down', async () => {
  // What a broker killed between recording the end and removing the workspace leaves: an ended row and a
  // mounted workspace. Made here by the broker's own workspace code, then the row is marked ended.
  const { HostWorkspaces } = await import('../src/providers/docker/hostWorkspaces.js');
  const { createPool } = await import('@paddock/db');
  const { InstanceStore } = await import('../src/instanceStore.js');
  const id = randomUUID();
  const pool = createPool(t.services.databaseUrl);
  try {
    const store = new InstanceStore(pool);
    await store.claim(id, t.brokerId, 'frank');
    await new HostWorkspaces(t.config.workspacesDir).prepare(id, {}, 10 * MiB);
    await store.ended(id);
  } finally {
    await pool.end();
  }
  assert.equal(leftoversOnHost().mounts.length, 1);
  const next = await t.start();
  try {
    assert.deepEqual(leftoversOnHost(), { mounts: [], loops: [] });
    assert.equal(existsSync(join(t.config.workspacesDir, `${id}.ext4`)), false);
  } finally {
    await next.stop();
  }
});
