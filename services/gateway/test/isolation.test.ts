// The request's isolation settings at the API: what is refused and why, the container runtime, the
// secrets a request names (and no others), and the run token that lets an execution read its own status.
// buildApp wired as startGateway wires it, on a real PostgreSQL and nats-server, driven with app.inject().
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { Bus, topics } from '@paddock/bus';
import { ContainerRuntime, ExecutionAccount, ExecutionRequested, LlmCredentials } from '@paddock/proto';
import { LlmKey, SecretBox, SpecKey, unsealSpec } from '@paddock/secrets';
import { loadServiceTls } from '@paddock/plane';
import { buildApp } from '../src/app.js';
import { ExecutionService } from '../src/executions/executionService.js';
import { ExecutionStore } from '../src/executions/executionStore.js';
import { HealthWatch } from '../src/health.js';
import { BrokerDirectory } from '../src/instances/brokers.js';
import { TicketStore } from '../src/instances/ticketStore.js';
import { SecretStore } from '../src/secrets/secretStore.js';
import { UserStore, type User } from '../src/users/userStore.js';
import { startTestStack, type TestStack } from './testStack.js';

let stack: TestStack;
let bus: Bus;
let app: FastifyInstance;
let store: ExecutionStore;
let secretBox: SecretBox;
/** What the gateway seals specs with, for the broker; not the secrets' key. */
const specKey = SpecKey.withKey(randomBytes(32));
/** What the gateway seals provider keys with, for billing's metering proxy. */
const llmKey = LlmKey.withKey(randomBytes(32));
/** What every execution's environment holds for the metering proxy, beside its own variables. */
/** What every execution gets for the metering proxy, and what one with an OpenAI key gets besides. */
const LLM_WIRING = ['PADDOCK_LLM_KEY', 'PADDOCK_LLM_URL'];
const OPENAI_WIRING = ['OPENAI_API_KEY', 'OPENAI_BASE_URL'];
let alice: { user: User; token: string };
let bob: { user: User; token: string };

