// Large inputs travel by reference: the gateway stores them once in the blob store, the broker writes them
// into the workspace, in both workspace modes; a missing or damaged blob fails the launch at once.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { BlobStore } from '@paddock/blobs';
import { ExecutionKind, ExecutionSpec, ExitCause, OutputStream } from '@paddock/proto';
import type { StartedBroker } from '../src/broker.js';
import { LaunchError } from '../src/lifecycle/launchError.js';
import { containersOf } from './support/containers.js';
import { exitedOf, outputOf, textOf } from './support/jetstream.js';
import { shellSpec } from './support/specs.js';
import { setUpTestBroker, type TestBroker } from './support/testBroker.js';

const MiB = 1024 * 1024;
const modes = ['bind', 'archive'] as const;
const brokers = new Map<(typeof modes)[number], { t: TestBroker; broker: StartedBroker; blobs: BlobStore }>();

before(async () => {
  for (const mode of modes) {
    const t = await setUpTestBroker(`inputs-${mode}`, { PADDOCK_WORKSPACE_MODE: mode });
    brokers.set(mode, { t, broker: await t.start(), blobs: new BlobStore(t.config.blobsDir) });
  }
});
after(async () => {
  for (const { t } of brokers.values()) await t.stop();
});

for (const mode of modes) {
  test(`${mode} workspace: a 9.9 MiB file and a script given by reference reach the job intact`, async () => {
    const { t, broker, blobs } = brokers.get(mode)!;
    const big = randomBytes(Math.round(9.9 * MiB));
    const bigRef = await blobs.put(big);
    const scriptRef = await blobs.put(
      Buffer.from(
        [
          'import hashlib, pathlib',
          'data = pathlib.Path("inputs/big.bin").read_bytes()',
          'print(len(data), hashlib.sha256(data).hexdigest())',
          'print(pathlib.Path("small.txt").read_text())',
        ].join('\n'),
      ),
    );
    const id = randomUUID();
    await broker.instances.launch({
      executionId: id,
      ownerId: 'erin',
      spec: ExecutionSpec.fromPartial({
        ...shellSpec(''),
        kind: ExecutionKind.EXECUTION_KIND_PYTHON,
        files: { 'small.txt': Buffer.from('inline too') },
        fileRefs: { 'inputs/big.bin': bigRef },
        scriptRef,
      }),
    });
    const exited = await exitedOf(t.bus, id);
    const out = textOf(await outputOf(t.bus, id));
    assert.equal(exited.cause, ExitCause.EXIT_CAUSE_EXITED, out);
    assert.equal(exited.exitCode, 0, out);
    assert.equal(out, `${big.length} ${createHash('sha256').update(big).digest('hex')}\ninline too\n`);
    assert.deepEqual(await containersOf(t.docker, t.brokerId, id), []);
  });
}

test('a file whose blob is missing fails the launch at once, saying which input and where it was looked for', async () => {
  const { t, broker } = brokers.get('bind')!;
  const id = randomUUID();
  const absent = { sha256: createHash('sha256').update(randomUUID()).digest('hex'), sizeBytes: 10 };
  const t0 = Date.now();
  await assert.rejects(broker.instances.launch({ executionId: id, ownerId: 'erin', spec: ExecutionSpec.fromPartial({ ...shellSpec('cat data.bin'), fileRefs: { 'data.bin': absent } }) }), (err: unknown) => {
    assert.ok(err instanceof LaunchError);
    assert.equal(err.code, GrpcStatus.FAILED_PRECONDITION);
    assert.match(err.details, new RegExp(`input ${absent.sha256.slice(0, 12)} is not in the blob store ${t.config.blobsDir}`));
    return true;
  });
  assert.ok(Date.now() - t0 < 2_000, `took ${Date.now() - t0} ms: a missing blob is not worth retrying`);
  const exited = await exitedOf(t.bus, id);
  assert.equal(exited.cause, ExitCause.EXIT_CAUSE_PROVISIONING_FAILED);
  assert.match(textOf(await outputOf(t.bus, id), OutputStream.OUTPUT_STREAM_SYSTEM), /could not start the job: input .* is not in the blob store/);
  assert.deepEqual(await containersOf(t.docker, t.brokerId, id), []);
});

test('a blob whose content no longer matches its address fails the launch as damaged', async () => {
  const { t, broker, blobs } = brokers.get('bind')!;
  const ref = await blobs.put(Buffer.from('the original content'));
  await writeFile(join(t.config.blobsDir, ref.sha256.slice(0, 2), ref.sha256), 'tampered content!!!!');
  const id = randomUUID();
  await assert.rejects(
    broker.instances.launch({ executionId: id, ownerId: 'erin', spec: ExecutionSpec.fromPartial({ ...shellSpec('true'), fileRefs: { 'x.txt': ref } }) }),
    (err: unknown) => err instanceof LaunchError && err.code === GrpcStatus.FAILED_PRECONDITION && /is damaged/.test(err.details),
  );
  assert.equal((await exitedOf(t.bus, id)).cause, ExitCause.EXIT_CAUSE_PROVISIONING_FAILED);
});
