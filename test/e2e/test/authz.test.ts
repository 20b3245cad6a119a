// The authorization matrix, derived from the served OpenAPI document: every operation in it, REST and
// WebSocket (a GET that answers 101), has a row saying who may use it. Bob, holding Alice's ids, is told
// 404 on every operation that takes one, as if they did not exist; he cannot read, replace or delete Alice's
// secrets; without a credential every operation but the public ones answers 401; and the run token of
// Alice's execution is 401 everywhere the document does not list it. An operation with an id is covered as
// soon as it is in the document; one without needs a row in NO_ID_ROUTES, and a route the gateway serves
// but the document leaves out fails the gateway's own test (app.test.ts, "every route, and nothing else").
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { startPaddock, type ApiClient, type RunningPaddock } from '@paddock/testkit';
import { waitFor } from '../src/index.js';

/**
 * How an operation treats another user's ids:
 * - `byId`: takes an execution (instance) id; another user's is 404 (a WebSocket's upgrade is refused with 404).
 * - `hostById`: takes an ingress host name, `{id}-{port}.localhost`, in its body: another user's is 404 too.
 * - `secretByName`: takes a secret's name; each user has their own namespace of names.
 * - `ownCollection`: lists or creates the caller's own things; takes no id.
 * - `self`: about the caller only.
 * - `adminOnly`: a user who is not admin gets 403.
 * - `public`: no credential at all (its `security` is `[]`).
 */
type Access = 'byId' | 'hostById' | 'secretByName' | 'ownCollection' | 'self' | 'adminOnly' | 'public';

/** The operations without an id, keyed by `METHOD path` as the OpenAPI document spells it: who they are for. */
const NO_ID_ROUTES: Readonly<Record<string, Access>> = {
  'GET /api/v1/executions': 'ownCollection',
  'POST /api/v1/executions': 'ownCollection',
  'POST /schedule': 'ownCollection',
  'GET /jobs': 'ownCollection',
  'GET /api/v1/secrets': 'ownCollection',
  'POST /api/v1/users': 'adminOnly',
  'GET /api/v1/users/me': 'self',
  'GET /metrics': 'adminOnly',
  'POST /api/v1/ingress/tickets': 'hostById',
};

/** Bodies the generator below cannot make up (a pattern to match, a check beyond the schema). */
const BODIES: Readonly<Record<string, unknown>> = {
  'POST /api/v1/executions': { kind: 'shell', command: 'true' },
  'POST /schedule': { command: 'true' },
  'POST /api/v1/users': { name: 'mallory' },
};

/** Values for the query parameters an operation requires, by name. */
const QUERY_VALUES: Readonly<Record<string, string>> = { port: '2222' };

interface Schema {
  type?: string | string[];
  enum?: unknown[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  minItems?: number;
  minimum?: number;
}

interface Operation {
  parameters?: { in: string; name: string; required?: boolean }[];
  requestBody?: { required?: boolean; content: Record<string, { schema: Schema }> };
  responses: Record<string, unknown>;
  security?: Record<string, string[]>[];
}

/** One operation of the document, with what the matrix needs to know of it. */
interface Row {
  /** `METHOD path`. */
  readonly name: string;
  readonly method: string;
  readonly template: string;
  /** Undefined for an operation without an id that NO_ID_ROUTES does not know yet: the first test names it. */
  readonly access: Access | undefined;
  readonly webSocket: boolean;
  readonly acceptsRunToken: boolean;
  readonly op: Operation;
}

/** The smallest value a JSON schema accepts, for the bodies of the operations (so that who asks is what is tested). */
function sample(schema: Schema): unknown {
  if (schema.enum) return schema.enum[0];
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case 'object':
      return Object.fromEntries((schema.required ?? []).map((k) => [k, sample(schema.properties?.[k] ?? {})]));
    case 'array':
      return Array.from({ length: schema.minItems ?? 0 }, () => sample(schema.items ?? {}));
    case 'integer':
    case 'number':
      return schema.minimum ?? 1;
    case 'boolean':
      return false;
    default:
      return 'x';
  }
}

