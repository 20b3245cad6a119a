// Whatever is accepted can be delivered: requests of 1 MiB, 3 MiB and 9.9 MiB run to completed with their
// files intact in the workspace and in the artifacts ZIP; one byte over the body limit is 413 and leaves
// nothing behind. Also, through a real Paddock: exec output cut mid-character arrives whole, and an action
// route takes an empty JSON body.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { startPaddock, type RunningPaddock } from '@paddock/testkit';
import { containersOf } from '../src/index.js';

const run = promisify(execFile);
const MIB = 1024 * 1024;
/** The gateway's default PADDOCK_BODY_LIMIT_BYTES. */
const BODY_LIMIT_BYTES = 10 * MIB;

let paddock: RunningPaddock;

before(async () => {
  paddock = await startPaddock();
});

after(async () => {
  await paddock?.stop();
});

/** Printable, incompressible text of exactly `bytes` bytes. */
function text(bytes: number): string {
  return randomBytes(Math.ceil((bytes * 3) / 4) + 3).toString('base64').slice(0, bytes);
}

const sha256 = (data: string) => createHash('sha256').update(data).digest('hex');

/** The SHA-256 of one entry of a ZIP, read by Debian's unzip (a reader independent of Paddock's). */
async function zipEntrySha256(zip: Buffer, name: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'paddock-limits-'));
  try {
    await writeFile(join(dir, 'a.zip'), zip);
    const { stdout } = await run('bash', ['-c', `unzip -p "$1" "$2" | sha256sum`, 'bash', join(dir, 'a.zip'), name]);
    return stdout.split(' ')[0]!;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** POSTs a request body exactly as given (its size is what is tested). */
/* eslint-disable-next-line @typescript-eslint/no-explicit-any -- the JSON answer, of whichever shape each assertion reads */
async function postRaw(body: string): Promise<{ status: number; body: any }> {
  const r = await fetch(`${paddock.url}/api/v1/executions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${paddock.admin.token}`, 'content-type': 'application/json' },
    body,
  });
  return { status: r.status, body: await r.json() };
}

/** A shell job that prints the checksum of big.bin, in a request body of exactly `bodyBytes`. */
function checksumRequest(bodyBytes: number): { body: string; content: string } {
  const envelope = JSON.stringify({ kind: 'shell', command: 'sha256sum big.bin', files: { 'big.bin': '', 'small.txt': 'small' } });
  const content = text(bodyBytes - envelope.length);
  return { body: envelope.replace('"big.bin":""', `"big.bin":"${content}"`), content };
}

for (const [label, bodyBytes] of [
  ['1 MiB', MIB],
  ['3 MiB', 3 * MIB],
  ['9.9 MiB', Math.floor(9.9 * MIB)],
] as const) {
  test(`a request of ${label} runs to completed with its file intact in the workspace and in the ZIP`, { timeout: 180_000 }, async () => {
    const { body, content } = checksumRequest(bodyBytes);
    assert.equal(body.length, bodyBytes);
    const created = await postRaw(body);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id as string;
    const final = await paddock.admin.waitFinal(id, 120_000);
    assert.equal(final.state, 'completed', `${final.state}: ${final.error}`);
    assert.equal(await paddock.admin.logs(id), `${sha256(content)}  big.bin\n`);
    const zip = await paddock.admin.artifacts(id);
    assert.equal(zip.status, 200);
    assert.equal(await zipEntrySha256(zip.bytes, 'big.bin'), sha256(content));
    assert.equal(await zipEntrySha256(zip.bytes, 'small.txt'), sha256('small'));
    assert.deepEqual(await containersOf(id), []);
  });
}

test('a Python script too large to travel inline runs from the blob store', { timeout: 120_000 }, async () => {
  const script = `# ${text(300 * 1024)}\nprint(sum(range(1000)))\n`;
  const created = await paddock.admin.submit({ kind: 'python', script });
  assert.equal(created['script'], null);
  assert.deepEqual(created['scriptRef'], { sha256: sha256(script), sizeBytes: Buffer.byteLength(script) });
  const final = await paddock.admin.waitFinal(created.id, 90_000);
  assert.equal(final.state, 'completed', `${final.state}: ${final.error}`);
  assert.equal(await paddock.admin.logs(created.id), '499500\n');
});

