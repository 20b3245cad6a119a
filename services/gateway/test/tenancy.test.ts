// Teams, projects and roles at the API: who sees what (404 for anything a principal may not see) and who may
// change what (403 naming the role needed), as a matrix of owner, admin, member, viewer and a user of another
// team over each class of route; project tokens; project secrets; and each execution's LLM access. buildApp
// wired as startGateway wires it, on a real PostgreSQL and nats-server, driven with app.inject().
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { Bus, topics, type Subscription } from '@paddock/bus';
import { loadServiceTls } from '@paddock/plane';
import { ExecutionAccount, ExecutionRequested, ExecutionState, LlmCredentials } from '@paddock/proto';
import { LlmKey, SecretBox, SpecKey, unsealSpec } from '@paddock/secrets';
import { buildApp } from '../src/app.js';
import { ExecutionService } from '../src/executions/executionService.js';
import { ExecutionStore } from '../src/executions/executionStore.js';
import { projectStates } from '../src/executions/projection.js';
import { HealthWatch } from '../src/health.js';
import { BrokerDirectory } from '../src/instances/brokers.js';
import { TicketStore } from '../src/instances/ticketStore.js';
import { SecretStore } from '../src/secrets/secretStore.js';
import type { Role } from '../src/tenancy/projectAccess.js';
import { UserStore, type User } from '../src/users/userStore.js';
import { startTestStack, type TestStack } from './testStack.js';

let stack: TestStack;
let bus: Bus;
/** The scheduler's side of the bus: it publishes state events. */
let scheduler: Bus;
let projection: Subscription;
let app: FastifyInstance;
let users: UserStore;
const specKey = SpecKey.withKey(randomBytes(32));
const llmKey = LlmKey.withKey(randomBytes(32));

type Who = 'owner' | 'admin' | 'member' | 'viewer' | 'outsider';
const EVERYONE: readonly Who[] = ['owner', 'admin', 'member', 'viewer', 'outsider'];
const RANK: Readonly<Record<Role, number>> = { viewer: 0, member: 1, admin: 2, owner: 3 };

let root: { user: User; token: string };
/** Alice owns team acme; Ava is its admin, Mia a member, Vic a viewer; Oscar is in a team of his own. */
const people = {} as Record<Who, { user: User; token: string }>;
let acme: string;
/** Project web of team acme. */
let web: string;

before(async () => {
  stack = await startTestStack();
  const config = stack.config();
  users = new UserStore(stack.pool);
  root = await users.create('root', true);
  for (const [who, name] of [['owner', 'alice'], ['admin', 'ava'], ['member', 'mia'], ['viewer', 'vic'], ['outsider', 'oscar']] as const) people[who] = await users.create(name);
  bus = await Bus.connect({ url: config.natsUrl, name: 'paddock-gateway', log: stack.log });
  scheduler = await Bus.connect({ url: config.natsUrl, name: 'test-scheduler', log: stack.log });
  const store = new ExecutionStore(stack.pool);
  const secrets = new SecretStore(stack.pool, SecretBox.withKey(randomBytes(32)));
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
  projection = await projectStates(bus, store);

  acme = (await ok(call('POST', '/api/v1/teams', people.owner.token, { name: 'acme' }), 201)).id;
  web = (await ok(call('POST', '/api/v1/projects', people.owner.token, { teamId: acme, name: 'web' }), 201)).id;
  for (const who of ['admin', 'member', 'viewer'] as const) {
    await ok(call('POST', `/api/v1/teams/${acme}/members`, people.owner.token, { userId: people[who].user.id, role: who }), 201);
  }
});

after(async () => {
  await app?.close();
  await projection?.stop();
  await bus?.drain();
  await scheduler?.drain();
  await stack?.stop();
});