const SECRET_NAME = 'ALICE_ONLY_KEY';
const SECRET_VALUE = 'alice-value-1234';

let paddock: RunningPaddock;
let alice: ApiClient;
let bob: ApiClient;
/** Alice's running service: the execution and instance whose id Bob tries everywhere. */
let serviceId: string;
/** Its PADDOCK_RUN_TOKEN, read from inside it. */
let runToken: string;
/** Every operation of the served OpenAPI document. */
let rows: Row[];

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
  const printed = await alice.request('POST', `/api/v1/instances/${serviceId}/exec`, { cmd: ['sh', '-c', 'printf %s "$PADDOCK_RUN_TOKEN"'] });
  assert.equal(printed.status, 200, JSON.stringify(printed.body));
  runToken = String(printed.body)
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { stream?: string; data?: string })
    .filter((l) => l.stream === 'stdout')
    .map((l) => l.data)
    .join('');
  assert.match(runToken, new RegExp(`^prt_${serviceId}_`));

  const doc = await fetch(`${paddock.url}/api/v1/openapi.json`);
  assert.equal(doc.status, 200);
  const { paths } = (await doc.json()) as { paths: Record<string, Record<string, Operation>> };
  rows = Object.entries(paths).flatMap(([template, ops]) =>
    Object.entries(ops).map(([method, op]) => {
      const name = `${method.toUpperCase()} ${template}`;
      const access: Access | undefined =
        op.security?.length === 0 ? 'public'
        : template.includes('{id}') ? 'byId'
        : template.includes('{name}') ? 'secretByName'
        : NO_ID_ROUTES[name];
      return {
        name,
        method: method.toUpperCase(),
        template,
        access,
        webSocket: '101' in op.responses,
        acceptsRunToken: op.security?.some((s) => 'runToken' in s) ?? false,
        op,
      };
    }),
  );
});

after(async () => {
  if (serviceId) await alice?.request('POST', `/api/v1/executions/${serviceId}/cancel`);
  await paddock?.stop();
});

