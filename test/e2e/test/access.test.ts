// Identity and bad input at the API's edge: who may see what, and what a wrong request is told.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { connect } from 'nats';
import { streamOf, topics } from '@paddock/bus';
import { startPaddock, type ApiClient, type RunningPaddock } from '@paddock/testkit';

let paddock: RunningPaddock;
let alice: ApiClient;
let bob: ApiClient;

before(async () => {
  paddock = await startPaddock();
  const create = async (name: string) => {
    const r = await paddock.admin.request('POST', '/api/v1/users', { name });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.name, name);
    assert.match(r.body.token, /^pdk_/);
    return paddock.admin.withToken(r.body.token);
  };
  alice = await create('alice');
  bob = await create('bob');
});

after(async () => {
  await paddock?.stop();
});

test('every request needs a valid bearer token', async () => {
  const anonymous = await fetch(`${paddock.url}/api/v1/executions`);
  assert.equal(anonymous.status, 401);
  assert.equal(((await anonymous.json()) as { error: { code: string } }).error.code, 'unauthorized');
  const wrong = await paddock.admin.withToken('pdk_not-a-real-token').request('GET', '/api/v1/executions');
  assert.equal(wrong.status, 401);
  assert.equal((await fetch(`${paddock.url}/healthz`)).status, 200, 'health needs no token');
  assert.equal((await fetch(`${paddock.url}/api/v1/openapi.json`)).status, 200, 'nor does the API description');
});

test('only an admin creates users; a user knows who it is', async () => {
  const denied = await alice.request('POST', '/api/v1/users', { name: 'mallory' });
  assert.equal(denied.status, 403);
  assert.equal(denied.body.error.code, 'forbidden');
  const me = await alice.request('GET', '/api/v1/users/me');
  assert.equal(me.status, 200);
  assert.equal(me.body.name, 'alice');
  assert.equal(me.body.admin, false);
});

test("another user's execution is not found on every path; the admin sees it", async () => {
  const ex = await alice.submit({ kind: 'shell', command: 'echo secret > s.txt; sleep 30' });
  assert.notEqual(ex.owner, (await bob.request('GET', '/api/v1/users/me')).body.id);
  for (const [method, path] of [
    ['GET', `/api/v1/executions/${ex.id}`],
    ['GET', `/api/v1/executions/${ex.id}/logs`],
    ['GET', `/api/v1/executions/${ex.id}/artifacts.zip`],
    ['POST', `/api/v1/executions/${ex.id}/cancel`],
    ['GET', `/status/${ex.id}`],
    ['POST', `/cancel/${ex.id}`],
    ['GET', `/download/${ex.id}`],
  ] as const) {
    const r = await bob.request(method, path);
    assert.equal(r.status, 404, `${method} ${path} answered ${r.status}`);
    assert.equal(r.body.error.code, 'not_found');
  }
  const bobsList = await bob.request('GET', '/api/v1/executions');
  assert.ok(!bobsList.body.items.some((e: { id: string }) => e.id === ex.id));
  const adminView = await paddock.admin.get(ex.id);
  assert.equal(adminView.owner, ex.owner);
  const aliceList = await alice.request('GET', '/api/v1/executions');
  assert.deepEqual(aliceList.body.items.map((e: { id: string }) => e.id), [ex.id]);
  // Bob's cancel did nothing; Alice's own does.
  assert.notEqual((await alice.get(ex.id)).state, 'cancelled');
  assert.equal((await alice.request('POST', `/api/v1/executions/${ex.id}/cancel`)).status, 202);
  assert.equal((await alice.waitFinal(ex.id, 30_000)).state, 'cancelled');
});

test('an unknown id is 404, an unknown route too, each with a JSON error', async () => {
  for (const path of ['/api/v1/executions/0000000000000000000000', '/api/v1/executions/nope/logs', '/api/v1/nothing-here']) {
    const r = await alice.request('GET', path);
    assert.equal(r.status, 404, path);
    assert.equal(typeof r.body.error.message, 'string');
  }
});

/** POSTs a raw body; returns status and the parsed error. */
async function post(body: string, contentType = 'application/json') {
  const r = await alice.request('POST', '/api/v1/executions', body, { 'content-type': contentType });
  return { status: r.status, code: r.body?.error?.code as string, message: r.body?.error?.message as string };
}

