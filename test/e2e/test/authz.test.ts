// The authorization matrix, derived from the served OpenAPI document: every operation in it, REST and
// WebSocket (a GET that answers 101), has a row saying who may use it. Alice owns team acme and its project
// web, where her service runs; Vera is a viewer of acme and Max a member; Bob is in no team of hers. Bob,
// holding Alice's ids (execution, team, project), is told 404 on every operation that takes one, as if they
// did not exist; Vera and Max get what their role allows (ROLE_NEEDED) and 403 for the rest, never 404; he
// cannot read, replace or delete Alice's secrets; without a credential every operation but the public ones
// answers 401; the run token of Alice's execution is 401 everywhere the document does not list it, and so
// are web's project tokens, which act in web only. An operation with an id needs a row in ROLE_NEEDED, one
// without in NO_ID_ROUTES; a route the gateway serves but the document leaves out fails the gateway's own
// test (app.test.ts, "every route, and nothing else").
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { startPaddock, type ApiClient, type RunningPaddock } from '@paddock/testkit';
import { waitFor } from '../src/index.js';

/**
 * How an operation treats another team's ids:
 * - `byId`: takes an id in its path (an execution's, a team's or a project's, by its path); another team's is
 *   404 (a WebSocket's upgrade is refused with 404).
 * - `hostById`: takes an ingress host name, `{id}-{port}.localhost`, in its body: another user's is 404 too.
 * - `teamInBody`: takes a team's id in its body: another team's is 404.
 * - `projectInBody`: takes a project's id in its body: another team's is 404.
 * - `secretByName`: takes a secret's name; each user has their own namespace of names.
 * - `ownCollection`: lists or creates the caller's own things; takes no id.
 * - `self`: about the caller only.
 * - `adminOnly`: a user who is not admin gets 403.
 * - `public`: no credential at all (its `security` is `[]`).
 */
type Access = 'byId' | 'hostById' | 'teamInBody' | 'projectInBody' | 'secretByName' | 'ownCollection' | 'self' | 'adminOnly' | 'public';

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
  'GET /api/v1/teams': 'ownCollection',
  'POST /api/v1/teams': 'ownCollection',
  'GET /api/v1/projects': 'ownCollection',
  'POST /api/v1/projects': 'teamInBody',
  'GET /api/v1/costs': 'ownCollection',
  'GET /api/v1/prices': 'ownCollection',
  'PUT /api/v1/prices': 'adminOnly',
  'GET /api/v1/budgets': 'ownCollection',
  'POST /api/v1/budgets': 'projectInBody',
};

type Role = 'owner' | 'admin' | 'member' | 'viewer';
const RANK: Readonly<Record<Role, number>> = { viewer: 0, member: 1, admin: 2, owner: 3 };

/**
 * The role an operation on Alice's things needs in her project's team. An ingress login ticket is any
 * member's: what the session opens is decided per port by its visibility.
 */
const ROLE_NEEDED: Readonly<Record<string, Role>> = {
  'GET /api/v1/executions/{id}': 'viewer',
  'GET /api/v1/executions/{id}/logs': 'viewer',
  'GET /api/v1/executions/{id}/artifacts.zip': 'viewer',
  'POST /api/v1/executions/{id}/cancel': 'member',
  'GET /status/{id}': 'viewer',
  'GET /download/{id}': 'viewer',
  'POST /cancel/{id}': 'member',
  'GET /api/v1/instances/{id}/ssh': 'member',
  'POST /api/v1/instances/{id}/terminal-ticket': 'member',
  'POST /api/v1/instances/{id}/exec': 'member',
  'GET /api/v1/instances/{id}/tunnel': 'member',
  'GET /terminal/{id}': 'member',
  'GET /api/v1/instances/{id}/ports': 'viewer',
  'GET /api/v1/instances/{id}/ports/events': 'viewer',
  'PATCH /api/v1/instances/{id}/ports/{port}': 'member',
  'POST /api/v1/instances/{id}/ports/{port}/share': 'member',
  'POST /api/v1/ingress/tickets': 'viewer',
  'GET /api/v1/teams/{id}': 'viewer',
  'DELETE /api/v1/teams/{id}': 'owner',
  'POST /api/v1/teams/{id}/members': 'admin',
  'PATCH /api/v1/teams/{id}/members/{userId}': 'admin',
  'DELETE /api/v1/teams/{id}/members/{userId}': 'admin',
  'POST /api/v1/projects': 'admin',
  'GET /api/v1/projects/{id}': 'viewer',
  'PATCH /api/v1/projects/{id}': 'admin',
  'DELETE /api/v1/projects/{id}': 'owner',
  'GET /api/v1/projects/{id}/tokens': 'admin',
  'POST /api/v1/projects/{id}/tokens': 'admin',
  'DELETE /api/v1/projects/{id}/tokens/{tokenId}': 'admin',
  'GET /api/v1/projects/{id}/secrets': 'member',
  'PUT /api/v1/projects/{id}/secrets/{name}': 'admin',
  'DELETE /api/v1/projects/{id}/secrets/{name}': 'admin',
  'GET /api/v1/executions/{id}/cost': 'viewer',
  'POST /api/v1/budgets': 'admin',
  'PATCH /api/v1/budgets/{id}': 'admin',
  'DELETE /api/v1/budgets/{id}': 'admin',
};

