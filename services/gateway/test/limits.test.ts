// Whatever the gateway accepts can be delivered: large inputs go to the blob store and travel by reference,
// the message on the bus stays small, and a request over a documented limit is answered 413 before
// anything is stored. Also: action routes take an empty JSON body, and the OpenAPI document validates.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { Validator } from '@seriousme/openapi-schema-validator';
import { BlobStore } from '@paddock/blobs';
import { Bus, topics } from '@paddock/bus';
import { ExecutionRequested } from '@paddock/proto';
import { SecretBox, SpecKey } from '@paddock/secrets';
import { loadServiceTls } from '@paddock/plane';
import { buildApp } from '../src/app.js';
import type { GatewayConfig } from '../src/config.js';
import { ExecutionService } from '../src/executions/executionService.js';
import { ExecutionStore } from '../src/executions/executionStore.js';
import { INLINE_INPUTS_MAX_BYTES } from '../src/executions/inputs.js';
import { REQUEST_MESSAGE_MAX_BYTES } from '../src/executions/requestSize.js';
import { HealthWatch } from '../src/health.js';
import { BrokerDirectory } from '../src/instances/brokers.js';
import { TicketStore } from '../src/instances/ticketStore.js';
import { SecretStore } from '../src/secrets/secretStore.js';
import { UserStore } from '../src/users/userStore.js';
import { startTestStack, type TestStack } from './testStack.js';

const MIB = 1024 * 1024;

let stack: TestStack;
let config: GatewayConfig;
let bus: Bus;
let app: FastifyInstance;
let token: string;

before(async () => {
  stack = await startTestStack();
  config = stack.config();
  const users = new UserStore(stack.pool);
  token = (await users.create('alice')).token;
  bus = await Bus.connect({ url: config.natsUrl, name: 'paddock-gateway', log: stack.log });
  const store = new ExecutionStore(stack.pool);
  const secrets = new SecretStore(stack.pool, SecretBox.withKey(randomBytes(32)));
  app = await buildApp({
    config,
    log: stack.log,
    users,
    executions: new ExecutionService(store, secrets, SpecKey.withKey(randomBytes(32)), bus, config, stack.log),
    store,
    secrets,
    brokers: new BrokerDirectory(bus, await loadServiceTls(config.tls)),
    tickets: new TicketStore(stack.pool),
    bus,
    health: new HealthWatch(stack.pool, bus),
  });
});

after(async () => {
  await app?.close();
  await bus?.drain();
  await stack?.stop();
});

function post(url: string, payload: string | object, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  const opts: InjectOptions = {
    method: 'POST',
    url,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers },
    payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
  };
  return app.inject(opts);
}

/** Printable, incompressible text of exactly `bytes` bytes. */
function text(bytes: number): string {
  return randomBytes(Math.ceil((bytes * 3) / 4) + 3).toString('base64').slice(0, bytes);
}

const sha256 = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex');

async function published(id: string): Promise<{ message: ExecutionRequested; sizeBytes: number }> {
  const m = await bus.jsm.streams.getMessage('PADDOCK_EXECUTIONS', { last_by_subj: topics.executionRequested.subject(id) });
  return { message: ExecutionRequested.decode(m.data), sizeBytes: m.data.length };
}

