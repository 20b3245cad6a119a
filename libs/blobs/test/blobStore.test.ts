import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { BlobError, BlobStore } from '../src/index.js';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function store(): Promise<BlobStore> {
  const dir = await mkdtemp(join(tmpdir(), 'paddock-blobs-'));
  dirs.push(dir);
  return new BlobStore(dir);
}

test('a blob comes back as it was stored, once per content', async () => {
  const s = await store();
  const data = Buffer.alloc(3 * 1024 * 1024, 7);
  const ref = await s.put(data);
  assert.equal(ref.sizeBytes, data.length);
  assert.match(ref.sha256, /^[0-9a-f]{64}$/);
  assert.deepEqual(await s.put(data), ref);
  assert.ok((await s.get(ref)).equals(data));
  assert.deepEqual(await readdir(join(s.dir, ref.sha256.slice(0, 2))), [ref.sha256]);
});

test('a missing, damaged or ill-addressed blob is a BlobError', async () => {
  const s = await store();
  const ref = await s.put(Buffer.from('hello'));
  await assert.rejects(s.get({ sha256: 'a'.repeat(64), sizeBytes: 1 }), BlobError);
  await assert.rejects(s.get({ sha256: '../../etc/passwd', sizeBytes: 1 }), BlobError);
  await writeFile(join(s.dir, ref.sha256.slice(0, 2), ref.sha256), 'jello');
  await assert.rejects(s.get(ref), /damaged/);
});

test('the sweep removes only blobs unused for longer than asked', async () => {
  const s = await store();
  const old = await s.put(Buffer.from('old'));
  const fresh = await s.put(Buffer.from('fresh'));
  const past = new Date(Date.now() - 40 * 24 * 3600_000);
  await utimes(join(s.dir, old.sha256.slice(0, 2), old.sha256), past, past);
  assert.equal(await s.sweep(30 * 24 * 3600_000), 1);
  await assert.rejects(s.get(old), BlobError);
  assert.equal((await s.get(fresh)).toString(), 'fresh');
});