test('bad input is a 4xx that says what to fix, and creates nothing', async () => {
  const before = (await alice.request('GET', '/api/v1/executions')).body.items.length;
  const cases: [string, string, number, string, RegExp][] = [
    ['malformed JSON', '{"kind": "shell", "command": ', 400, 'invalid_json', /JSON/i],
    ['unknown field', JSON.stringify({ kind: 'shell', command: 'true', comand: 'x' }), 400, 'invalid_request', /unknown field "comand"/],
    ['wrong type', JSON.stringify({ kind: 'shell', command: 42 }), 400, 'invalid_request', /body\.command must be string/],
    ['unknown kind', JSON.stringify({ kind: 'ruby', command: 'true' }), 400, 'invalid_request', /kind must be one of "shell", "python"/],
    ['missing command', JSON.stringify({ kind: 'shell' }), 400, 'invalid_request', /needs "command"/],
    ['script for shell', JSON.stringify({ kind: 'shell', command: 'true', script: 'x' }), 400, 'invalid_request', /does not take "script"/],
    ['parent path', JSON.stringify({ kind: 'shell', command: 'true', files: { '../etc/passwd': 'x' } }), 400, 'invalid_request', /may not contain "\.\."/],
    ['nested parent path', JSON.stringify({ kind: 'shell', command: 'true', files: { 'a/../../b': 'x' } }), 400, 'invalid_request', /inside \/workspace/],
    ['absolute path', JSON.stringify({ kind: 'shell', command: 'true', files: { '/etc/cron.d/x': 'x' } }), 400, 'invalid_request', /not absolute/],
    ['negative timeout', JSON.stringify({ kind: 'shell', command: 'true', timeoutS: -1 }), 400, 'invalid_request', /timeoutS must be >= 1/],
    ['too much memory', JSON.stringify({ kind: 'shell', command: 'true', resources: { memoryMb: 10_000_000 } }), 400, 'invalid_request', /memoryMb may be at most/],
    ['bad env name', JSON.stringify({ kind: 'shell', command: 'true', env: { 'A-B': '1' } }), 400, 'invalid_request', /env/],
    ['not an object', '[1,2,3]', 400, 'invalid_request', /object/],
    ['oversized body', JSON.stringify({ kind: 'shell', command: 'true', files: { 'big.txt': 'x'.repeat(20 * 1024 * 1024) } }), 413, 'body_too_large', /larger than/],
  ];
  for (const [name, body, status, code, message] of cases) {
    const r = await post(body);
    assert.equal(r.status, status, `${name}: ${r.status} ${r.message}`);
    assert.equal(r.code, code, `${name}: ${r.code}`);
    assert.match(r.message, message, name);
  }
  const form = await post('kind=shell', 'application/x-www-form-urlencoded');
  assert.equal(form.status, 415);
  assert.equal(form.code, 'unsupported_media_type');

  const badQuery = await alice.request('GET', '/api/v1/executions?state=sleeping');
  assert.equal(badQuery.status, 400);
  assert.match(badQuery.body.error.message, /state must be one of/);

  const after = (await alice.request('GET', '/api/v1/executions')).body.items.length;
  assert.equal(after, before, 'no execution was created by a bad request');
  assert.equal((await fetch(`${paddock.url}/healthz`)).status, 200, 'the gateway is still healthy');
});

test('env values cross the bus sealed: the request on JetStream holds none in clear, the job gets them all', async () => {
  const secret = `sk-live-${Date.now()}`;
  const { id } = await alice.submit({ kind: 'shell', command: 'echo "$API_KEY" | wc -c', env: { API_KEY: secret } });
  const final = await alice.waitFinal(id);
  assert.equal(final.state, 'completed');
  assert.equal((await alice.logs(id)).trim(), String(secret.length + 1));
  const nc = await connect(paddock.natsOptions('access-test'));
  try {
    const jsm = await nc.jetstreamManager();
    const stored = await jsm.streams.getMessage(streamOf(topics.executionRequested), { last_by_subj: topics.executionRequested.subject(id) });
    assert.ok(stored.data.length > 0);
    assert.ok(!Buffer.from(stored.data).includes(Buffer.from(secret)), 'the value is not on the bus in clear');
  } finally {
    await nc.close();
  }
});
