// The REST API as callers and the other services see it: buildApp wired as startGateway wires it, on a
// real PostgreSQL and nats-server, driven with app.inject().
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { Bus, topics, type Subscription } from '@paddock/bus';
import { ExecutionAccount, ExecutionKind, ExecutionRequested, ExecutionState, NetworkMode, type ExecutionStateChanged } from '@paddock/proto';
import { buildApp } from '../src/app.js';
import { ExecutionService } from '../src/executions/executionService.js';
import { ExecutionStore } from '../src/executions/executionStore.js';
import { projectStates } from '../src/executions/projection.js';
import { HealthWatch } from '../src/health.js';
import { SecretBox, SpecKey, unsealSpec } from '@paddock/secrets';
import { BrokerDirectory } from '../src/instances/brokers.js';
import { TicketStore } from '../src/instances/ticketStore.js';
import { SecretStore } from '../src/secrets/secretStore.js';
import { TenancyStore } from '../src/tenancy/tenancyStore.js';
import { UserStore, type User } from '../src/users/userStore.js';
import { startTelemetry, type Telemetry } from '@paddock/telemetry';
import { loadServiceTls } from '@paddock/plane';
import { startTestStack, type TestStack } from './testStack.js';

let stack: TestStack;
let bus: Bus;
/** The other side of the bus: what the scheduler reads and publishes. */
let scheduler: Bus;
let projection: Subscription;
let app: FastifyInstance;
let deps: Omit<Parameters<typeof buildApp>[0], 'config'>;
let admin: { user: User; token: string };
let alice: { user: User; token: string };
let bob: { user: User; token: string };

let secretBox: SecretBox;
/** What the gateway seals specs with, for the broker; not the secrets' key. */
const specKey = SpecKey.withKey(randomBytes(32));
let telemetry: Telemetry;

before(async () => {
  stack = await startTestStack();
  const config = stack.config();
  const users = new UserStore(stack.pool);
  admin = await users.create('admin', true);
  alice = await users.create('alice');
  bob = await users.create('bob');
  bus = await Bus.connect({ url: config.natsUrl, name: 'paddock-gateway', log: stack.log });
  scheduler = await Bus.connect({ url: config.natsUrl, name: 'test-scheduler', log: stack.log });
  const store = new ExecutionStore(stack.pool);
  secretBox = SecretBox.withKey(randomBytes(32));
  const secrets = new SecretStore(stack.pool, secretBox);
  const executions = new ExecutionService(store, secrets, specKey, bus, config, stack.log);
  telemetry = startTelemetry({ service: 'paddock-gateway', otlpEndpoint: undefined });
  deps = {
    log: stack.log,
    users,
    executions,
    store,
    secrets,
    brokers: new BrokerDirectory(bus, await loadServiceTls(config.tls)),
    tickets: new TicketStore(stack.pool),
    bus,
    health: new HealthWatch(stack.pool, bus),
    metrics: telemetry.metrics,
    scrapeMetrics: () => telemetry.metricsHandler(),
  };
  projection = await projectStates(bus, store);
  app = await buildApp({ config, ...deps });
});

after(async () => {
  await app?.close();
  await projection?.stop();
  await bus?.drain();
  await scheduler?.drain();
  await stack?.stop();
  await telemetry?.shutdown();
});