before(async () => {
  stack = await startTestStack();
  const config = stack.config();
  const users = new UserStore(stack.pool);
  alice = await users.create('alice');
  bob = await users.create('bob');
  bus = await Bus.connect({ url: config.natsUrl, name: 'paddock-gateway', log: stack.log });
  store = new ExecutionStore(stack.pool);
  secretBox = SecretBox.withKey(randomBytes(32));
  const secrets = new SecretStore(stack.pool, secretBox);
  app = await buildApp({
    config,
    log: stack.log,
    users,
    executions: new ExecutionService(store, secrets, specKey, bus, config, stack.log, { llmKey }),
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

function call(method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, token: string | null, payload?: unknown): Promise<LightMyRequestResponse> {
  return app.inject({ method, url, headers: token ? { authorization: `Bearer ${token}` } : {}, ...(payload === undefined ? {} : { payload: payload as object }) });
}

function errorOf(r: LightMyRequestResponse): { code: string; message: string } {
  return r.json<{ error: { code: string; message: string } }>().error;
}

async function submit(token: string, body: object): Promise<{ id: string; containerRuntime: string; secrets: string[]; env: string[] }> {
  const r = await call('POST', '/api/v1/executions', token, body);
  assert.equal(r.statusCode, 201, r.body);
  return r.json();
}

/** The spec as the broker opens it, from the request on the stream. */
async function specOnBus(id: string) {
  const m = await bus.jsm.streams.getMessage('PADDOCK_EXECUTIONS', { last_by_subj: topics.executionRequested.subject(id) });
  const { spec } = ExecutionRequested.decode(m.data);
  const a = await bus.jsm.streams.getMessage('PADDOCK_EXECUTIONS', { last_by_subj: topics.executionAccount.subject(id) });
  const account = ExecutionAccount.decode(a.data);
  const providerKeys = account.sealedLlmCredentials.length === 0 ? {} : LlmCredentials.decode(Buffer.from(llmKey.open(account.sealedLlmCredentials, id), 'base64')).keys;
  return { sealed: spec!, opened: unsealSpec(spec!, specKey, id), providerKeys };
}

async function count(ownerId: string): Promise<number> {
  const r = await stack.pool.query<{ n: string }>(`SELECT count(*) AS n FROM executions WHERE owner_id = $1`, [ownerId]);
  return Number(r.rows[0]!.n);
}

test('each way out of the box is refused with a 400 that says what and why, and nothing is stored', async () => {
  const cases: [object, RegExp][] = [
    [{ privileged: true }, /^"privileged": privileged containers are not allowed: every Paddock container runs as uid 1000 with no capabilities/],
    [{ mounts: [{ source: '/', target: '/host' }] }, /^"mounts": host mounts are not allowed: .*Send files with "files"/],
    [{ volumes: ['/:/host'] }, /^"volumes": host mounts are not allowed/],
    [{ binds: ['/var/run/docker.sock:/var/run/docker.sock'] }, /^"binds": host mounts are not allowed/],
    [{ capAdd: ['SYS_ADMIN'] }, /^"capAdd": added capabilities are not allowed/],
    [{ network: 'host' }, /^"network": "host" is not allowed: .*Ask for "none" \(the default for jobs\) or "bridge"/],
    [{ pid: 'host' }, /^"pid": the host's PID namespace is not allowed/],
    [{ devices: ['/dev/kvm'] }, /^"devices": device access is not allowed/],
    [{ securityOpt: ['seccomp=unconfined'] }, /^"securityOpt": security options and the container's user are Paddock's to set/],
  ];
  const before = await count(alice.user.id);
  for (const [extra, message] of cases) {
    const r = await call('POST', '/api/v1/executions', alice.token, { kind: 'shell', command: 'true', ...extra });
    assert.equal(r.statusCode, 400, JSON.stringify(extra));
    const error = errorOf(r);
    assert.equal(error.code, 'not_allowed', JSON.stringify(extra));
    assert.match(error.message, message);
  }
  assert.equal(await count(alice.user.id), before);
  // Any other field the API does not know is still refused as unknown.
  const unknown = await call('POST', '/api/v1/executions', alice.token, { kind: 'shell', command: 'true', colour: 'blue' });
  assert.equal(unknown.statusCode, 400);
  assert.deepEqual(errorOf(unknown), { code: 'invalid_request', message: 'body has an unknown field "colour"' });
});

test('containerRuntime: runc by default, gvisor on request, anything else refused naming the allowed ones', async () => {
  const plain = await submit(alice.token, { kind: 'shell', command: 'true' });
  assert.equal(plain.containerRuntime, 'runc');
  assert.equal((await specOnBus(plain.id)).sealed.containerRuntime, ContainerRuntime.CONTAINER_RUNTIME_RUNC);
  const gvisor = await submit(alice.token, { kind: 'python', script: 'print(1)', containerRuntime: 'gvisor' });
  assert.equal(gvisor.containerRuntime, 'gvisor');
  assert.equal((await specOnBus(gvisor.id)).sealed.containerRuntime, ContainerRuntime.CONTAINER_RUNTIME_GVISOR);
  assert.equal((await call('GET', `/api/v1/executions/${gvisor.id}`, alice.token)).json().containerRuntime, 'gvisor');

  const kata = await call('POST', '/api/v1/executions', alice.token, { kind: 'shell', command: 'true', containerRuntime: 'kata' });
  assert.equal(kata.statusCode, 400);
  assert.equal(errorOf(kata).message, 'body.containerRuntime must be one of "runc", "gvisor"');
  // The agent runtime's field is not the container runtime's: the answer says which one to use.
  const mixedUp = await call('POST', '/api/v1/executions', alice.token, { kind: 'agent', prompt: 'hi', runtime: 'gvisor' });
  assert.equal(mixedUp.statusCode, 400);
  assert.match(errorOf(mixedUp).message, /send "containerRuntime": "gvisor"/);
});

test('only the secrets a request names enter its environment; the request env wins; a name the owner lacks is a 400 naming it', async () => {
  for (const [name, value] of [['OPENAI_API_KEY', 'sk-alice'], ['GITHUB_TOKEN', 'ghp-alice'], ['SHARED', 'from-secret']]) {
    assert.equal((await call('PUT', `/api/v1/secrets/${name}`, alice.token, { value })).statusCode, 204);
  }
  const agent = await submit(alice.token, { kind: 'agent', prompt: 'hi', secrets: ['OPENAI_API_KEY', 'SHARED'], env: { SHARED: 'from-request' } });
  assert.deepEqual(agent.secrets, ['OPENAI_API_KEY', 'SHARED']);
  const { sealed, opened } = await specOnBus(agent.id);
  assert.deepEqual(sealed.env, {}, 'nothing travels in clear');
  assert.match(opened.env['OPENAI_API_KEY'] ?? '', /^plk_/, "the container gets the run key in the provider key's place");
  assert.deepEqual((await specOnBus(agent.id)).providerKeys, { openai: 'sk-alice' }, 'and the real key goes to the metering proxy, sealed');
  assert.equal(opened.env['SHARED'], 'from-request');
  assert.equal(opened.env['GITHUB_TOKEN'], undefined, 'a secret the request did not name stays out');
  const view = await call('GET', `/api/v1/executions/${agent.id}`, alice.token);
  assert.ok(!view.body.includes('sk-alice'));

  // A job gets named secrets too, and an agent that names none gets none.
  const job = await submit(alice.token, { kind: 'shell', command: 'true', secrets: ['GITHUB_TOKEN'] });
  assert.deepEqual(Object.keys((await specOnBus(job.id)).opened.env).sort(), ['GITHUB_TOKEN', ...LLM_WIRING, 'PADDOCK_RUN_TOKEN'].sort());
  const bare = await submit(alice.token, { kind: 'agent', prompt: 'hi' });
  assert.deepEqual(Object.keys((await specOnBus(bare.id)).opened.env).sort(), [...LLM_WIRING, ...OPENAI_WIRING, 'PADDOCK_RUN_TOKEN'].sort(), 'no stored secret enters it');
  assert.deepEqual((await specOnBus(bare.id)).providerKeys, { openai: 'sk-alice' }, "an agent's provider keys are looked up by name for the proxy");
  assert.deepEqual((await specOnBus(job.id)).providerKeys, {}, "a job's are not: it names what it uses");

  const before = await count(bob.user.id);
  const missing = await call('POST', '/api/v1/executions', bob.token, { kind: 'agent', prompt: 'hi', secrets: ['OPENAI_API_KEY', 'ANTHROPIC_API_KEY'] });
  assert.equal(missing.statusCode, 400, "alice's secrets are not bob's");
  assert.deepEqual(errorOf(missing), {
    code: 'unknown_secret',
    message:
      'no secrets named "OPENAI_API_KEY", "ANTHROPIC_API_KEY": store them first (PUT /api/v1/secrets/{name}, or PUT /api/v1/projects/{id}/secrets/{name} for the project\'s), or leave them out of "secrets"',
  });
  assert.equal(await count(bob.user.id), before, 'nothing stored');
  const reserved = await call('POST', '/api/v1/executions', alice.token, { kind: 'shell', command: 'true', env: { PADDOCK_RUN_TOKEN: 'forged' } });
  assert.equal(reserved.statusCode, 400);
  assert.match(errorOf(reserved).message, /env may not set PADDOCK_RUN_TOKEN/);
});

test("a run token reads its own execution's status only, is not its owner's token, and dies when the execution is final", async () => {
  const mine = await submit(alice.token, { kind: 'shell', command: 'sleep 60' });
  const sibling = await submit(alice.token, { kind: 'shell', command: 'sleep 60' });
  const token = (await specOnBus(mine.id)).opened.env['PADDOCK_RUN_TOKEN']!;
  assert.match(token, new RegExp(`^prt_${mine.id}_`));
  assert.notEqual(token, (await specOnBus(sibling.id)).opened.env['PADDOCK_RUN_TOKEN'], 'one token per execution');

  const own = await call('GET', `/api/v1/executions/${mine.id}`, token);
  assert.equal(own.statusCode, 200, own.body);
  assert.equal(own.json().id, mine.id);
  assert.equal(own.json().state, 'queued');
  // The owner's other execution is not found, as another user's would be.
  assert.equal((await call('GET', `/api/v1/executions/${sibling.id}`, token)).statusCode, 404);
  // Everything else the owner may do, it may not.
  for (const [method, url] of [
    ['GET', '/api/v1/executions'],
    ['POST', `/api/v1/executions/${mine.id}/cancel`],
    ['GET', `/api/v1/executions/${mine.id}/logs`],
    ['GET', '/api/v1/secrets'],
    ['GET', '/api/v1/users/me'],
    ['GET', `/status/${mine.id}`],
  ] as const) {
    const r = await call(method, url, token);
    assert.equal(r.statusCode, 401, `${method} ${url}: ${r.body}`);
  }
  const submitted = await call('POST', '/api/v1/executions', token, { kind: 'shell', command: 'true' });
  assert.equal(submitted.statusCode, 401, 'a run token cannot start executions');
  // A forged or altered token is refused.
  const forged = `${token.slice(0, -4)}AAAA`;
  assert.equal((await call('GET', `/api/v1/executions/${mine.id}`, forged)).statusCode, 401);
  assert.equal((await call('GET', `/api/v1/executions/${mine.id}`, `prt_${mine.id}_short`)).statusCode, 401);

  // The scheduler says it is over: the token ends with it.
  assert.ok(await store.applyState(mine.id, { state: 'completed', version: 5, exitCode: 0, error: null, startedAtMs: Date.now() - 1000, finishedAtMs: Date.now(), brokerId: 'b1' }));
  const ended = await call('GET', `/api/v1/executions/${mine.id}`, token);
  assert.equal(ended.statusCode, 401);
  assert.equal(errorOf(ended).message, `the run token of execution ${mine.id} ended with it: the execution is completed`);
  // The owner still reads it with their own token.
  assert.equal((await call('GET', `/api/v1/executions/${mine.id}`, alice.token)).json().state, 'completed');
});

test('a run token is refused with 401 on every operation of the OpenAPI document that does not list it, WebSocket ones included', async () => {
  const mine = await submit(alice.token, { kind: 'shell', command: 'sleep 60' });
  const token = (await specOnBus(mine.id)).opened.env['PADDOCK_RUN_TOKEN']!;
  const before = await count(alice.user.id);
  const doc = (await call('GET', '/api/v1/openapi.json', null)).json<{
    paths: Record<string, Record<string, { security?: Record<string, string[]>[]; responses: Record<string, unknown> }>>;
  }>();
  const answered: string[] = [];
  const expected: string[] = [];
  for (const [template, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      // Public operations take no credential at all; the run token's own are tested above.
      if (op.security?.length === 0 || op.security?.some((s) => 'runToken' in s)) continue;
      const url = template.replace('{id}', mine.id).replace('{name}', 'SOME_SECRET');
      const operation = `${method.toUpperCase()} ${template}`;
      expected.push(`${operation} -> 401`);
      if ('101' in op.responses) {
        const refused = await app.injectWS(`${url}?port=22`, { headers: { authorization: `Bearer ${token}` } }).then(
          (ws) => {
            ws.terminate();
            return 'opened';
          },
          (err: Error) => err.message,
        );
        answered.push(`${operation} -> ${/response: (\d+)/.exec(refused)?.[1] ?? refused}`);
      } else {
        const r = await call(method.toUpperCase() as 'GET', url, token);
        answered.push(`${operation} -> ${r.statusCode}`);
        if (r.statusCode === 401) assert.equal(errorOf(r).message, "a run token is not accepted here: this route needs a user's token", operation);
      }
    }
  }
  assert.ok(expected.length >= 20, `the document lists the API: ${expected.join(', ')}`);
  assert.deepEqual(answered, expected);
  assert.equal(await count(alice.user.id), before, 'nothing was created with it');
});