/** Operations that change what the matrix goes on using: tried last, on a service of their own. */
const ENDS_THE_INSTANCE = new Set(['POST /api/v1/executions/{id}/cancel', 'POST /cancel/{id}']);

/** Bodies the generator below cannot make up (a pattern to match, a check beyond the schema). */
const BODIES: Readonly<Record<string, unknown>> = {
  'POST /api/v1/executions': { kind: 'shell', command: 'true' },
  'POST /schedule': { command: 'true' },
  'POST /api/v1/users': { name: 'mallory' },
  'POST /api/v1/teams': { name: 'mallory-team' },
  'PATCH /api/v1/budgets/{id}': { name: 'renamed' },
  'PUT /api/v1/prices': { models: [], compute: { cpuMicrosPerMillionCpuSeconds: 1, memoryMicrosPerMillionGibSeconds: 1 } },
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
  readonly acceptsProjectToken: boolean;
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
const SERVICE = { kind: 'shell', command: 'echo service-ready', service: true, timeoutS: 300 } as const;

let paddock: RunningPaddock;
let alice: ApiClient;
let bob: ApiClient;
let vera: ApiClient;
let max: ApiClient;
/** The ids an operation is tried with: Alice's. */
interface Target {
  readonly execution: string;
  readonly team: string;
  readonly project: string;
  /** A member of the team whom no one below admin may change: Alice herself. */
  readonly userId: string;
  readonly tokenId: string;
  /** A budget of the project. */
  readonly budget: string;
}
let target: Target;
/** Alice's second service in web, for the members' and the tokens' turns: they may end it. */
let teamServiceId: string;
/** Its PADDOCK_RUN_TOKEN, read from inside Alice's first service. */
let runToken: string;
/** Project tokens of web, made by Alice. */
let memberToken: string;
let viewerToken: string;
/** Every operation of the served OpenAPI document. */
let rows: Row[];

async function startService(owner: ApiClient, project: string): Promise<string> {
  const { id } = await owner.submit({ ...SERVICE, project, secrets: [SECRET_NAME] });
  await owner.waitState(id, 'executing');
  await waitFor('the service to idle', async () => /idling/.test(await owner.logs(id)), 30_000, 250);
  return id;
}

async function ok(client: ApiClient, method: string, path: string, body?: unknown): Promise<Record<string, string>> {
  const r = await client.request(method, path, body);
  assert.ok(r.status >= 200 && r.status < 300, `${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body as Record<string, string>;
}

before(async () => {
  paddock = await startPaddock();
  const users: Record<string, string> = {};
  const create = async (name: string) => {
    const r = await paddock.admin.request('POST', '/api/v1/users', { name });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    users[name] = r.body.id;
    return paddock.admin.withToken(r.body.token);
  };
  [alice, bob, vera, max] = [await create('alice'), await create('bob'), await create('vera'), await create('max')];
  assert.equal((await alice.request('PUT', `/api/v1/secrets/${SECRET_NAME}`, { value: SECRET_VALUE })).status, 204);
  const team = (await ok(alice, 'POST', '/api/v1/teams', { name: 'acme' })).id!;
  const project = (await ok(alice, 'POST', '/api/v1/projects', { teamId: team, name: 'web' })).id!;
  await ok(alice, 'POST', `/api/v1/teams/${team}/members`, { userId: users['vera'], role: 'viewer' });
  await ok(alice, 'POST', `/api/v1/teams/${team}/members`, { userId: users['max'], role: 'member' });
  await ok(alice, 'PUT', `/api/v1/projects/${project}/secrets/WEB_KEY`, { value: 'web-value' });
  const member = await ok(alice, 'POST', `/api/v1/projects/${project}/tokens`, { role: 'member', name: 'ci' });
  memberToken = member.token!;
  viewerToken = (await ok(alice, 'POST', `/api/v1/projects/${project}/tokens`, { role: 'viewer', name: 'dashboard' })).token!;
  const [serviceId, second] = await Promise.all([startService(alice, project), startService(alice, project)]);
  teamServiceId = second;
  const budget = (await ok(alice, 'POST', '/api/v1/budgets', { project, name: 'web-monthly', limitMicros: 100_000_000 })) as unknown as { budget: { id: string } };
  target = { execution: serviceId, team, project, userId: users['alice']!, tokenId: member.id!, budget: budget.budget.id };

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
        acceptsProjectToken: op.security?.some((s) => 'projectToken' in s) ?? false,
        op,
      };
    }),
  );
});

after(async () => {
  for (const id of [target?.execution, teamServiceId]) if (id) await alice?.request('POST', `/api/v1/executions/${id}/cancel`);
  await paddock?.stop();
});

/** Which of Alice's ids an `{id}` stands for, by the path it is in. */
function idFor(template: string, t: Target): string {
  if (template.startsWith('/api/v1/teams/')) return t.team;
  if (template.startsWith('/api/v1/projects/')) return t.project;
  if (template.startsWith('/api/v1/budgets/')) return t.budget;
  return t.execution;
}

/** The method and concrete path of an operation, with the target's ids in place of its parameters. */
function concrete(row: Row, t: Target = target): { method: string; path: string; body: unknown } {
  const required = (row.op.parameters ?? []).filter((p) => p.in === 'query' && p.required).map((p) => p.name);
  for (const name of required) assert.ok(name in QUERY_VALUES, `${row.name}: add a value for its query parameter "${name}" to QUERY_VALUES`);
  const query = required.map((name) => `${name}=${encodeURIComponent(QUERY_VALUES[name]!)}`).join('&');
  const path =
    row.template
      .replace('{id}', idFor(row.template, t))
      .replace('{name}', SECRET_NAME)
      .replace('{port}', QUERY_VALUES['port']!)
      .replace('{userId}', t.userId)
      .replace('{tokenId}', t.tokenId) + (query ? `?${query}` : '');
  assert.doesNotMatch(path, /\{/, `${row.name}: a parameter this matrix does not know how to fill`);
  const schema = row.op.requestBody?.content['application/json']?.schema;
  const body =
    row.access === 'hostById' ? { host: `${t.execution}-${QUERY_VALUES['port']!}.localhost` }
    : row.access === 'teamInBody' ? { ...(sample(schema ?? {}) as object), teamId: t.team }
    : row.access === 'projectInBody' ? { ...(sample(schema ?? {}) as object), project: t.project }
    : BODIES[row.name] ?? (schema ? sample(schema) : undefined);
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

/** The status an operation answers `token` (none: no credential at all), REST or WebSocket; a stream is not read. */
async function statusOf(row: Row, token: string | undefined, t: Target = target): Promise<number> {
  const { method, path, body } = concrete(row, t);
  if (row.webSocket) return upgradeStatus(path, token);
  const r = await fetch(paddock.url + path, {
    method,
    headers: { ...(token === undefined ? {} : { authorization: `Bearer ${token}` }), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  // Event streams and followed logs do not end by themselves: the status is what is asked.
  await r.body?.cancel();
  return r.status;
}

/** What an allowed call may answer: anything but the refusals of who asks (a 409 of a state, a 400 of a sample body). */
function allowed(status: number): boolean {
  return status !== 401 && status !== 403 && status !== 404;
}

/** The rows a teammate is tried on, the ones that end the instance last. */
function teamRows(): Row[] {
  const taking = rows.filter((r) => r.access === 'byId' || r.access === 'hostById' || r.access === 'teamInBody' || r.access === 'projectInBody');
  return [...taking.filter((r) => !ENDS_THE_INSTANCE.has(r.name)), ...taking.filter((r) => ENDS_THE_INSTANCE.has(r.name))];
}

test('every operation of the API description has a row, WebSocket ones included, and every row an operation', () => {
  const missing = rows.filter((r) => r.access === undefined).map((r) => r.name);
  assert.deepEqual(missing, [], `operations without an id that NO_ID_ROUTES does not know: ${missing.join(', ')}`);
  const stale = Object.keys(NO_ID_ROUTES).filter((name) => !rows.some((r) => r.name === name));
  assert.deepEqual(stale, [], `rows for operations the API no longer describes: ${stale.join(', ')}`);
  const unranked = teamRows().filter((r) => ROLE_NEEDED[r.name] === undefined).map((r) => r.name);
  assert.deepEqual(unranked, [], `operations on a team's things that ROLE_NEEDED does not rank: ${unranked.join(', ')}`);
  const staleRoles = Object.keys(ROLE_NEEDED).filter((name) => !rows.some((r) => r.name === name));
  assert.deepEqual(staleRoles, [], `ROLE_NEEDED ranks operations the API no longer describes: ${staleRoles.join(', ')}`);
  const webSockets = rows.filter((r) => r.webSocket).map((r) => r.name);
  assert.deepEqual(webSockets.sort(), ['GET /api/v1/instances/{id}/tunnel', 'GET /terminal/{id}'], 'the WebSocket routes are described');
});

test("Alice's ids are real: she reaches her own execution, instance, team and project on the id routes", async () => {
  const id = target.execution;
  assert.equal((await alice.request('GET', `/api/v1/executions/${id}`)).status, 200);
  assert.equal((await alice.request('GET', `/status/${id}`)).status, 200);
  assert.equal((await alice.request('GET', `/api/v1/instances/${id}/ssh`)).status, 200);
  assert.equal((await alice.request('POST', `/api/v1/instances/${id}/exec`, { cmd: ['true'] })).status, 200);
  assert.equal((await alice.request('GET', `/api/v1/teams/${target.team}`)).status, 200);
  assert.equal((await alice.request('GET', `/api/v1/projects/${target.project}`)).status, 200);
  for (const row of rows.filter((r) => r.webSocket)) assert.equal(await statusOf(row, alice.token), 101, row.name);
  for (const row of rows.filter((r) => r.access === 'hostById')) assert.equal(await statusOf(row, alice.token), 201, row.name);
});

test("Bob, of another team, with Alice's ids, is told 404 on every operation that takes one, REST and WebSocket", async () => {
  const byId = rows.filter((r) => r.access === 'byId' || r.access === 'hostById' || r.access === 'teamInBody' || r.access === 'projectInBody');
  assert.ok(byId.length >= 28, `the document describes the id routes: ${byId.map((r) => r.name).join(', ')}`);
  const answered: string[] = [];
  for (const row of byId) answered.push(`${row.name} -> ${await statusOf(row, bob.token)}`);
  assert.deepEqual(answered, byId.map((r) => `${r.name} -> 404`));
  // Bob's cancel did nothing: Alice's service still runs.
  assert.equal((await alice.get(target.execution)).state, 'executing');
  for (const path of ['/api/v1/executions', '/jobs', '/api/v1/teams', '/api/v1/projects', '/api/v1/budgets', '/api/v1/costs?groupBy=project']) {
    const list = await bob.request('GET', path);
    assert.equal(list.status, 200, path);
    for (const id of [target.execution, target.team, target.project]) assert.ok(!JSON.stringify(list.body).includes(id), `${path} shows Bob nothing of Alice's`);
  }
  assert.equal((await bob.request('GET', `/api/v1/executions?project=${target.project}`)).status, 404);
});

test('a viewer of the team reads what the project holds and is refused, with 403 naming the role, what it may not do', async () => {
  const answered: string[] = [];
  const expected: string[] = [];
  for (const row of teamRows()) {
    const needed = ROLE_NEEDED[row.name]!;
    const status = await statusOf(row, vera.token);
    answered.push(`${row.name} -> ${allowed(status) ? 'allowed' : status}`);
    expected.push(`${row.name} -> ${needed === 'viewer' ? 'allowed' : 403}`);
  }
  assert.deepEqual(answered, expected);
  const refused = await vera.request('POST', `/api/v1/instances/${target.execution}/terminal-ticket`);
  assert.deepEqual(refused.body, { error: { code: 'forbidden', message: `this needs the member role or above in project ${target.project} (yours is viewer)` } });
  const listed = await vera.request('GET', '/api/v1/executions');
  assert.ok(listed.body.items.some((e: { id: string }) => e.id === target.execution), "the project's executions are in her list");
  assert.equal((await alice.get(target.execution)).state, 'executing', 'nothing was done to the service');
});

test("a member of the team uses a teammate's instance (terminal, exec, tunnel, cancel) and is refused the admins' operations", async () => {
  const teammates: Target = { ...target, execution: teamServiceId };
  const answered: string[] = [];
  const expected: string[] = [];
  for (const row of teamRows()) {
    const needed = ROLE_NEEDED[row.name]!;
    const status = await statusOf(row, max.token, teammates);
    answered.push(`${row.name} -> ${allowed(status) ? 'allowed' : status}`);
    expected.push(`${row.name} -> ${RANK[needed] <= RANK.member ? 'allowed' : 403}`);
  }
  assert.deepEqual(answered, expected);
  assert.equal((await alice.waitFinal(teamServiceId, 60_000)).state, 'cancelled', "his cancel reached Alice's second service");
  assert.equal((await alice.get(target.execution)).state, 'executing', 'and only that one');
});

test("Bob cannot read, use, replace or delete Alice's secrets, nor her project's", async () => {
  const list = await bob.request('GET', '/api/v1/secrets');
  assert.equal(list.status, 200);
  assert.deepEqual(list.body.items, [], "Bob's secrets are his own: none");
  const del = await bob.request('DELETE', `/api/v1/secrets/${SECRET_NAME}`);
  assert.equal(del.status, 404);
  for (const name of [SECRET_NAME, 'WEB_KEY']) {
    const use = await bob.request('POST', '/api/v1/executions', { kind: 'shell', command: 'true', secrets: [name] });
    assert.equal(use.status, 400, `Bob cannot name ${name} in his request`);
    assert.match(use.body.error.message, new RegExp(`no secret named "${name}"`));
  }

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
  assert.equal((await alice.get(target.execution)).state, 'executing');
});

test("Alice's run token works only where the document lists it, for its own execution only; everywhere else it is 401", async () => {
  const guarded = rows.filter((r) => r.access !== 'public');
  const accepting = guarded.filter((r) => r.acceptsRunToken);
  assert.deepEqual(accepting.map((r) => r.name), ['GET /api/v1/executions/{id}', 'GET /api/v1/executions/{id}/cost']);
  const answered: string[] = [];
  for (const row of guarded) answered.push(`${row.name} -> ${await statusOf(row, runToken)}`);
  assert.deepEqual(answered, guarded.map((r) => `${r.name} -> ${r.acceptsRunToken ? 200 : 401}`));
  // Another execution, even one of Alice's own, is not found for it.
  const sibling = await alice.submit({ kind: 'shell', command: 'true' });
  for (const row of accepting) assert.equal(await statusOf(row, runToken, { ...target, execution: sibling.id }), 404, row.name);
  assert.equal((await alice.get(target.execution)).state, 'executing', 'nothing was done with it');
});

test("web's project tokens work only where the document lists them, in web only, with their role; everywhere else they are 401", async () => {
  const guarded = rows.filter((r) => r.access !== 'public');
  const accepting = guarded.filter((r) => r.acceptsProjectToken);
  assert.ok(accepting.some((r) => r.name === 'POST /api/v1/executions') && accepting.some((r) => r.name === 'GET /api/v1/executions/{id}'), 'the executions API takes them');
  // A fresh service of web for the tokens, since the member token may end it.
  const fresh: Target = { ...target, execution: await startService(alice, target.project) };
  const ordered = [...guarded.filter((r) => !ENDS_THE_INSTANCE.has(r.name)), ...guarded.filter((r) => ENDS_THE_INSTANCE.has(r.name))];
  for (const [token, role] of [[viewerToken, 'viewer'], [memberToken, 'member']] as const) {
    const answered: string[] = [];
    const expected: string[] = [];
    for (const row of ordered) {
      const status = await statusOf(row, token, fresh);
      const needed = ROLE_NEEDED[row.name] ?? 'viewer';
      answered.push(`${row.name} -> ${allowed(status) ? 'allowed' : status}`);
      expected.push(`${row.name} -> ${!row.acceptsProjectToken ? 401 : row.name === 'POST /api/v1/executions' ? (role === 'member' ? 'allowed' : 403) : RANK[needed] <= RANK[role] ? 'allowed' : 403}`);
    }
    assert.deepEqual(answered, expected, `the ${role} token`);
  }
  // Outside web it sees nothing: Alice's own project, Bob's.
  const personal = await alice.submit({ kind: 'shell', command: 'true' });
  const bobs = await bob.submit({ kind: 'shell', command: 'true' });
  for (const id of [personal.id, bobs.id]) assert.equal((await paddock.admin.withToken(memberToken).request('GET', `/api/v1/executions/${id}`)).status, 404);
  const made = await paddock.admin.withToken(memberToken).submit({ kind: 'shell', command: 'true' });
  assert.equal(made['projectId'], target.project, 'what it creates is in web');
  const listed = await paddock.admin.withToken(viewerToken).request('GET', '/api/v1/executions?limit=500');
  assert.ok(listed.body.items.length > 0 && listed.body.items.every((e: { projectId: string }) => e.projectId === target.project), 'and all it lists');
  assert.equal((await alice.get(target.execution)).state, 'executing', "Alice's first service was never touched");
});
