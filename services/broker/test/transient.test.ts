// Transient provider failures (an engine 5xx, a timeout) are retried for a few seconds counted from the
// first attempt; permanent ones fail at once. The Docker engine is real; only the failures are injected, at
// the Provider seam, because a real engine cannot be made to answer 500 on demand.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import Docker from 'dockerode';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { BlobStore } from '@paddock/blobs';
import { createPool, migrate, type Pool } from '@paddock/db';
import { topics } from '@paddock/bus';
import { ExitCause, OutputStream } from '@paddock/proto';
import { SpecKey } from '@paddock/secrets';
import { MIGRATIONS_DIR } from '../src/broker.js';
import { brokerConfig } from '../src/config.js';
import { InstanceManager } from '../src/lifecycle/instanceManager.js';
import { LaunchError } from '../src/lifecycle/launchError.js';
import { InstanceStore } from '../src/instanceStore.js';
import { TransientProviderError } from '../src/provider/errors.js';
import type { Provider } from '../src/provider/provider.js';
import { DockerProvider } from '../src/providers/docker/dockerProvider.js';
import { containersOf } from './support/containers.js';
import { exitedOf, outputOf, storedCount, textOf } from './support/jetstream.js';
import { shellSpec } from './support/specs.js';
import { setUpTestBroker, type TestBroker } from './support/testBroker.js';

let t: TestBroker;
let pool: Pool;
let manager: InstanceManager;
/** How many of the next create calls fail as an engine 500 would. */
let failCreates = 0;
let createCalls = 0;
/** Kill PostgreSQL (for real) as soon as the next instance is created, before the broker records it. */
let killDatabaseAfterCreate = false;

before(async () => {
  t = await setUpTestBroker('transient', { PADDOCK_PROVISION_RETRY_MS: '3000' });
  const config = brokerConfig(t.env);
  pool = createPool(t.services.databaseUrl);
  await migrate(pool, 'broker', MIGRATIONS_DIR);
  const docker = new DockerProvider(new Docker({ socketPath: config.dockerSocket }), config);
  const flaky: Provider = Object.assign(Object.create(docker) as DockerProvider, {
    create: async (...args: Parameters<Provider['create']>) => {
      createCalls++;
      if (failCreates > 0) {
        failCreates--;
        throw new TransientProviderError('the Docker engine failed: (HTTP code 500) server error - injected', 'docker');
      }
      const made = await docker.create(...args);
      if (killDatabaseAfterCreate) {
        killDatabaseAfterCreate = false;
        await t.services.killDatabase();
      }
      return made;
    },
  });
  manager = new InstanceManager(flaky, t.bus, new InstanceStore(pool), new BlobStore(config.blobsDir), config, t.log, await SpecKey.existing(config.specKeyFile));
});
after(async () => {
  await manager?.stop();
  await pool?.end();
  await t?.stop();
});

test('an engine that fails twice and then answers: the job runs, once', async () => {
  failCreates = 2;
  createCalls = 0;
  const id = randomUUID();
  await manager.launch({ executionId: id, ownerId: 'ivy', spec: shellSpec('echo ok') });
  assert.equal(createCalls, 3);
  const exited = await exitedOf(t.bus, id);
  assert.equal(exited.cause, ExitCause.EXIT_CAUSE_EXITED);
  assert.equal(exited.exitCode, 0);
});

test('an engine that keeps failing: the launch fails after the retry window, counted from the first attempt, with the reason', async () => {
  failCreates = 1_000;
  const id = randomUUID();
  const t0 = Date.now();
  await assert.rejects(manager.launch({ executionId: id, ownerId: 'ivy', spec: shellSpec('echo never') }), (err: unknown) => {
    assert.ok(err instanceof LaunchError);
    assert.equal(err.code, GrpcStatus.FAILED_PRECONDITION);
    assert.match(err.details, /the Docker engine failed: \(HTTP code 500\)/);
    return true;
  });
  const tookMs = Date.now() - t0;
  assert.ok(tookMs >= 2_000 && tookMs <= 4_000, `gave up after ${tookMs} ms; the window is 3000 ms`);
  assert.equal((await exitedOf(t.bus, id)).cause, ExitCause.EXIT_CAUSE_PROVISIONING_FAILED);
  failCreates = 0;
});

test('a permanent failure (an image that is not there and cannot be built) fails at once, without retrying', async () => {
  createCalls = 0;
  const id = randomUUID();
  const t0 = Date.now();
  await assert.rejects(manager.launch({ executionId: id, ownerId: 'ivy', spec: shellSpec('true', { image: 'localhost/paddock-absent:never' }) }), /is not in the Docker engine: build it/);
  assert.equal(createCalls, 1);
  assert.ok(Date.now() - t0 < 1_500, `took ${Date.now() - t0} ms`);
  assert.deepEqual(await containersOf(t.docker, t.brokerId, id), []);
});

test('PostgreSQL killed between creating the instance and recording it: UNAVAILABLE, the created container is removed, and the same Launch once PostgreSQL is back runs the job once', async () => {
  const id = randomUUID();
  killDatabaseAfterCreate = true;
  try {
    await assert.rejects(manager.launch({ executionId: id, ownerId: 'ivy', spec: shellSpec('echo once') }), (err: unknown) => {
      assert.ok(err instanceof LaunchError, String(err));
      assert.equal(err.code, GrpcStatus.UNAVAILABLE);
      assert.match(err.details, /database is unavailable/);
      return true;
    });
    assert.deepEqual(await containersOf(t.docker, t.brokerId, id), [], 'no Created container is left');
    assert.equal(manager.executionIds.includes(id), false);
  } finally {
    killDatabaseAfterCreate = false;
    await t.services.startDatabase();
  }
  // The row could not be removed while PostgreSQL was down: it must not block the launch tried again.
  await manager.launch({ executionId: id, ownerId: 'ivy', spec: shellSpec('echo once') });
  const exited = await exitedOf(t.bus, id);
  assert.equal(exited.cause, ExitCause.EXIT_CAUSE_EXITED);
  assert.equal(textOf(await outputOf(t.bus, id), OutputStream.OUTPUT_STREAM_STDOUT), 'once\n');
  assert.equal(await storedCount(t.bus, topics.instanceStarted, id), 1);
  assert.equal(await storedCount(t.bus, topics.instanceExited, id), 1);
  assert.deepEqual(await containersOf(t.docker, t.brokerId, id), []);
});