interface View {
  id: string;
  owner: string;
  projectId: string;
  teamId: string;
  kind: string;
  state: string;
  exitCode: number | null;
  error: string | null;
  image: string;
  command: string | null;
  script: string | null;
  files: string[];
  env: string[];
  resources: { cpus: number; memoryMb: number };
  timeoutS: number;
  network: string;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

function call(method: 'GET' | 'POST', url: string, token: string | null, payload?: unknown): Promise<LightMyRequestResponse> {
  return app.inject({ method, url, headers: token ? { authorization: `Bearer ${token}` } : {}, ...(payload === undefined ? {} : { payload: payload as object }) });
}

function errorOf(r: LightMyRequestResponse): { code: string; message: string } {
  const body = r.json<{ error: { code: string; message: string } }>();
  assert.deepEqual(Object.keys(body), ['error'], r.body);
  assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message'], r.body);
  return body.error;
}

async function submit(token: string, body: object): Promise<View> {
  const r = await call('POST', '/api/v1/executions', token, body);
  assert.equal(r.statusCode, 201, r.body);
  return r.json<View>();
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function requestedOnStream(id: string) {
  const m = await scheduler.jsm.streams.getMessage('PADDOCK_EXECUTIONS', { last_by_subj: topics.executionRequested.subject(id) });
  return { message: ExecutionRequested.decode(m.data), msgId: m.header.get('Nats-Msg-Id'), subject: m.subject };
}

test('POST /api/v1/executions stores the request, answers 201 at once and publishes it on JetStream', async () => {
  const ex = await submit(alice.token, {
    kind: 'python',
    script: 'print(open("data/in.txt").read())',
    files: { 'data/in.txt': 'hello', 'b.txt': 'b' },
    env: { API_KEY: 'secret-value', MODE: 'test' },
    resources: { cpus: 0.5 },
    network: 'bridge',
  });
  assert.match(ex.id, /^[0-9a-z]{22}$/);
  assert.equal(ex.owner, alice.user.id);
  const personal = (await new TenancyStore(stack.pool).personalProjectOf(alice.user.id))!;
  assert.equal(ex.projectId, personal.id, "a request that names no project goes to the caller's personal one");
  assert.equal(ex.teamId, personal.teamId);
  assert.equal(ex.kind, 'python');
  assert.equal(ex.state, 'queued');
  assert.equal(ex.command, null);
  assert.deepEqual(ex.files, ['b.txt', 'data/in.txt'], 'paths only, sorted');
  assert.deepEqual(ex.env, ['API_KEY', 'MODE'], 'names only');
  assert.equal(ex.image, 'paddock/base:latest');
  assert.deepEqual(ex.resources, { cpus: 0.5, memoryMb: 1024, diskMb: 0 });
  assert.equal(ex.timeoutS, 3600);
  assert.equal(ex.network, 'bridge');
  assert.equal(ex.exitCode, null);
  assert.equal(ex.startedAt, null);
  assert.ok(Math.abs(Date.parse(ex.createdAt) - Date.now()) < 60_000);

  const { message, msgId, subject } = await requestedOnStream(ex.id);
  assert.equal(subject, `paddock.v1.execution.${ex.id}.requested`);
  assert.equal(msgId, `${ex.id}.requested`, 'deduplicated by id');
  assert.equal(message.executionId, ex.id);
  assert.equal(message.ownerId, alice.user.id);
  assert.equal(message.requestedAtMs, Date.parse(ex.createdAt));
  const spec = message.spec!;
  assert.equal(spec.kind, ExecutionKind.EXECUTION_KIND_PYTHON);
  assert.equal(spec.script, 'print(open("data/in.txt").read())');
  assert.equal(Buffer.from(spec.files['data/in.txt']!).toString(), 'hello');
  assert.deepEqual(spec.env, {}, 'env values travel sealed, not in clear');
  const { PADDOCK_RUN_TOKEN: runToken, PADDOCK_LLM_KEY: llmKey, PADDOCK_LLM_URL: llmUrl, OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY, OPENAI_BASE_URL, ANTHROPIC_BASE_URL, GOOGLE_GEMINI_BASE_URL, ...env } =
    unsealSpec(spec, specKey, ex.id).env;
  assert.deepEqual(env, { API_KEY: 'secret-value', MODE: 'test' }, 'the broker gets the values');
  assert.match(runToken ?? '', new RegExp(`^prt_${ex.id}_`), "and the execution's run token beside them");
  assert.match(llmKey ?? '', /^plk_[A-Za-z0-9_-]{32}$/, 'and a run key for the metering proxy');
  assert.equal(llmUrl, 'http://127.0.0.1:4000', "and the metering proxy's loopback address");
  assert.deepEqual(
    [OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY, OPENAI_BASE_URL, ANTHROPIC_BASE_URL, GOOGLE_GEMINI_BASE_URL],
    [undefined, undefined, undefined, undefined, undefined, undefined],
    'a job with no provider key gets no provider wiring',
  );
  const accountMessage = await scheduler.jsm.streams.getMessage('PADDOCK_EXECUTIONS', { last_by_subj: topics.executionAccount.subject(ex.id) });
  assert.equal(accountMessage.header.get('Nats-Msg-Id'), `${ex.id}.account`);
  const account = ExecutionAccount.decode(accountMessage.data);
  assert.ok(accountMessage.seq > (await scheduler.jsm.streams.getMessage('PADDOCK_EXECUTIONS', { last_by_subj: topics.executionRequested.subject(ex.id) })).seq, 'the account comes after the request');
  assert.deepEqual(
    { ...account, sealedLlmCredentials: account.sealedLlmCredentials.length },
    { executionId: ex.id, ownerId: alice.user.id, projectId: personal.id, teamId: personal.teamId, workflowId: '', llmKeySha256: createHash('sha256').update(llmKey!).digest('hex'), sealedLlmCredentials: 0, requestedAtMs: Date.parse(ex.createdAt) },
    'billing learns whom to bill and the run key, and no provider key, since there is none',
  );
  assert.equal(spec.cpuMillis, 500);
  assert.equal(spec.memoryBytes, 1024 * 1024 * 1024);
  assert.equal(spec.timeoutMs, 3_600_000);
  assert.equal(spec.network, NetworkMode.NETWORK_MODE_BRIDGE);

  const got = await call('GET', `/api/v1/executions/${ex.id}`, alice.token);
  assert.equal(got.statusCode, 200);
  assert.deepEqual(got.json(), ex);
  assert.ok(!got.body.includes('secret-value'), 'env values are never shown back');
  const listed = (await call('GET', '/api/v1/executions', alice.token)).json<{ items: View[] }>();
  assert.ok(listed.items.some((i) => i.id === ex.id));
  const published = await stack.pool.query('SELECT published FROM executions WHERE id = $1', [ex.id]);
  assert.equal(published.rows[0].published, true, 'the outbox has nothing left to do for it');
});

test('POST /schedule, the first API, takes {command} or {script} and publishes the same way', async () => {
  const r = await call('POST', '/schedule', alice.token, { command: 'echo compat', timeoutS: 30 });
  assert.equal(r.statusCode, 201, r.body);
  const ex = r.json<View>();
  assert.equal(ex.kind, 'shell');
  assert.equal(ex.timeoutS, 30);
  const { message } = await requestedOnStream(ex.id);
  assert.equal(message.spec?.command, 'echo compat');
  assert.equal(message.spec?.timeoutMs, 30_000);

  const both = await call('POST', '/schedule', alice.token, { command: 'a', script: 'b' });
  assert.equal(both.statusCode, 400);
  assert.deepEqual(errorOf(both), { code: 'invalid_request', message: 'send exactly one of "command", "script" or "prompt"' });
  const prompt = await call('POST', '/schedule', alice.token, { prompt: 'write a poem' });
  assert.equal(prompt.statusCode, 201, prompt.body);
  const agent = prompt.json<View & { runtime: string; prompt: string }>();
  assert.equal(agent.kind, 'agent');
  assert.equal(agent.runtime, 'task', 'the default runtime');
  assert.equal((await requestedOnStream(agent.id)).message.spec?.agent?.prompt, 'write a poem');
});

function stateEvent(ex: View, state: ExecutionState, version: number, extra: Partial<ExecutionStateChanged> = {}): ExecutionStateChanged {
  return { executionId: ex.id, ownerId: ex.owner, state, version, atMs: Date.now(), reason: '', brokerId: 'b1', startedAtMs: 0, finishedAtMs: 0, ...extra };
}

async function publishState(e: ExecutionStateChanged): Promise<void> {
  await scheduler.publish(topics.executionState, e.executionId, e);
}

async function stateOf(ex: View): Promise<View> {
  const r = await call('GET', `/api/v1/executions/${ex.id}`, alice.token);
  assert.equal(r.statusCode, 200);
  return r.json<View>();
}

/** Waits until the gateway's durable consumer has handled and acked every state event published so far. */
async function projectionCaughtUp(): Promise<void> {
  await until('the projection to catch up', async () => {
    const info = await scheduler.jsm.consumers.info('PADDOCK_EXECUTIONS', 'gateway-state');
    return info.num_pending === 0 && info.num_ack_pending === 0 ? true : undefined;
  });
}

test('the projection follows the scheduler state by state, and ignores an older version that arrives late', async () => {
  const ex = await submit(alice.token, { kind: 'shell', command: 'exit 3' });
  const startedAtMs = Date.parse('2030-01-02T03:04:05.678Z');
  const finishedAtMs = startedAtMs + 1_234;

  await publishState(stateEvent(ex, ExecutionState.EXECUTION_STATE_PROVISIONING, 2));
  await until('provisioning', async () => ((await stateOf(ex)).state === 'provisioning' ? true : undefined));
  await publishState(stateEvent(ex, ExecutionState.EXECUTION_STATE_EXECUTING, 3, { startedAtMs }));
  const executing = await until('executing', async () => {
    const v = await stateOf(ex);
    return v.state === 'executing' ? v : undefined;
  });
  assert.equal(executing.startedAt, '2030-01-02T03:04:05.678Z');
  assert.equal(executing.finishedAt, null);
  await publishState(stateEvent(ex, ExecutionState.EXECUTION_STATE_FAILED, 4, { startedAtMs, finishedAtMs, exitCode: 3, reason: 'the command exited with 3' }));
  const failed = await until('failed', async () => {
    const v = await stateOf(ex);
    return v.state === 'failed' ? v : undefined;
  });

  // Late and repeated events: a redelivered "executing" and "provisioning" after the end.
  await publishState(stateEvent(ex, ExecutionState.EXECUTION_STATE_EXECUTING, 3, { startedAtMs }));
  await publishState(stateEvent(ex, ExecutionState.EXECUTION_STATE_PROVISIONING, 2));
  await publishState(stateEvent(ex, ExecutionState.EXECUTION_STATE_FAILED, 4, { startedAtMs, finishedAtMs, exitCode: 3, reason: 'the command exited with 3' }));
  await projectionCaughtUp();
  const final = await stateOf(ex);
  assert.deepEqual(final, failed);
  assert.equal(final.exitCode, 3);
  assert.equal(final.error, 'the command exited with 3');
  assert.equal(final.startedAt, '2030-01-02T03:04:05.678Z');
  assert.equal(final.finishedAt, '2030-01-02T03:04:06.912Z');

  const cancel = await call('POST', `/api/v1/executions/${ex.id}/cancel`, alice.token);
  assert.equal(cancel.statusCode, 409, 'a final execution cannot be cancelled');
  assert.deepEqual(errorOf(cancel), { code: 'conflict', message: `execution ${ex.id} is already failed` });
});

test('events that arrive out of order leave the newest state, whatever came last', async () => {
  const ex = await submit(alice.token, { kind: 'shell', command: 'true' });
  await publishState(stateEvent(ex, ExecutionState.EXECUTION_STATE_COMPLETED, 4, { exitCode: 0, startedAtMs: 1_000, finishedAtMs: 2_000 }));
  await publishState(stateEvent(ex, ExecutionState.EXECUTION_STATE_EXECUTING, 3, { startedAtMs: 1_000 }));
  await publishState(stateEvent(ex, ExecutionState.EXECUTION_STATE_PROVISIONING, 2));
  await projectionCaughtUp();
  const v = await stateOf(ex);
  assert.equal(v.state, 'completed');
  assert.equal(v.exitCode, 0);
  assert.equal(v.finishedAt, new Date(2_000).toISOString());
});

test('a cancel of a running execution is put on the bus and answered 202', async () => {
  const ex = await submit(alice.token, { kind: 'shell', command: 'sleep 100' });
  const r = await call('POST', `/api/v1/executions/${ex.id}/cancel`, alice.token);
  assert.equal(r.statusCode, 202, r.body);
  assert.equal(r.json<View>().id, ex.id);
  const m = await scheduler.jsm.streams.getMessage('PADDOCK_EXECUTIONS', { last_by_subj: topics.executionCancel.subject(ex.id) });
  const cancel = topics.executionCancel.type.decode(m.data);
  assert.equal(cancel.executionId, ex.id);
  assert.equal(cancel.requestedBy, alice.user.id);
});

// The routes the README lists: the document must have at least these.
const README_ROUTES = [
  'post /api/v1/executions',
  'get /api/v1/executions',
  'get /api/v1/executions/{id}',
  'post /api/v1/executions/{id}/cancel',
  'get /api/v1/executions/{id}/logs',
  'get /api/v1/executions/{id}/artifacts.zip',
  'post /api/v1/users',
  'get /api/v1/users/me',
  'get /healthz',
  'get /metrics',
  'post /schedule',
  'get /status/{id}',
  'get /jobs',
  'post /cancel/{id}',
  'get /download/{id}',
  'get /api/v1/instances/{id}/ssh',
  'post /api/v1/instances/{id}/terminal-ticket',
  'post /api/v1/instances/{id}/exec',
  'get /api/v1/instances/{id}/tunnel',
  'get /terminal/{id}',
  'get /api/v1/teams',
  'post /api/v1/teams',
  'get /api/v1/teams/{id}',
  'delete /api/v1/teams/{id}',
  'post /api/v1/teams/{id}/members',
  'patch /api/v1/teams/{id}/members/{userId}',
  'delete /api/v1/teams/{id}/members/{userId}',
  'get /api/v1/projects',
  'post /api/v1/projects',
  'get /api/v1/projects/{id}',
  'patch /api/v1/projects/{id}',
  'delete /api/v1/projects/{id}',
  'get /api/v1/projects/{id}/tokens',
  'post /api/v1/projects/{id}/tokens',
  'delete /api/v1/projects/{id}/tokens/{tokenId}',
  'put /api/v1/projects/{id}/secrets/{name}',
  'get /api/v1/projects/{id}/secrets',
  'delete /api/v1/projects/{id}/secrets/{name}',
];

/** Every route the app serves, as "method /open/{api}/path", read from Fastify's own route tree. */
function servedRoutes(): string[] {
  const parents: string[] = [];
  const routes: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const m = /^((?:│   | {4})*)[├└]── (\S+)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length / 4;
    const path = (depth > 0 ? parents[depth - 1]! : '') + m[2]!;
    parents.length = depth;
    parents.push(path);
    for (const method of m[3]?.split(', ') ?? []) {
      if (method !== 'HEAD') routes.push(`${method.toLowerCase()} ${path.replace(/:(\w+)/g, '{$1}')}`);
    }
  }
  return routes;
}

interface Operation {
  parameters?: { in: string; name: string; required?: boolean; schema: { type?: string; enum?: string[] } }[];
  security?: Record<string, string[]>[];
  requestBody?: { content: Record<string, { schema: { type: string; properties: Record<string, unknown>; required?: string[]; additionalProperties?: boolean } }> };
  responses: Record<string, { content?: Record<string, { schema: { type?: string; properties?: Record<string, unknown> } }> }>;
}

test('the OpenAPI document, served without a token, lists every route with its schemas', async () => {
  const r = await call('GET', '/api/v1/openapi.json', null);
  assert.equal(r.statusCode, 200);
  const doc = r.json<{ openapi: string; paths: Record<string, Record<string, Operation>>; components: { securitySchemes: Record<string, object> } }>();
  assert.equal(doc.openapi, '3.0.3');
  const schemes = doc.components.securitySchemes;
  assert.deepEqual(Object.keys(schemes).sort(), ['bearer', 'projectToken', 'runToken', 'terminalTicket']);
  assert.deepEqual({ ...schemes['bearer'], description: undefined }, { type: 'http', scheme: 'bearer', description: undefined });
  assert.deepEqual({ ...schemes['terminalTicket'], description: undefined }, { type: 'apiKey', in: 'query', name: 'ticket', description: undefined });

  const listed = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`));
  const served = servedRoutes();
  assert.ok(served.length >= README_ROUTES.length, `the route tree was read: ${served.join(', ')}`);
  for (const route of README_ROUTES) assert.ok(served.includes(route), `${route} is served`);
  assert.deepEqual(listed.sort(), served.filter((r) => !undocumented(r)).sort(), 'every route, and nothing else');

  for (const route of listed) {
    const [method, path] = route.split(' ') as [string, string];
    const op = doc.paths[path]![method]!;
    const where = `${method.toUpperCase()} ${path}`;
    if (path.includes('{id}')) {
      const id = op.parameters?.find((p) => p.in === 'path' && p.name === 'id');
      assert.ok(id?.required, `${where} declares its id parameter`);
      assert.equal(id.schema.type, 'string');
    }
    // A WebSocket route answers 101 when it opens; every other route one 2xx.
    const success = Object.keys(op.responses).filter((s) => s.startsWith('2') || s === '101');
    assert.equal(success.length, 1, `${where} declares its answer: ${Object.keys(op.responses).join(', ')}`);
    if (path !== '/healthz') {
      for (const status of ['4XX', '5XX']) {
        // Under whichever media type: the test below is about which one.
        const [media] = Object.values(op.responses[status]?.content ?? {});
        assert.deepEqual(Object.keys(media?.schema.properties ?? {}), ['error'], `${where} declares its ${status} error body`);
      }
    }
  }

  const create = doc.paths['/api/v1/executions']!['post']!;
  const body = create.requestBody!.content['application/json']!.schema;
  assert.deepEqual(body.required, ['kind']);
  assert.equal(body.additionalProperties, false);
  for (const field of ['command', 'env', 'files', 'image', 'kind', 'network', 'resources', 'script', 'timeoutS']) {
    assert.ok(body.properties[field], `the request body declares ${field}`);
  }
  const kinds = (body.properties['kind'] as { enum: string[] }).enum;
  assert.ok(kinds.includes('shell') && kinds.includes('python'), kinds.join());
  const created = create.responses['201']!.content!['application/json']!.schema;
  for (const field of ['id', 'owner', 'state', 'exitCode', 'createdAt', 'startedAt', 'finishedAt', 'resources']) {
    assert.ok(created.properties?.[field], `the 201 answer declares ${field}`);
  }

  const list = doc.paths['/api/v1/executions']!['get']!;
  assert.deepEqual(list.parameters?.filter((p) => p.in === 'query').map((p) => p.name).sort(), ['cursor', 'limit', 'project', 'state']);
  const logs = doc.paths['/api/v1/executions/{id}/logs']!['get']!;
  assert.deepEqual(logs.parameters?.find((p) => p.name === 'follow')?.schema.enum, ['true', 'false']);
  assert.ok(logs.responses['200']?.content?.['text/plain'], 'logs are text/plain');
  assert.ok(doc.paths['/api/v1/executions/{id}/artifacts.zip']!['get']!.responses['200']?.content?.['application/zip'], 'artifacts are a ZIP');
  const users = doc.paths['/api/v1/users']!['post']!.requestBody!.content['application/json']!.schema;
  assert.deepEqual(users.required, ['name']);

  // Who may call what, as the authentication hook enforces it.
  assert.deepEqual(doc.paths['/healthz']!['get']!.security, [], 'health is public');
  assert.deepEqual(doc.paths['/api/v1/executions/{id}']!['get']!.security, [{ bearer: [] }, { runToken: [] }, { projectToken: [] }], 'a run reads its own execution');
  const runTokenRoutes = listed.filter((route) => {
    const [method, path] = route.split(' ') as [string, string];
    return doc.paths[path]![method]!.security?.some((s) => 'runToken' in s);
  });
  assert.deepEqual(runTokenRoutes, ['get /api/v1/executions/{id}'], 'the run token is accepted there and nowhere else');
  assert.deepEqual(doc.paths['/api/v1/executions']!['get']!.security, [{ bearer: [] }, { projectToken: [] }]);
  const projectTokenRoutes = listed.filter((route) => {
    const [method, path] = route.split(' ') as [string, string];
    return doc.paths[path]![method]!.security?.some((s) => 'projectToken' in s);
  });
  assert.deepEqual(
    projectTokenRoutes.sort(),
    [
      'get /api/v1/executions',
      'get /api/v1/executions/{id}',
      'get /api/v1/executions/{id}/artifacts.zip',
      'get /api/v1/executions/{id}/logs',
      'get /api/v1/projects',
      'get /api/v1/projects/{id}',
      'post /api/v1/executions',
      'post /api/v1/executions/{id}/cancel',
    ],
    'a project token is accepted on the executions API and on its project, and nowhere else',
  );
  const key = create.parameters?.find((p) => p.in === 'header' && p.name === 'idempotency-key');
  assert.ok(key && !key.required, 'POST /api/v1/executions takes an optional Idempotency-Key');
});

test('the WebSocket routes are in the OpenAPI document as GETs that ask for the upgrade', async () => {
  const doc = (await call('GET', '/api/v1/openapi.json', null)).json<{ paths: Record<string, Record<string, Operation>> }>();
  for (const [path, query, refusals] of [
    ['/api/v1/instances/{id}/tunnel', ['port'], ['400', '401', '404', '409', '426']],
    ['/terminal/{id}', ['cols', 'rows'], ['400', '401', '404', '409', '426']],
  ] as const) {
    const op = doc.paths[path]?.['get'];
    assert.ok(op, `${path} is described`);
    assert.deepEqual(Object.keys(op.responses).filter((s) => s.startsWith('1') || s.startsWith('2')), ['101'], `${path} answers 101 when it opens`);
    for (const status of refusals) assert.ok(op.responses[status], `${path} says when it answers ${status}`);
    const headers = op.parameters?.filter((p) => p.in === 'header') ?? [];
    assert.deepEqual(
      headers.map((p) => [p.name, p.required, p.schema.enum]),
      [['connection', true, ['Upgrade']], ['upgrade', true, ['websocket']], ['sec-websocket-key', true, undefined], ['sec-websocket-version', true, ['13']]],
      `${path} describes the handshake`,
    );
    assert.deepEqual(op.parameters?.filter((p) => p.in === 'query').map((p) => p.name).sort(), [...query], `${path}: its query (the ticket is a security scheme)`);
    assert.deepEqual(op.security, [{ bearer: [] }, { terminalTicket: [] }], `${path}: a token or a one-time ticket`);
  }
  const port = doc.paths['/api/v1/instances/{id}/tunnel']!['get']!.parameters!.find((p) => p.name === 'port')!;
  assert.equal(port.required, true);
});

/** Left out of the API document on purpose: the document itself, and the web pages and their assets. */
function undocumented(route: string): boolean {
  return route === 'get /api/v1/openapi.json' || route.startsWith('get /ui/');
}

test(
  'the OpenAPI document says errors are JSON on every route, and what GET /download/{id} answers',
  async () => {
    const doc = (await call('GET', '/api/v1/openapi.json', null)).json<{ paths: Record<string, Record<string, Operation>> }>();
    for (const route of servedRoutes().filter((r) => r !== 'get /healthz' && !undocumented(r))) {
      const [method, path] = route.split(' ') as [string, string];
      const op = doc.paths[path]![method]!;
      for (const status of ['4XX', '5XX']) {
        assert.deepEqual(Object.keys(op.responses[status]?.content ?? {}), ['application/json'], `${route} ${status}`);
      }
    }
    assert.ok(doc.paths['/download/{id}']!['get']!.responses['200']?.content?.['application/zip'], 'GET /download/{id} answers a ZIP');
    const early = await call('GET', '/api/v1/executions/nonexistent/logs', alice.token);
    assert.match(String(early.headers['content-type']), /^application\/json/, 'what the gateway really sends');
  },
);

test('validation errors answer 400 {error: {code: "invalid_request", message}} naming the field and what to fix', async () => {
  const cases: [body: unknown, message: string][] = [
    [{}, "body must have required property 'kind'"],
    [{ kind: 'ruby', command: 'x' }, 'body.kind must be one of "shell", "python", "agent"'],
    [{ kind: 'shell', command: 'x', extra: 1 }, 'body has an unknown field "extra"'],
    [{ kind: 'shell', command: 'x', resources: { cpus: '2' } }, 'body.resources.cpus must be number'],
    [{ kind: 'shell', command: 'x', resources: { gpus: 1 } }, 'body.resources has an unknown field "gpus"'],
    [{ kind: 'shell', command: 'x', timeoutS: 0 }, 'body.timeoutS must be >= 1'],
    [{ kind: 'shell', command: 'x', timeoutS: 1.5 }, 'body.timeoutS must be integer'],
    [{ kind: 'shell', command: '' }, 'body.command must NOT have fewer than 1 characters'],
    [{ kind: 'shell', command: 'x', network: 'overlay' }, 'body.network must be one of "none", "bridge"'],
    [{ kind: 'shell', command: 'x', files: { 'a.txt': 1 } }, 'body.files.a.txt must be string'],
    [{ kind: 'ruby', timeoutS: '5' }, 'body.kind must be one of "shell", "python", "agent"; body.timeoutS must be integer'],
    // Checked after the schema, by the gateway itself, in the same shape.
    [{ kind: 'shell' }, 'a shell execution needs "command"'],
    [{ kind: 'shell', command: 'x', files: { 'a/../../etc/passwd': 'x' } }, 'files["a/../../etc/passwd"]: the path may not contain ".." (it must stay inside /workspace)'],
    [{ kind: 'shell', command: 'x', resources: { cpus: 64 } }, 'resources.cpus may be at most 16'],
  ];
  const before = (await stack.pool.query('SELECT count(*)::int AS n FROM executions')).rows[0].n as number;
  for (const [body, message] of cases) {
    const r = await call('POST', '/api/v1/executions', alice.token, body);
    assert.equal(r.statusCode, 400, `${JSON.stringify(body)}: ${r.body}`);
    assert.deepEqual(errorOf(r), { code: 'invalid_request', message }, JSON.stringify(body));
  }
  const afterCount = (await stack.pool.query('SELECT count(*)::int AS n FROM executions')).rows[0].n as number;
  assert.equal(afterCount, before, 'a refused request leaves no row behind');

  const query: [url: string, message: string][] = [
    ['/api/v1/executions?limit=ten', 'querystring.limit must match pattern "^[0-9]{1,4}$"'],
    ['/api/v1/executions?limit=0', 'limit must be between 1 and 500'],
    ['/api/v1/executions?state=running', 'querystring.state must be one of "queued", "provisioning", "executing", "completed", "failed", "cancelled"'],
    ['/api/v1/executions?sort=asc', 'querystring has an unknown field "sort"'],
    [`/api/v1/executions/${'x'.repeat(65)}`, 'params.id must NOT have more than 64 characters'],
    ['/api/v1/executions/abc/logs?follow=yes', 'querystring.follow must be one of "true", "false"'],
  ];
  for (const [url, message] of query) {
    const r = await call('GET', url, alice.token);
    assert.equal(r.statusCode, 400, `${url}: ${r.body}`);
    assert.deepEqual(errorOf(r), { code: 'invalid_request', message }, url);
  }
  const user = await call('POST', '/api/v1/users', admin.token, { name: 7 });
  assert.deepEqual(errorOf(user), { code: 'invalid_request', message: 'body.name must be string' });
});

test(
  'a refused environment variable name is named in the message',
  async () => {
    const r = await call('POST', '/api/v1/executions', alice.token, { kind: 'shell', command: 'x', env: { '1BAD': 'v' } });
    assert.equal(r.statusCode, 400);
    assert.match(errorOf(r).message, /1BAD/);
  },
);

test('other errors keep the same shape with a stable code', async () => {
  const noToken = await call('GET', '/api/v1/executions', null);
  assert.equal(noToken.statusCode, 401);
  assert.equal(errorOf(noToken).code, 'unauthorized');
  const badToken = await call('GET', '/api/v1/executions', 'pdk_nope');
  assert.equal(badToken.statusCode, 401);
  assert.deepEqual(errorOf(badToken), { code: 'unauthorized', message: 'the bearer token is not valid' });

  const notJson = await app.inject({ method: 'POST', url: '/api/v1/executions', headers: { authorization: `Bearer ${alice.token}`, 'content-type': 'application/json' }, payload: '{"kind":' });
  assert.equal(notJson.statusCode, 400);
  assert.equal(errorOf(notJson).code, 'invalid_json');
  const text = await app.inject({ method: 'POST', url: '/api/v1/executions', headers: { authorization: `Bearer ${alice.token}`, 'content-type': 'text/csv' }, payload: 'a,b' });
  assert.equal(text.statusCode, 415);
  assert.equal(errorOf(text).code, 'unsupported_media_type');

  const route = await call('GET', '/api/v1/nothing-here?x=1', null);
  assert.equal(route.statusCode, 404);
  assert.deepEqual(errorOf(route), { code: 'not_found', message: 'no route GET /api/v1/nothing-here' });

  const forbidden = await call('POST', '/api/v1/users', alice.token, { name: 'mallory' });
  assert.equal(forbidden.statusCode, 403);
  assert.equal(errorOf(forbidden).code, 'forbidden');

  const ex = await submit(alice.token, { kind: 'shell', command: 'true' });
  const hidden = await call('GET', `/api/v1/executions/${ex.id}`, bob.token);
  assert.equal(hidden.statusCode, 404, "another user's execution does not exist for bob");
  assert.deepEqual(errorOf(hidden), { code: 'not_found', message: `execution ${ex.id} not found` });
  assert.equal((await call('GET', `/api/v1/executions/${ex.id}`, admin.token)).statusCode, 200, 'the admin sees it');
  const early = await call('GET', `/api/v1/executions/${ex.id}/artifacts.zip`, alice.token);
  assert.equal(early.statusCode, 409);
  assert.equal(errorOf(early).code, 'conflict');
});

test('a body over the limit answers 413 body_too_large with the limit in the message', async () => {
  const small = await buildApp({ config: stack.config({ PADDOCK_BODY_LIMIT_BYTES: '1024' }), ...deps });
  try {
    const r = await small.inject({
      method: 'POST',
      url: '/api/v1/executions',
      headers: { authorization: `Bearer ${alice.token}`, 'content-type': 'application/json' },
      payload: JSON.stringify({ kind: 'shell', command: 'x'.repeat(2000) }),
    });
    assert.equal(r.statusCode, 413);
    const error = r.json<{ error: { code: string; message: string } }>().error;
    assert.deepEqual(error, { code: 'body_too_large', message: 'request body is larger than the 1024 bytes allowed' });
  } finally {
    await small.close();
  }
});

test("/metrics counts every user's executions, so only the admin reads it: no token 401, a user 403, the admin 200", async () => {
  const anonymous = await call('GET', '/metrics', null);
  assert.equal(anonymous.statusCode, 401);
  assert.equal(errorOf(anonymous).code, 'unauthorized');
  const user = await call('GET', '/metrics', alice.token);
  assert.equal(user.statusCode, 403);
  assert.equal(errorOf(user).code, 'forbidden');
  assert.doesNotMatch(user.body, /paddock_/, 'nothing of the metrics leaks in the refusal');

  telemetry.metrics.errorOccurred('MetricsRouteTestError');
  const scraped = await call('GET', '/metrics', admin.token);
  assert.equal(scraped.statusCode, 200);
  assert.match(String(scraped.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  assert.match(scraped.body, /^paddock_errors_total\{[^}]*kind="MetricsRouteTestError"[^}]*\} 1$/m, 'the process\'s own metrics, as Prometheus reads them');
  assert.match(scraped.body, /service_name="paddock-gateway"/);
});
