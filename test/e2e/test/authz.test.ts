// The authorization matrix: every route of the served OpenAPI document has a row saying who may use it.
// Bob, holding Alice's ids, is told 404 on every route that takes one (REST and WebSocket alike), as if they
// did not exist; he cannot read, replace or delete Alice's secrets; and without a token every route but the
// public ones answers 401. A REST route added to the API without a row here fails the first test; the
// WebSocket routes are not in the OpenAPI document, so their rows are checked against the gateway itself.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { startPaddock, type ApiClient, type RunningPaddock } from '@paddock/testkit';
import { waitFor } from '../src/index.js';

/**
 * How a route treats another user's ids:
 * - `byId`: takes an execution (instance) id; another user's is 404.
 * - `byIdWebSocket`: the same, for a WebSocket route: the upgrade is refused with 404.
 * - `secretByName`: takes a secret's name; each user has their own namespace of names.
 * - `ownCollection`: lists or creates the caller's own things; takes no id.
 * - `self`: about the caller only.
 * - `adminOnly`: a user who is not admin gets 403.
 */
type Access = 'byId' | 'byIdWebSocket' | 'secretByName' | 'ownCollection' | 'self' | 'adminOnly';

/** Keyed by `METHOD path` as the OpenAPI document spells it. */
const MATRIX: Readonly<Record<string, Access>> = {
  'GET /api/v1/executions': 'ownCollection',
  'POST /api/v1/executions': 'ownCollection',
  'GET /api/v1/executions/{id}': 'byId',
  'POST /api/v1/executions/{id}/cancel': 'byId',
  'GET /api/v1/executions/{id}/logs': 'byId',
  'GET /api/v1/executions/{id}/artifacts.zip': 'byId',
  'POST /schedule': 'ownCollection',
  'GET /jobs': 'ownCollection',
  'GET /status/{id}': 'byId',
  'POST /cancel/{id}': 'byId',
  'GET /download/{id}': 'byId',
  'GET /api/v1/instances/{id}/ssh': 'byId',
  'POST /api/v1/instances/{id}/terminal-ticket': 'byId',
  'POST /api/v1/instances/{id}/exec': 'byId',
  'GET /terminal/{id}': 'byIdWebSocket',
  'GET /api/v1/instances/{id}/tunnel': 'byIdWebSocket',
  'PUT /api/v1/secrets/{name}': 'secretByName',
  'DELETE /api/v1/secrets/{name}': 'secretByName',
  'GET /api/v1/secrets': 'ownCollection',
  'POST /api/v1/users': 'adminOnly',
  'GET /api/v1/users/me': 'self',
};

/** The WebSocket routes, which the OpenAPI document leaves out: each row here must answer the upgrade. */
const WEBSOCKET_ROUTES = Object.keys(MATRIX).filter((op) => MATRIX[op] === 'byIdWebSocket');

/** Routes that answer without a token, by design: health and metrics for supervisors. */
const PUBLIC_ROUTES = new Set(['GET /healthz', 'GET /readyz', 'GET /metrics']);

/** A body each route validates, so that what is tested is who asks, not what is sent. */
const BODIES: Readonly<Record<string, unknown>> = {
  'POST /api/v1/instances/{id}/exec': { cmd: ['true'] },
  'PUT /api/v1/secrets/{name}': { value: 'from-bob' },
  'POST /api/v1/executions': { kind: 'shell', command: 'true' },
  'POST /schedule': { kind: 'shell', command: 'true' },
  'POST /api/v1/users': { name: 'mallory' },
};

/** Query strings a route requires. */
const QUERIES: Readonly<Record<string, string>> = {
  'GET /api/v1/instances/{id}/tunnel': '?port=2222',
};

const SECRET_NAME = 'ALICE_ONLY_KEY';
const SECRET_VALUE = 'alice-value-1234';

let paddock: RunningPaddock;
let alice: ApiClient;
let bob: ApiClient;
/** Alice's running service: the execution and instance whose id Bob tries everywhere. */
let serviceId: string;
/** Every operation of the served OpenAPI document, as `METHOD path`. */
let operations: string[];
/** Only those the OpenAPI document describes. */
let restOperations: string[];