/** The method and concrete path of an operation, with Alice's ids (or `id`) in place of its parameters. */
function concrete(row: Row, id = serviceId): { method: string; path: string; body: unknown } {
  const required = (row.op.parameters ?? []).filter((p) => p.in === 'query' && p.required).map((p) => p.name);
  for (const name of required) assert.ok(name in QUERY_VALUES, `${row.name}: add a value for its query parameter "${name}" to QUERY_VALUES`);
  const query = required.map((name) => `${name}=${encodeURIComponent(QUERY_VALUES[name]!)}`).join('&');
  const path = row.template.replace('{id}', id).replace('{name}', SECRET_NAME).replace('{port}', QUERY_VALUES['port']!) + (query ? `?${query}` : '');
  assert.doesNotMatch(path, /\{/, `${row.name}: a parameter this matrix does not know how to fill`);
  const schema = row.op.requestBody?.content['application/json']?.schema;
  const body = row.access === 'hostById' ? { host: `${id}-${QUERY_VALUES['port']!}.localhost` } : BODIES[row.name] ?? (schema ? sample(schema) : undefined);
  return { method: row.method, path, body };
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

/** The status an operation answers `token` (none: no credential at all), REST or WebSocket. */
async function statusOf(row: Row, token: string | undefined, id = serviceId): Promise<number> {
  const { method, path, body } = concrete(row, id);
  if (row.webSocket) return upgradeStatus(path, token);
  const r = await fetch(paddock.url + path, {
    method,
    headers: { ...(token === undefined ? {} : { authorization: `Bearer ${token}` }), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  await r.arrayBuffer();
  return r.status;
}

test('every operation of the API description has a row, WebSocket ones included, and every row an operation', () => {
  const missing = rows.filter((r) => r.access === undefined).map((r) => r.name);
  assert.deepEqual(missing, [], `operations without an id that NO_ID_ROUTES does not know: ${missing.join(', ')}`);
  const stale = Object.keys(NO_ID_ROUTES).filter((name) => !rows.some((r) => r.name === name));
  assert.deepEqual(stale, [], `rows for operations the API no longer describes: ${stale.join(', ')}`);
  const webSockets = rows.filter((r) => r.webSocket).map((r) => r.name);
  assert.deepEqual(webSockets.sort(), ['GET /api/v1/instances/{id}/tunnel', 'GET /terminal/{id}'], 'the WebSocket routes are described');
});

test("Alice's ids are real: she reaches her own execution and instance on the id routes", async () => {
  assert.equal((await alice.request('GET', `/api/v1/executions/${serviceId}`)).status, 200);
  assert.equal((await alice.request('GET', `/status/${serviceId}`)).status, 200);
  assert.equal((await alice.request('GET', `/api/v1/instances/${serviceId}/ssh`)).status, 200);
  assert.equal((await alice.request('POST', `/api/v1/instances/${serviceId}/exec`, { cmd: ['true'] })).status, 200);
  for (const row of rows.filter((r) => r.webSocket)) assert.equal(await statusOf(row, alice.token), 101, row.name);
  for (const row of rows.filter((r) => r.access === 'hostById')) assert.equal(await statusOf(row, alice.token), 201, row.name);
});

test("Bob, with Alice's ids, is told 404 on every operation that takes one, REST and WebSocket", async () => {
  const byId = rows.filter((r) => r.access === 'byId' || r.access === 'hostById');
  assert.ok(byId.length >= 12, `the document describes the id routes: ${byId.map((r) => r.name).join(', ')}`);
  const answered: string[] = [];
  for (const row of byId) answered.push(`${row.name} -> ${await statusOf(row, bob.token)}`);
  assert.deepEqual(answered, byId.map((r) => `${r.name} -> 404`));
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

test('a user who is not admin is refused the admin operations with 403', async () => {
  const adminOnly = rows.filter((r) => r.access === 'adminOnly');
  assert.ok(adminOnly.length >= 1);
  for (const row of adminOnly) assert.equal(await statusOf(row, bob.token), 403, row.name);
});

test('without a credential every operation but the public ones answers 401, REST and WebSocket', async () => {
  const guarded = rows.filter((r) => r.access !== 'public');
  const answered: string[] = [];
  for (const row of guarded) answered.push(`${row.name} -> ${await statusOf(row, undefined)}`);
  assert.deepEqual(answered, guarded.map((r) => `${r.name} -> 401`));
  for (const row of rows.filter((r) => r.access === 'public')) assert.equal(await statusOf(row, undefined), 200, row.name);
  // Nothing happened on Alice's behalf: her service still runs.
  assert.equal((await alice.get(serviceId)).state, 'executing');
});

test("Alice's run token works only where the document lists it, for its own execution only; everywhere else it is 401", async () => {
  const guarded = rows.filter((r) => r.access !== 'public');
  const accepting = guarded.filter((r) => r.acceptsRunToken);
  assert.deepEqual(accepting.map((r) => r.name), ['GET /api/v1/executions/{id}']);
  const answered: string[] = [];
  for (const row of guarded) answered.push(`${row.name} -> ${await statusOf(row, runToken)}`);
  assert.deepEqual(answered, guarded.map((r) => `${r.name} -> ${r.acceptsRunToken ? 200 : 401}`));
  // Another execution, even one of Alice's own, is not found for it.
  const sibling = await alice.submit({ kind: 'shell', command: 'true' });
  for (const row of accepting) assert.equal(await statusOf(row, runToken, sibling.id), 404, row.name);
  assert.equal((await alice.get(serviceId)).state, 'executing', 'nothing was done with it');
});