test('a job that fills its workspace past resources.diskMb ends failed, saying so; one within it completes', { timeout: 120_000 }, async () => {
  const filling = await paddock.admin.submit({ kind: 'shell', command: 'dd if=/dev/zero of=big bs=1M count=40; sleep 30', resources: { diskMb: 20 } });
  const within = await paddock.admin.submit({ kind: 'shell', command: 'dd if=/dev/zero of=small bs=1M count=5 && ls -l small', resources: { diskMb: 20 } });
  const full = await paddock.admin.waitFinal(filling.id, 90_000);
  assert.equal(full.state, 'failed');
  assert.match(full.error ?? '', /the workspace exceeded its 20 MiB disk limit/);
  const fine = await paddock.admin.waitFinal(within.id, 90_000);
  assert.equal(fine.state, 'completed', `${fine.state}: ${fine.error}`);
  const refused = await paddock.admin.request('POST', '/api/v1/executions', { kind: 'shell', command: 'true', resources: { diskMb: 8 } });
  assert.equal(refused.status, 400);
});

async function blobCount(): Promise<number> {
  const dir = join(paddock.home, 'blobs');
  let n = 0;
  for (const shard of await readdir(dir).catch(() => [] as string[])) n += (await readdir(join(dir, shard))).length;
  return n;
}

test('one byte over the body limit is 413 and leaves no execution and no blob', { timeout: 60_000 }, async () => {
  const listed = async () => (await paddock.admin.request('GET', '/api/v1/executions?limit=500')).body.items.length as number;
  const rows = await listed();
  const blobs = await blobCount();
  const { body } = checksumRequest(BODY_LIMIT_BYTES + 1);
  const r = await postRaw(body);
  assert.equal(r.status, 413);
  assert.equal(r.body.error.code, 'body_too_large');
  assert.match(r.body.error.message, new RegExp(`${BODY_LIMIT_BYTES} bytes`));
  assert.equal(await listed(), rows);
  assert.equal(await blobCount(), blobs);

  const env = await paddock.admin.request('POST', '/api/v1/executions', { kind: 'shell', command: 'env', env: { A: text(100_000), B: text(100_000), C: text(100_000) } });
  assert.equal(env.status, 413);
  assert.equal(env.body.error.code, 'request_too_large');
  assert.match(env.body.error.message, /env: \d+ KiB/);
  assert.equal(await listed(), rows);
});

test('exec output cut in the middle of a character arrives whole; cancel takes an empty JSON body', { timeout: 120_000 }, async () => {
  const { id } = await paddock.admin.submit({ kind: 'shell', command: 'sleep 120' });
  await paddock.admin.waitState(id, 'executing', 60_000);
  const TEXT = 'héllo ✓ 日本語 🚀\n';
  // One byte per write, flushed, with a pause: the broker sees (and streams) every byte on its own.
  const program = `import sys, time\nfor b in ${JSON.stringify(TEXT)}.encode():\n    sys.stdout.buffer.write(bytes([b])); sys.stdout.buffer.flush(); time.sleep(0.01)\n`;
  const r = await fetch(`${paddock.url}/api/v1/instances/${id}/exec`, {
    method: 'POST',
    headers: { authorization: `Bearer ${paddock.admin.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ cmd: ['python3', '-c', program] }),
  });
  assert.equal(r.status, 200);
  const lines = (await r.text()).trim().split('\n').map((l) => JSON.parse(l) as { stream?: string; data?: string; exitCode?: number });
  assert.deepEqual(lines.at(-1), { exitCode: 0 });
  const stdout = lines.filter((l) => l.stream === 'stdout').map((l) => l.data!);
  assert.equal(stdout.join(''), TEXT);
  assert.ok(stdout.every((d) => !d.includes('\uFFFD')), JSON.stringify(stdout));

  const cancel = await fetch(`${paddock.url}/api/v1/executions/${id}/cancel`, {
    method: 'POST',
    headers: { authorization: `Bearer ${paddock.admin.token}`, 'content-type': 'application/json' },
  });
  assert.equal(cancel.status, 202, await cancel.text());
  assert.equal((await paddock.admin.waitFinal(id, 60_000)).state, 'cancelled');
});