before(async () => {
  paddock = await startPaddock();
  const create = async (name: string) => {
    const r = await paddock.admin.request('POST', '/api/v1/users', { name });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return paddock.admin.withToken(r.body.token);
  };
  alice = await create('alice');
  bob = await create('bob');
  assert.equal((await alice.request('PUT', `/api/v1/secrets/${SECRET_NAME}`, { value: SECRET_VALUE })).status, 204);
  const service = await alice.submit({ kind: 'shell', command: 'echo service-ready', service: true, secrets: [SECRET_NAME], timeoutS: 300 });
  serviceId = service.id;
  await alice.waitState(serviceId, 'executing');
  await waitFor('the service to idle', async () => /idling/.test(await alice.logs(serviceId)), 30_000, 250);

  const doc = await fetch(`${paddock.url}/api/v1/openapi.json`);
  assert.equal(doc.status, 200);
  const { paths } = (await doc.json()) as { paths: Record<string, Record<string, unknown>> };
  const described = Object.entries(paths).flatMap(([path, ops]) => Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`));
  operations = [...described, ...WEBSOCKET_ROUTES.filter((op) => !described.includes(op))];
  restOperations = described;
});

after(async () => {
  if (serviceId) await alice?.request('POST', `/api/v1/executions/${serviceId}/cancel`);
  await paddock?.stop();
});

/** `METHOD path` to the method and the concrete path, with Alice's ids in place of the parameters. */
function concrete(operation: string): { method: string; path: string } {
  const [method, template] = operation.split(' ') as [string, string];
  const path = template.replace('{id}', serviceId).replace('{name}', SECRET_NAME) + (QUERIES[operation] ?? '');
  assert.doesNotMatch(path, /\{/, `${operation}: a parameter this matrix does not know how to fill`);
  return { method, path };
}

/** Opens a WebSocket; resolves with the HTTP status of a refused upgrade, or 101 when it opened (then closes it). */
function upgradeStatus(path: string, token: string | undefined): Promise<number> {
  const ws = new WebSocket(paddock.url.replace(/^http/, 'ws') + path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      ws.terminate();
      resolve(101);
    });
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once('error', reject);
  });
}

test('every route of the API description has a row in the matrix, and every REST row a route', () => {
  const described = restOperations.filter((op) => !PUBLIC_ROUTES.has(op));
  const missing = described.filter((op) => !(op in MATRIX));
  assert.deepEqual(missing, [], `routes with no row in the authorization matrix: ${missing.join(', ')}`);
  const stale = Object.keys(MATRIX).filter((op) => MATRIX[op] !== 'byIdWebSocket' && !restOperations.includes(op));
  assert.deepEqual(stale, [], `rows for routes the API no longer describes: ${stale.join(', ')}`);
});

test("Alice's ids are real: she reaches her own execution and instance on the id routes", async () => {
  assert.equal((await alice.request('GET', `/api/v1/executions/${serviceId}`)).status, 200);
  assert.equal((await alice.request('GET', `/status/${serviceId}`)).status, 200);
  assert.equal((await alice.request('GET', `/api/v1/instances/${serviceId}/ssh`)).status, 200);
  assert.equal((await alice.request('POST', `/api/v1/instances/${serviceId}/exec`, { cmd: ['true'] })).status, 200);
  assert.equal(await upgradeStatus(`/api/v1/instances/${serviceId}/tunnel?port=2222`, alice.token), 101);
});

test("Bob, with Alice's ids, is told 404 on every route that takes one, REST and WebSocket", async () => {
  const byId = operations.filter((op) => MATRIX[op] === 'byId' || MATRIX[op] === 'byIdWebSocket');
  assert.ok(byId.length >= 10, `the document describes the id routes: ${byId.join(', ')}`);
  const answered: string[] = [];
  for (const operation of byId) {
    const { method, path } = concrete(operation);
    if (MATRIX[operation] === 'byIdWebSocket') {
      answered.push(`${operation} -> ${await upgradeStatus(path, bob.token)}`);
    } else {
      const r = await bob.request(method, path, BODIES[operation]);
      answered.push(`${operation} -> ${r.status}${r.status === 404 ? '' : ` ${JSON.stringify(r.body)}`}`);
      if (r.status === 404) assert.equal(r.body.error.code, 'not_found', operation);
    }
  }
  assert.deepEqual(answered, byId.map((op) => `${op} -> 404`));
  // Bob's cancel did nothing: Alice's service still runs.
  assert.equal((await alice.get(serviceId)).state, 'executing');
  const bobsList = await bob.request('GET', '/api/v1/executions');
  assert.equal(bobsList.status, 200);
  assert.ok(!bobsList.body.items.some((e: { id: string }) => e.id === serviceId), "Alice's execution is not in Bob's list");
  const bobsJobs = await bob.request('GET', '/jobs');
  assert.equal(bobsJobs.status, 200);
  assert.ok(!JSON.stringify(bobsJobs.body).includes(serviceId), "Alice's execution is not in Bob's old-style list");
});

test("Bob cannot read, use, replace or delete Alice's secrets", async () => {
  const list = await bob.request('GET', '/api/v1/secrets');
  assert.equal(list.status, 200);
  assert.deepEqual(list.body.items, [], "Bob's secrets are his own: none");
  const del = await bob.request('DELETE', `/api/v1/secrets/${SECRET_NAME}`);
  assert.equal(del.status, 404);
  const use = await bob.request('POST', '/api/v1/executions', { kind: 'shell', command: 'true', secrets: [SECRET_NAME] });
  assert.equal(use.status, 400, 'Bob cannot name a secret of Alice in his request');
  assert.match(use.body.error.message, new RegExp(`no secret named "${SECRET_NAME}"`));

  // A secret of the same name set by Bob is his, and leaves Alice's as it was.
  assert.equal((await bob.request('PUT', `/api/v1/secrets/${SECRET_NAME}`, { value: 'from-bob' })).status, 204);
  assert.equal((await bob.request('DELETE', `/api/v1/secrets/${SECRET_NAME}`)).status, 204);
  const alices = await alice.request('GET', '/api/v1/secrets');
  assert.deepEqual(alices.body.items.map((s: { name: string }) => s.name), [SECRET_NAME]);
  const job = await alice.submit({ kind: 'shell', command: `printf %s "$${SECRET_NAME}"`, secrets: [SECRET_NAME] });
  assert.equal((await alice.waitFinal(job.id)).state, 'completed');
  assert.equal(await alice.logs(job.id), SECRET_VALUE, "Alice's value is untouched by Bob's");
  assert.ok(!JSON.stringify(await bob.request('GET', '/api/v1/secrets')).includes(SECRET_VALUE));
});

test('a user who is not admin is refused the admin routes with 403', async () => {
  for (const operation of operations.filter((op) => MATRIX[op] === 'adminOnly')) {
    const { method, path } = concrete(operation);
    const r = await bob.request(method, path, BODIES[operation]);
    assert.equal(r.status, 403, `${operation} answered ${r.status}`);
  }
});

test('without a token every route but the public ones answers 401, REST and WebSocket', async () => {
  const answered: string[] = [];
  const guarded = operations.filter((op) => !PUBLIC_ROUTES.has(op));
  for (const operation of guarded) {
    const { method, path } = concrete(operation);
    if (MATRIX[operation] === 'byIdWebSocket') {
      answered.push(`${operation} -> ${await upgradeStatus(path, undefined)}`);
      continue;
    }
    const body = BODIES[operation];
    const r = await fetch(paddock.url + path, {
      method,
      ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    await r.arrayBuffer();
    answered.push(`${operation} -> ${r.status}`);
  }
  assert.deepEqual(answered, guarded.map((op) => `${op} -> 401`));
  // Nothing happened on Alice's behalf: her service still runs.
  assert.equal((await alice.get(serviceId)).state, 'executing');
});
