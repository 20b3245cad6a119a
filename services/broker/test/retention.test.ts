// Nothing grows without bound: artifacts, ended rows and unused blobs older than the retention time go.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BlobStore } from '@paddock/blobs';
import { createPool, type Pool } from '@paddock/db';
import { artifactPath } from '../src/artifacts.js';
import type { StartedBroker } from '../src/broker.js';
import { InstanceStore } from '../src/instanceStore.js';
import { setUpTestBroker, type TestBroker } from './support/testBroker.js';

const DAY_MS = 24 * 60 * 60 * 1000;
let t: TestBroker;
let broker: StartedBroker;
let pool: Pool;

before(async () => {
  t = await setUpTestBroker('retention', { PADDOCK_RETENTION_DAYS: '7' });
  broker = await t.start();
  pool = createPool(t.services.databaseUrl);
});
after(async () => {
  await pool?.end();
  await t?.stop();
});

async function endedRow(store: InstanceStore, brokerId: string, finishedAtMs: number): Promise<string> {
  const id = randomUUID();
  await store.claim(id, brokerId, 'hank');
  await store.exited(id, { cause: 'EXIT_CAUSE_EXITED', exitCode: 0, detail: '', artifactsSaved: true, finishedAtMs });
  await store.ended(id);
  return id;
}

test('a sweep removes what is older than PADDOCK_RETENTION_DAYS and keeps the rest', async () => {
  const now = Date.now();
  const store = new InstanceStore(pool);
  const blobs = new BlobStore(t.config.blobsDir);
  await mkdir(t.config.artifactsDir, { recursive: true });

  const oldZip = artifactPath(t.config.artifactsDir, randomUUID());
  const newZip = artifactPath(t.config.artifactsDir, randomUUID());
  const strayTmp = `${artifactPath(t.config.artifactsDir, randomUUID())}.123.tmp`;
  for (const f of [oldZip, newZip, strayTmp]) await writeFile(f, 'PK');
  const eightDaysAgo = new Date(now - 8 * DAY_MS);
  await utimes(oldZip, eightDaysAgo, eightDaysAgo);
  await utimes(strayTmp, eightDaysAgo, eightDaysAgo);

  const oldRow = await endedRow(store, t.brokerId, now - 8 * DAY_MS);
  const newRow = await endedRow(store, t.brokerId, now - 6 * DAY_MS);
  const otherBrokersRow = await endedRow(store, `${t.brokerId}-other`, now - 8 * DAY_MS);
  const liveRow = randomUUID();
  await store.claim(liveRow, t.brokerId, 'hank');
  await pool.query(`UPDATE broker_instances SET created_at = now() - interval '9 days' WHERE execution_id = $1`, [liveRow]);

  const oldBlob = await blobs.put(Buffer.from(`old ${randomUUID()}`));
  const newBlob = await blobs.put(Buffer.from(`new ${randomUUID()}`));
  const oldBlobPath = join(t.config.blobsDir, oldBlob.sha256.slice(0, 2), oldBlob.sha256);
  await utimes(oldBlobPath, eightDaysAgo, eightDaysAgo);

  const swept = await broker.retention.sweep();
  assert.deepEqual(swept, { artifacts: 2, rows: 1, blobs: 1 });
  assert.equal(existsSync(oldZip), false);
  assert.equal(existsSync(strayTmp), false);
  assert.equal(existsSync(newZip), true);
  assert.equal(await store.get(oldRow), null);
  assert.notEqual(await store.get(newRow), null);
  assert.notEqual(await store.get(otherBrokersRow), null, "another broker's rows are its own to sweep");
  assert.notEqual(await store.get(liveRow), null, 'a row that has not ended stays, however old');
  assert.equal(existsSync(oldBlobPath), false);
  await assert.doesNotReject(blobs.get(newBlob), 'a blob used within the retention time stays');
});