function call(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, token: string | null, payload?: unknown): Promise<LightMyRequestResponse> {
  return app.inject({ method, url, headers: token ? { authorization: `Bearer ${token}` } : {}, ...(payload === undefined ? {} : { payload: payload as object }) });
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the JSON answer, of whichever shape each assertion reads
async function ok(response: Promise<LightMyRequestResponse>, status: number): Promise<any> {
  const r = await response;
  assert.equal(r.statusCode, status, r.body);
  return r.body === '' ? undefined : r.json();
}

function errorOf(r: LightMyRequestResponse): { code: string; message: string } {
  return r.json<{ error: { code: string; message: string } }>().error;
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

/** The execution as the broker and billing see it: its spec opened with the spec key, its provider keys opened with the LLM key. */
async function onBus(id: string): Promise<{ env: Record<string, string>; account: ExecutionAccount; providerKeys: Record<string, string> }> {
  const requested = ExecutionRequested.decode((await bus.jsm.streams.getMessage('PADDOCK_EXECUTIONS', { last_by_subj: topics.executionRequested.subject(id) })).data);
  const account = ExecutionAccount.decode((await bus.jsm.streams.getMessage('PADDOCK_EXECUTIONS', { last_by_subj: topics.executionAccount.subject(id) })).data);
  const providerKeys = account.sealedLlmCredentials.length === 0 ? {} : LlmCredentials.decode(Buffer.from(llmKey.open(account.sealedLlmCredentials, id), 'base64')).keys;
  return { env: unsealSpec(requested.spec!, specKey, id).env, account, providerKeys };
}

/** Makes an execution `executing` on a broker, as the scheduler's events would. */
async function running(id: string, ownerId: string): Promise<void> {
  await scheduler.publish(topics.executionState, id, {
    executionId: id,
    ownerId,
    state: ExecutionState.EXECUTION_STATE_EXECUTING,
    version: 3,
    atMs: Date.now(),
    reason: '',
    brokerId: 'b1',
    startedAtMs: Date.now(),
    finishedAtMs: 0,
  });
  await until('executing', async () => ((await call('GET', `/api/v1/executions/${id}`, people.owner.token)).json<{ state: string }>().state === 'executing' ? true : undefined));
}

test('every user has a personal team and project; executions go there unless the request names a project', async () => {
  const me = await ok(call('GET', '/api/v1/users/me', people.member.token), 200);
  const personal = await ok(call('GET', `/api/v1/projects/${me.personalProjectId}`, people.member.token), 200);
  assert.deepEqual({ teamId: personal.teamId, name: personal.name, personal: personal.personal, role: personal.role }, { teamId: me.personalTeamId, name: 'default', personal: true, role: 'owner' });
  const team = await ok(call('GET', `/api/v1/teams/${me.personalTeamId}`, people.member.token), 200);
  assert.equal(team.personal, true);
  assert.deepEqual(team.members.map((m: { userId: string; role: string }) => [m.userId, m.role]), [[people.member.user.id, 'owner']]);
  const teams = await ok(call('GET', '/api/v1/teams', people.member.token), 200);
  assert.deepEqual(teams.items.map((t: { id: string; role: string }) => [t.id, t.role]).sort(), [[me.personalTeamId, 'owner'], [acme, 'member']].sort());

  const mine = await ok(call('POST', '/api/v1/executions', people.member.token, { kind: 'shell', command: 'true' }), 201);
  assert.deepEqual([mine.projectId, mine.teamId, mine.owner], [me.personalProjectId, me.personalTeamId, people.member.user.id]);
  const shared = await ok(call('POST', '/api/v1/executions', people.member.token, { kind: 'shell', command: 'true', project: web }), 201);
  assert.deepEqual([shared.projectId, shared.teamId, shared.owner], [web, acme, people.member.user.id], 'the owner is who made it, whatever the project');
  const account = (await onBus(shared.id)).account;
  assert.deepEqual([account.ownerId, account.projectId, account.teamId, account.workflowId], [people.member.user.id, web, acme, '']);

  const elsewhere = await call('POST', '/api/v1/executions', people.member.token, { kind: 'shell', command: 'true', project: 'p-no-such-project' });
  assert.equal(elsewhere.statusCode, 404, elsewhere.body);
  const oscars = await ok(call('GET', '/api/v1/users/me', people.outsider.token), 200);
  const intoOscars = await call('POST', '/api/v1/executions', people.member.token, { kind: 'shell', command: 'true', project: oscars.personalProjectId });
  assert.equal(intoOscars.statusCode, 404, "another team's project does not exist for her");
  assert.deepEqual(errorOf(intoOscars), { code: 'not_found', message: `project ${oscars.personalProjectId} not found` });
});

/** One class of route, and the role it needs. */
interface Check {
  readonly what: string;
  readonly needed: Role;
  /** What it answers a role that may. */
  readonly status: number;
  run(who: Who, token: string): Promise<LightMyRequestResponse>;
}

test('the role matrix: each role may do what its role and the ones below may; the rest is 403 naming the role, and another team sees 404', async () => {
  const ex = await ok(call('POST', '/api/v1/executions', people.owner.token, { kind: 'shell', command: 'sleep 600', project: web }), 201);
  await running(ex.id, people.owner.user.id);
  const fresh = async (name: string) => (await users.create(name)).user.id;
  const doomed = {} as Record<Who, string>;
  for (const who of EVERYONE) doomed[who] = (await ok(call('POST', '/api/v1/projects', people.owner.token, { teamId: acme, name: `doomed-${who}` }), 201)).id;

  const checks: Check[] = [
    { what: 'read an execution', needed: 'viewer', status: 200, run: (_w, t) => call('GET', `/api/v1/executions/${ex.id}`, t) },
    { what: 'its artifacts (not yet: 409)', needed: 'viewer', status: 409, run: (_w, t) => call('GET', `/api/v1/executions/${ex.id}/artifacts.zip`, t) },
    { what: "list the project's executions", needed: 'viewer', status: 200, run: (_w, t) => call('GET', `/api/v1/executions?project=${web}`, t) },
    { what: 'read the project', needed: 'viewer', status: 200, run: (_w, t) => call('GET', `/api/v1/projects/${web}`, t) },
    { what: 'read the team', needed: 'viewer', status: 200, run: (_w, t) => call('GET', `/api/v1/teams/${acme}`, t) },
    { what: 'create an execution in the project', needed: 'member', status: 201, run: (_w, t) => call('POST', '/api/v1/executions', t, { kind: 'shell', command: 'true', project: web }) },
    { what: "cancel a teammate's execution", needed: 'member', status: 202, run: (_w, t) => call('POST', `/api/v1/executions/${ex.id}/cancel`, t) },
    { what: "open the terminal of a teammate's execution", needed: 'member', status: 201, run: (_w, t) => call('POST', `/api/v1/instances/${ex.id}/terminal-ticket`, t) },
    { what: "list the project's secret names", needed: 'member', status: 200, run: (_w, t) => call('GET', `/api/v1/projects/${web}/secrets`, t) },
    { what: 'rename the project', needed: 'admin', status: 200, run: (w, t) => call('PATCH', `/api/v1/projects/${web}`, t, { name: `web by ${w}` }) },
    { what: 'set a project secret', needed: 'admin', status: 204, run: (w, t) => call('PUT', `/api/v1/projects/${web}/secrets/SET_BY_${w.toUpperCase()}`, t, { value: 'v' }) },
    { what: "list the project's tokens", needed: 'admin', status: 200, run: (_w, t) => call('GET', `/api/v1/projects/${web}/tokens`, t) },
    { what: 'make a project token', needed: 'admin', status: 201, run: (_w, t) => call('POST', `/api/v1/projects/${web}/tokens`, t, { role: 'viewer' }) },
    { what: 'make a project in the team', needed: 'admin', status: 201, run: (w, t) => call('POST', '/api/v1/projects', t, { teamId: acme, name: `made by ${w}` }) },
    { what: 'add a member', needed: 'admin', status: 201, run: async (w, t) => call('POST', `/api/v1/teams/${acme}/members`, t, { userId: await fresh(`new-viewer-${w}`), role: 'viewer' }) },
    { what: 'add an owner', needed: 'owner', status: 201, run: async (w, t) => call('POST', `/api/v1/teams/${acme}/members`, t, { userId: await fresh(`new-owner-${w}`), role: 'owner' }) },
    { what: 'delete a project', needed: 'owner', status: 204, run: (w, t) => call('DELETE', `/api/v1/projects/${doomed[w]}`, t) },
  ];
  const answered: string[] = [];
  const expected: string[] = [];
  for (const check of checks) {
    for (const who of EVERYONE) {
      const r = await check.run(who, people[who].token);
      const allowed = who !== 'outsider' && RANK[who] >= RANK[check.needed];
      const want = who === 'outsider' ? 404 : allowed ? check.status : 403;
      answered.push(`${who}: ${check.what} -> ${r.statusCode}`);
      expected.push(`${who}: ${check.what} -> ${want}`);
      if (want === 403 && r.statusCode === 403) {
        assert.deepEqual(errorOf(r).code, 'forbidden');
        // The role named is the first gate the caller does not pass: above its own, at most the one needed.
        const named = /^this needs the (owner|admin|member|viewer) role( or above)? in (project|team) \S+ \(yours is (\w+)\)$/.exec(errorOf(r).message);
        assert.ok(named, `${who}: ${check.what}: ${errorOf(r).message}`);
        assert.equal(named[4], who);
        assert.ok(RANK[named[1] as Role] > RANK[who as Role] && RANK[named[1] as Role] <= RANK[check.needed], `${who}: ${check.what}: ${errorOf(r).message}`);
      }
    }
  }
  assert.deepEqual(answered, expected);

  // The admin user acts as owner everywhere, member of the team or not.
  const asRoot = await ok(call('GET', `/api/v1/projects/${web}`, root.token), 200);
  assert.equal(asRoot.role, 'owner');
});

test("a teammate sees a shared project's executions in his list; a user of another team sees none of them, and nothing of the team", async () => {
  const ex = await ok(call('POST', '/api/v1/executions', people.owner.token, { kind: 'shell', command: 'true', project: web }), 201);
  const viewers = await ok(call('GET', '/api/v1/executions', people.viewer.token), 200);
  assert.ok(viewers.items.some((e: { id: string }) => e.id === ex.id), "the viewer's list has it");
  const outsiders = await ok(call('GET', '/api/v1/executions?limit=500', people.outsider.token), 200);
  assert.ok(!outsiders.items.some((e: { projectId: string }) => e.projectId === web), "the outsider's list has nothing of web");
  assert.equal((await call('GET', `/api/v1/executions?project=${web}`, people.outsider.token)).statusCode, 404);
  assert.equal((await call('GET', `/api/v1/executions/${ex.id}/logs`, people.outsider.token)).statusCode, 404);
  for (const url of [`/api/v1/teams/${acme}`, `/api/v1/projects/${web}`, `/api/v1/projects/${web}/secrets`, `/api/v1/projects/${web}/tokens`]) {
    assert.equal((await call('GET', url, people.outsider.token)).statusCode, 404, url);
  }
  const outsidersTeams = await ok(call('GET', '/api/v1/teams', people.outsider.token), 200);
  assert.ok(!outsidersTeams.items.some((t: { id: string }) => t.id === acme));
  const outsidersProjects = await ok(call('GET', '/api/v1/projects', people.outsider.token), 200);
  assert.deepEqual(outsidersProjects.items.map((p: { personal: boolean }) => p.personal), [true], 'his personal project only');
  const all = await ok(call('GET', '/api/v1/teams', root.token), 200);
  assert.ok(all.items.some((t: { id: string; role: string }) => t.id === acme && t.role === 'owner'), 'the admin sees every team');
});

test('a team keeps an owner, a personal team its user; admins manage members but not owners; anyone may leave', async () => {
  const team = (await ok(call('POST', '/api/v1/teams', people.owner.token, { name: 'rules' }), 201)).id;
  const add = (token: string, userId: string, role: Role) => call('POST', `/api/v1/teams/${team}/members`, token, { userId, role });
  await ok(add(people.owner.token, people.admin.user.id, 'admin'), 201);
  await ok(add(people.owner.token, people.member.user.id, 'member'), 201);

  const last = await call('PATCH', `/api/v1/teams/${team}/members/${people.owner.user.id}`, people.owner.token, { role: 'admin' });
  assert.equal(last.statusCode, 409);
  assert.match(errorOf(last).message, /is the last owner of team .*: make another member an owner/);
  assert.equal((await call('DELETE', `/api/v1/teams/${team}/members/${people.owner.user.id}`, people.owner.token)).statusCode, 409, 'not even by leaving');

  const twice = await add(people.owner.token, people.admin.user.id, 'viewer');
  assert.equal(twice.statusCode, 409);
  assert.match(errorOf(twice).message, /already a member .* \(as admin\)/);
  assert.equal((await add(people.owner.token, 'u-no-such-user', 'viewer')).statusCode, 404);
  assert.equal((await call('POST', `/api/v1/teams/${team}/members`, people.owner.token, { userId: people.viewer.user.id, role: 'boss' })).statusCode, 400);

  assert.equal((await call('PATCH', `/api/v1/teams/${team}/members/${people.owner.user.id}`, people.admin.token, { role: 'viewer' })).statusCode, 403, 'an admin may not demote an owner');
  assert.equal((await call('DELETE', `/api/v1/teams/${team}/members/${people.owner.user.id}`, people.admin.token)).statusCode, 403, 'nor remove one');
  assert.equal((await call('PATCH', `/api/v1/teams/${team}/members/${people.member.user.id}`, people.admin.token, { role: 'owner' })).statusCode, 403, 'nor make one');
  const demoted = await ok(call('PATCH', `/api/v1/teams/${team}/members/${people.member.user.id}`, people.admin.token, { role: 'viewer' }), 200);
  assert.equal(demoted.role, 'viewer');
  assert.equal((await call('DELETE', `/api/v1/teams/${team}/members/${people.admin.user.id}`, people.member.token)).statusCode, 403, 'a viewer removes no one else');
  await ok(call('DELETE', `/api/v1/teams/${team}/members/${people.member.user.id}`, people.member.token), 204);
  assert.equal((await call('GET', `/api/v1/teams/${team}`, people.member.token)).statusCode, 404, 'once gone, the team is as absent as any other');

  // Two owners: one may step down.
  await ok(call('PATCH', `/api/v1/teams/${team}/members/${people.admin.user.id}`, people.owner.token, { role: 'owner' }), 200);
  await ok(call('PATCH', `/api/v1/teams/${team}/members/${people.owner.user.id}`, people.owner.token, { role: 'member' }), 200);

  const me = await ok(call('GET', '/api/v1/users/me', people.owner.token), 200);
  const stays = await call('DELETE', `/api/v1/teams/${me.personalTeamId}/members/${people.owner.user.id}`, root.token);
  assert.equal(stays.statusCode, 409);
  assert.match(errorOf(stays).message, /personal team of .*, who stays its owner/);
  assert.equal((await call('DELETE', `/api/v1/teams/${me.personalTeamId}`, people.owner.token)).statusCode, 409, 'a personal team stays');
  assert.equal((await call('DELETE', `/api/v1/projects/${me.personalProjectId}`, people.owner.token)).statusCode, 409, 'so does its project');
  assert.equal((await call('DELETE', `/api/v1/teams/${acme}`, people.owner.token)).statusCode, 409, 'a team with projects stays');

  const live = (await ok(call('POST', '/api/v1/projects', people.admin.token, { teamId: team, name: 'live' }), 201)).id;
  const ex = await ok(call('POST', '/api/v1/executions', people.admin.token, { kind: 'shell', command: 'sleep 60', project: live }), 201);
  const busy = await call('DELETE', `/api/v1/projects/${live}`, people.admin.token);
  assert.equal(busy.statusCode, 409);
  assert.match(errorOf(busy).message, /has 1 execution that has not ended/);
  await stack.pool.query(`UPDATE executions SET state = 'cancelled' WHERE id = $1`, [ex.id]);
  await ok(call('DELETE', `/api/v1/projects/${live}`, people.admin.token), 204);
  assert.equal((await call('GET', `/api/v1/executions/${ex.id}`, people.admin.token)).statusCode, 404, 'its ended executions went with it');
  await ok(call('DELETE', `/api/v1/teams/${team}`, people.admin.token), 204);
  assert.equal((await call('GET', `/api/v1/teams/${team}`, root.token)).statusCode, 404);
});

test('a project token acts in its project only, with its role bounded by its creator\'s, until revoked or expired', async () => {
  const made = await ok(call('POST', `/api/v1/projects/${web}/tokens`, people.admin.token, { role: 'member', name: 'ci' }), 201);
  assert.match(made.token, /^pdp_[A-Za-z0-9_-]{43}$/);
  assert.deepEqual([made.projectId, made.role, made.name, made.createdBy, made.expiresAt], [web, 'member', 'ci', people.admin.user.id, null]);
  const stored = (await stack.pool.query('SELECT * FROM project_tokens WHERE id = $1', [made.id])).rows[0] as Record<string, unknown>;
  assert.equal(stored['token_hash'], createHash('sha256').update(made.token).digest('hex'), 'kept as its hash only');
  assert.ok(!JSON.stringify((await stack.pool.query('SELECT * FROM project_tokens')).rows).includes(made.token));
  const listed = await ok(call('GET', `/api/v1/projects/${web}/tokens`, people.owner.token), 200);
  assert.ok(listed.items.some((t: { id: string; token?: string }) => t.id === made.id && t.token === undefined), 'listed, never shown again');

  const ci = made.token as string;
  const created = await ok(call('POST', '/api/v1/executions', ci, { kind: 'shell', command: 'true' }), 201);
  assert.deepEqual([created.projectId, created.owner], [web, people.admin.user.id], 'in its project, owned by its creator');
  const personalOfAva = (await ok(call('GET', '/api/v1/users/me', people.admin.token), 200)).personalProjectId;
  const avasOwn = await ok(call('POST', '/api/v1/executions', people.admin.token, { kind: 'shell', command: 'true' }), 201);
  assert.equal((await call('POST', '/api/v1/executions', ci, { kind: 'shell', command: 'true', project: personalOfAva })).statusCode, 404, "not even its creator's other projects");
  assert.equal((await call('GET', `/api/v1/executions/${avasOwn.id}`, ci)).statusCode, 404);
  // Idempotency keys are its creator's: the same body under the same key, for another project, is another request.
  const key = { 'idempotency-key': `tenancy-${Date.now()}` };
  const once = await app.inject({ method: 'POST', url: '/api/v1/executions', headers: { authorization: `Bearer ${people.admin.token}`, ...key }, payload: { kind: 'shell', command: 'true' } });
  assert.equal(once.statusCode, 201, once.body);
  const again = await app.inject({ method: 'POST', url: '/api/v1/executions', headers: { authorization: `Bearer ${ci}`, ...key }, payload: { kind: 'shell', command: 'true' } });
  assert.equal(again.statusCode, 422, again.body);
  assert.equal(errorOf(again).code, 'idempotency_key_reused');
  const page = await ok(call('GET', '/api/v1/executions?limit=500', ci), 200);
  assert.ok(page.items.length > 0 && page.items.every((e: { projectId: string }) => e.projectId === web), 'its list is its project');
  assert.deepEqual((await ok(call('GET', '/api/v1/projects', ci), 200)).items.map((p: { id: string; role: string }) => [p.id, p.role]), [[web, 'member']]);
  assert.equal((await call('POST', `/api/v1/executions/${created.id}/cancel`, ci)).statusCode, 202);

  for (const [method, url] of [['GET', '/api/v1/teams'], ['GET', '/api/v1/secrets'], ['GET', `/api/v1/projects/${web}/tokens`], ['GET', '/api/v1/users/me'], ['POST', `/api/v1/instances/${created.id}/terminal-ticket`]] as const) {
    const r = await call(method, url, ci);
    assert.equal(r.statusCode, 401, `${method} ${url}`);
    assert.equal(errorOf(r).message, "a project token is not accepted here: this route needs a user's token");
  }

  const reader = (await ok(call('POST', `/api/v1/projects/${web}/tokens`, people.admin.token, { role: 'viewer' }), 201)).token as string;
  assert.equal((await call('GET', `/api/v1/executions/${created.id}`, reader)).statusCode, 200);
  const refused = await call('POST', '/api/v1/executions', reader, { kind: 'shell', command: 'true' });
  assert.equal(refused.statusCode, 403);
  assert.equal(errorOf(refused).message, `this needs the member role or above in project ${web} (yours is viewer)`);

  // Its creator made a viewer: the member token reads only; its creator gone from the team: it sees nothing.
  await ok(call('PATCH', `/api/v1/teams/${acme}/members/${people.admin.user.id}`, people.owner.token, { role: 'viewer' }), 200);
  assert.equal((await call('POST', '/api/v1/executions', ci, { kind: 'shell', command: 'true' })).statusCode, 403);
  await ok(call('DELETE', `/api/v1/teams/${acme}/members/${people.admin.user.id}`, people.owner.token), 204);
  assert.equal((await call('GET', `/api/v1/executions/${created.id}`, ci)).statusCode, 404);
  assert.deepEqual((await ok(call('GET', '/api/v1/executions', ci), 200)).items, []);
  await ok(call('POST', `/api/v1/teams/${acme}/members`, people.owner.token, { userId: people.admin.user.id, role: 'admin' }), 201);
  assert.equal((await call('GET', `/api/v1/executions/${created.id}`, ci)).statusCode, 200, 'back with its creator');

  const shortLived = await ok(call('POST', `/api/v1/projects/${web}/tokens`, people.admin.token, { role: 'viewer', expiresInSeconds: 60 }), 201);
  assert.ok(Math.abs(Date.parse(shortLived.expiresAt) - Date.now() - 60_000) < 10_000);
  await stack.pool.query(`UPDATE project_tokens SET expires_at = now() - interval '1 second' WHERE id = $1`, [shortLived.id]);
  const expired = await call('GET', '/api/v1/executions', shortLived.token);
  assert.equal(expired.statusCode, 401);
  assert.match(errorOf(expired).message, new RegExp(`^the project token ${shortLived.id} expired at `));
  assert.equal((await call('POST', `/api/v1/projects/${web}/tokens`, people.admin.token, { role: 'admin' })).statusCode, 400, 'a token administers nothing');

  await ok(call('DELETE', `/api/v1/projects/${web}/tokens/${made.id}`, people.admin.token), 204);
  const revoked = await call('GET', '/api/v1/executions', ci);
  assert.equal(revoked.statusCode, 401);
  assert.equal(errorOf(revoked).message, 'the project token is not valid (it was revoked, or never made)');
  assert.equal((await call('DELETE', `/api/v1/projects/${web}/tokens/${made.id}`, people.admin.token)).statusCode, 404);
});

test("an execution takes a named secret from its owner's, else its project's, and never from another project", async () => {
  await ok(call('PUT', `/api/v1/projects/${web}/secrets/DEPLOY_KEY`, people.owner.token, { value: 'deploy-of-web' }), 204);
  await ok(call('PUT', `/api/v1/projects/${web}/secrets/SHARED`, people.owner.token, { value: 'shared-of-web' }), 204);
  await ok(call('PUT', '/api/v1/secrets/SHARED', people.member.token, { value: 'shared-of-mia' }), 204);
  const oscars = (await ok(call('GET', '/api/v1/users/me', people.outsider.token), 200)).personalProjectId;
  await ok(call('PUT', `/api/v1/projects/${oscars}/secrets/OSCAR_ONLY`, people.outsider.token, { value: 'oscar-value' }), 204);

  const names = await ok(call('GET', `/api/v1/projects/${web}/secrets`, people.member.token), 200);
  assert.ok(['DEPLOY_KEY', 'SHARED'].every((n) => names.items.some((s: { name: string }) => s.name === n)));
  assert.ok(!JSON.stringify(names).includes('of-web'), 'names only');
  assert.equal((await call('PUT', `/api/v1/projects/${web}/secrets/DEPLOY_KEY`, people.member.token, { value: 'mine now' })).statusCode, 403);
  assert.equal((await call('DELETE', `/api/v1/projects/${web}/secrets/DEPLOY_KEY`, people.member.token)).statusCode, 403);
  assert.equal((await call('GET', `/api/v1/projects/${oscars}/secrets`, people.member.token)).statusCode, 404);

  const ex = await ok(call('POST', '/api/v1/executions', people.member.token, { kind: 'shell', command: 'true', project: web, secrets: ['DEPLOY_KEY', 'SHARED'] }), 201);
  const { env } = await onBus(ex.id);
  assert.equal(env['DEPLOY_KEY'], 'deploy-of-web', "the project's");
  assert.equal(env['SHARED'], 'shared-of-mia', "the owner's own first");

  for (const [project, secret] of [[web, 'OSCAR_ONLY'], [undefined, 'DEPLOY_KEY']] as const) {
    const r = await call('POST', '/api/v1/executions', people.member.token, { kind: 'shell', command: 'true', secrets: [secret], ...(project ? { project } : {}) });
    assert.equal(r.statusCode, 400, `${secret} in ${project ?? 'her personal project'}`);
    assert.equal(errorOf(r).code, 'unknown_secret');
    assert.match(errorOf(r).message, new RegExp(`^no secret named "${secret}"`));
  }
  await ok(call('DELETE', `/api/v1/projects/${web}/secrets/DEPLOY_KEY`, people.admin.token), 204);
  assert.equal((await call('DELETE', `/api/v1/projects/${web}/secrets/DEPLOY_KEY`, people.admin.token)).statusCode, 404);
});

test('provider keys go sealed to the metering proxy, never into the container, which gets the run key and the proxy instead', async () => {
  await ok(call('PUT', `/api/v1/projects/${web}/secrets/ANTHROPIC_API_KEY`, people.owner.token, { value: 'sk-ant-of-web' }), 204);
  await ok(call('PUT', '/api/v1/secrets/OPENAI_API_KEY', people.member.token, { value: 'sk-of-mia' }), 204);

  const agent = await ok(call('POST', '/api/v1/executions', people.member.token, { kind: 'agent', prompt: 'hi', project: web }), 201);
  const seen = await onBus(agent.id);
  assert.deepEqual(seen.providerKeys, { openai: 'sk-of-mia', anthropic: 'sk-ant-of-web' }, "an agent's keys: its owner's, else its project's");
  const runKey = seen.env['PADDOCK_LLM_KEY']!;
  assert.match(runKey, /^plk_[A-Za-z0-9_-]{32}$/);
  assert.equal(seen.account.llmKeySha256, createHash('sha256').update(runKey).digest('hex'));
  assert.deepEqual(
    [seen.env['OPENAI_API_KEY'], seen.env['ANTHROPIC_API_KEY'], seen.env['GEMINI_API_KEY'], seen.env['GOOGLE_GEMINI_BASE_URL']],
    [runKey, runKey, undefined, undefined],
    'the run key for each provider it has a key of, and nothing for one it has none of',
  );
  assert.ok(!Object.values(seen.env).some((v) => v.includes('sk-')), 'no real key in the environment');

  const other = await ok(call('POST', '/api/v1/executions', people.member.token, { kind: 'agent', prompt: 'hi', project: web }), 201);
  assert.notEqual((await onBus(other.id)).env['PADDOCK_LLM_KEY'], runKey, 'one run key per execution');

  const job = await ok(call('POST', '/api/v1/executions', people.member.token, { kind: 'shell', command: 'true', project: web, env: { GOOGLE_API_KEY: 'goo', MODE: 'x' } }), 201);
  const jobSeen = await onBus(job.id);
  assert.deepEqual(jobSeen.providerKeys, { gemini: 'goo' }, "a job's keys are what it gives; GOOGLE_API_KEY is Gemini's");
  assert.equal(jobSeen.env['GOOGLE_API_KEY'], undefined);
  assert.equal(jobSeen.env['MODE'], 'x');
  const both = await ok(call('POST', '/api/v1/executions', people.member.token, { kind: 'shell', command: 'true', env: { GOOGLE_API_KEY: 'goo', GEMINI_API_KEY: 'gem' } }), 201);
  assert.deepEqual((await onBus(both.id)).providerKeys, { gemini: 'gem' });
  const named = await ok(call('POST', '/api/v1/executions', people.member.token, { kind: 'shell', command: 'true', project: web, secrets: ['ANTHROPIC_API_KEY'], env: { OPENAI_API_KEY: 'sk-from-request' } }), 201);
  assert.deepEqual((await onBus(named.id)).providerKeys, { openai: 'sk-from-request', anthropic: 'sk-ant-of-web' }, "the request's env first, then the secrets it names");

  for (const body of [
    { env: { OPENAI_BASE_URL: 'http://evil.example/v1' } },
    { env: { GOOGLE_GEMINI_BASE_URL: 'http://evil.example' } },
    { env: { PADDOCK_LLM_KEY: 'plk_forged' } },
    { secrets: ['ANTHROPIC_BASE_URL'] },
  ]) {
    const r = await call('POST', '/api/v1/executions', people.member.token, { kind: 'agent', prompt: 'hi', ...body });
    assert.equal(r.statusCode, 400, JSON.stringify(body));
    assert.equal(errorOf(r).code, 'invalid_request');
    assert.match(errorOf(r).message, /Paddock's LLM metering proxy sets it.*PADDOCK_LLM_UPSTREAMS on billing/);
  }
});

test('the metering proxy is wherever PADDOCK_LLM_PROXY_URL says an instance reaches it', async () => {
  const config = stack.config({ PADDOCK_LLM_PROXY_URL: 'http://127.0.0.1:4999/' });
  assert.equal(config.llmProxyUrl, 'http://127.0.0.1:4999');
  assert.throws(() => stack.config({ PADDOCK_LLM_PROXY_URL: 'unix:/run/x.sock' }), /PADDOCK_LLM_PROXY_URL: expected the metering proxy's URL/);
  const store = new ExecutionStore(stack.pool);
  const secrets = new SecretStore(stack.pool, SecretBox.withKey(randomBytes(32)));
  const service = new ExecutionService(store, secrets, specKey, bus, config, stack.log, { llmKey });
  const row = await service.create(people.member.user, { kind: 'shell', command: 'true', env: { OPENAI_API_KEY: 'sk-o', ANTHROPIC_API_KEY: 'sk-a', GEMINI_API_KEY: 'g' } });
  const { env } = await onBus(row.id);
  assert.deepEqual(
    [env['PADDOCK_LLM_URL'], env['OPENAI_BASE_URL'], env['ANTHROPIC_BASE_URL'], env['GOOGLE_GEMINI_BASE_URL']],
    ['http://127.0.0.1:4999', 'http://127.0.0.1:4999/openai/v1', 'http://127.0.0.1:4999/anthropic', 'http://127.0.0.1:4999/gemini'],
  );
});