async function executionCount(): Promise<number> {
  return (await stack.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM executions')).rows[0]!.n;
}

async function blobCount(): Promise<number> {
  const shards = await readdir(config.blobsDir).catch(() => [] as string[]);
  let n = 0;
  for (const shard of shards) n += (await readdir(join(config.blobsDir, shard))).length;
  return n;
}

test('a 3 MiB file and a large script go to the blob store once and travel by reference; small files stay inline', async () => {
  const big = text(3 * MIB);
  const script = `# ${text(200 * 1024)}\nprint(open("big.txt").read()[:10])\n`;
  const body = { kind: 'python', script, files: { 'big.txt': big, 'small/a.txt': 'tiny', 'copy.txt': big } };
  const r = await post('/api/v1/executions', body);
  assert.equal(r.statusCode, 201, r.body);
  const view = r.json<{ id: string; script: string | null; scriptRef: { sha256: string; sizeBytes: number } | null; files: string[] }>();
  assert.deepEqual(view.files, ['big.txt', 'copy.txt', 'small/a.txt']);
  assert.equal(view.script, null, 'the large script is stored once, in the blob store, not again in the row');
  assert.deepEqual(view.scriptRef, { sha256: sha256(script), sizeBytes: Buffer.byteLength(script) });

  const { message, sizeBytes } = await published(view.id);
  assert.ok(sizeBytes < 16 * 1024, `the message on the bus is ${sizeBytes} bytes`);
  const spec = message.spec!;
  assert.deepEqual(Object.keys(spec.files), ['small/a.txt']);
  assert.equal(Buffer.from(spec.files['small/a.txt']!).toString(), 'tiny');
  assert.deepEqual(spec.fileRefs, { 'big.txt': { sha256: sha256(big), sizeBytes: 3 * MIB }, 'copy.txt': { sha256: sha256(big), sizeBytes: 3 * MIB } });
  assert.equal(spec.script, '');
  assert.deepEqual(spec.scriptRef, view.scriptRef);

  // What the broker will read: the same bytes, checked against their address.
  const blobs = new BlobStore(config.blobsDir);
  assert.equal((await blobs.get(spec.fileRefs['big.txt']!)).toString('utf8'), big);
  assert.equal((await blobs.get(spec.scriptRef!)).toString('utf8'), script);
  assert.equal(await blobCount(), 2, 'the same content is stored once');
  const row = await stack.pool.query<{ bytes: number }>('SELECT octet_length(request::text) + octet_length(spec) AS bytes FROM executions WHERE id = $1', [view.id]);
  assert.ok(row.rows[0]!.bytes < 16 * 1024, `the row holds ${row.rows[0]!.bytes} bytes: the contents live in the blob store only`);
});

test('files and script stay inline while they add up to the inline budget, smallest first', async () => {
  const files = { 'a.txt': text(20 * 1024), 'b.txt': text(20 * 1024), 'c.txt': text(INLINE_INPUTS_MAX_BYTES - 40 * 1024), 'd.txt': text(30 * 1024) };
  const r = await post('/api/v1/executions', { kind: 'shell', command: 'ls', files });
  assert.equal(r.statusCode, 201, r.body);
  const spec = (await published(r.json<{ id: string }>().id)).message.spec!;
  // c (24 KiB) + a + b = 64 KiB inline; d (30 KiB) no longer fits.
  assert.deepEqual(Object.keys(spec.files).sort(), ['a.txt', 'b.txt', 'c.txt']);
  assert.deepEqual(Object.keys(spec.fileRefs), ['d.txt']);
});

test('a body of 9.9 MiB is accepted; one byte over the body limit is 413 and leaves no row and no blob', async () => {
  const envelope = JSON.stringify({ kind: 'shell', command: 'sha256sum big.txt', files: { 'big.txt': '' } });
  const fill = (total: number) => envelope.replace('"big.txt":""', `"big.txt":"${text(total - envelope.length)}"`);
  const accepted = fill(Math.floor(9.9 * MIB));
  assert.equal(accepted.length, Math.floor(9.9 * MIB));
  const r = await post('/api/v1/executions', accepted);
  assert.equal(r.statusCode, 201, r.body.slice(0, 500));
  assert.ok((await published(r.json<{ id: string }>().id)).sizeBytes < 16 * 1024);

  const rows = await executionCount();
  const blobs = await blobCount();
  const over = await post('/api/v1/executions', fill(config.bodyLimitBytes + 1));
  assert.equal(over.statusCode, 413);
  assert.deepEqual(over.json(), { error: { code: 'body_too_large', message: `request body is larger than the ${config.bodyLimitBytes} bytes allowed` } });
  assert.equal(await executionCount(), rows, 'no row');
  assert.equal(await blobCount(), blobs, 'no blob');
});

test('what must travel inline (env, prompt, file paths) is bounded: over the limit is 413 naming it, and nothing is stored', async () => {
  const rows = await executionCount();
  const blobs = await blobCount();
  const big = text(200 * 1024);
  const cases: [body: object, names: RegExp][] = [
    [{ kind: 'shell', command: 'env', env: { A: text(100_000), B: text(100_000), C: text(100_000) }, files: { 'big.txt': big } }, /env: \d+ KiB/],
    [{ kind: 'agent', prompt: text(400 * 1024), files: { 'big.txt': big } }, /prompt: 400 KiB/],
    [{ kind: 'shell', command: 'ls', files: Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`${i}/${'p'.repeat(3000)}`, 'x'])) }, /file paths: \d+ KiB/],
  ];
  for (const [body, names] of cases) {
    const r = await post('/api/v1/executions', body);
    assert.equal(r.statusCode, 413, r.body.slice(0, 500));
    const error = r.json<{ error: { code: string; message: string } }>().error;
    assert.equal(error.code, 'request_too_large');
    assert.match(error.message, new RegExp(`more than the ${REQUEST_MESSAGE_MAX_BYTES / 1024} KiB allowed`));
    assert.match(error.message, names);
  }
  assert.equal(await executionCount(), rows, 'no row');
  assert.equal(await blobCount(), blobs, 'no blob: the size is checked before the large files are stored');
});

test('an exec whose command and stdin exceed 1 MiB is 413 naming the limit', async () => {
  const r = await post('/api/v1/instances/nonexistent/exec', { cmd: ['cat'], stdin: text(MIB + 1) });
  assert.equal(r.statusCode, 413);
  const error = r.json<{ error: { code: string; message: string } }>().error;
  assert.equal(error.code, 'request_too_large');
  assert.match(error.message, /more than the 1048576 \(1 MiB\) an exec may take/);
});

test('action routes take content-type: application/json with an empty body; a route that needs a body still says so', async () => {
  const created = await post('/api/v1/executions', { kind: 'shell', command: 'sleep 100' });
  const id = created.json<{ id: string }>().id;
  for (const [url, status] of [[`/api/v1/executions/${id}/cancel`, 202], [`/cancel/${id}`, 202]] as const) {
    for (const payload of ['', '  \n']) {
      const r = await post(url, payload);
      assert.equal(r.statusCode, status, `${url} with ${JSON.stringify(payload)}: ${r.body}`);
    }
  }
  const noBody = await post('/api/v1/executions', '');
  assert.equal(noBody.statusCode, 400);
  assert.deepEqual(noBody.json(), { error: { code: 'invalid_request', message: 'body must be object' } });
  const broken = await post(`/api/v1/executions/${id}/cancel`, '{');
  assert.equal(broken.statusCode, 400);
  assert.equal(broken.json<{ error: { code: string } }>().error.code, 'invalid_json', 'malformed JSON is still refused');
});

test('the OpenAPI document validates against the OpenAPI 3.0 schema (as client generators check it)', async () => {
  const r = await app.inject({ method: 'GET', url: '/api/v1/openapi.json' });
  assert.equal(r.statusCode, 200);
  const doc = r.json<Record<string, unknown>>();
  const result = await new Validator().validate(doc);
  assert.equal(result.valid, true, JSON.stringify(result.errors, null, 1)?.slice(0, 4000));
  assert.equal(doc['openapi'], '3.0.3');
});
