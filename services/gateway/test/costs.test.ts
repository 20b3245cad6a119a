// The cost, price and budget routes with app.inject against a real billing (its gRPC server over the plane's
// mutual TLS, its ledger on PostgreSQL, usage over NATS): who sees what, who may change what, and billing away.
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { startBilling, DEFAULT_PRICES_FILE, type StartedBilling } from '@paddock/billing';
import { Bus, topics } from '@paddock/bus';
import { commonConfig } from '@paddock/config';
import { ensureServiceRoles, randomPassword, serviceDatabaseUrl, startEmbeddedPostgres } from '@paddock/db';
import { ensurePki, loadServiceTls, planeDir, tlsFilesFromEnv, type ServiceTls } from '@paddock/plane';
import { createLogger } from '@paddock/telemetry';
import { freePort, startNatsServer } from '@paddock/testkit';
import type { Principal } from '../src/auth.js';
import { BillingApi } from '../src/costs/billingApi.js';
import { BudgetAdmission } from '../src/costs/budgetAdmission.js';
import type { CostAccess, CostRole } from '../src/costs/costAccess.js';
import { costRoutes } from '../src/costs/routes.js';
import { installErrorHandler } from '../src/errors.js';

const user = (id: string, isAdmin = false): Principal => ({ kind: 'user', user: { id, name: id, isAdmin, createdAt: new Date(0) } });

/** Bearer tokens of the test's principals. */
const PRINCIPALS: Record<string, Principal> = {
  admin: user('u-admin', true),
  alice: user('u-alice'),
  bob: user('u-bob'),
  carol: user('u-carol'),
  'run-e2': { kind: 'run', executionId: 'e2', ownerId: 'u-carol' },
};

/** Teams' projects, members' roles, executions' projects: the tenancy as ProjectAccess would answer it. */
const TEAM_OF: Record<string, string> = { 'p-a': 't-a', 'p-a2': 't-a', 'p-b': 't-b' };
const ROLES: Record<string, Record<string, CostRole>> = { 'u-alice': { 't-a': 'owner' }, 'u-bob': { 't-a': 'viewer' }, 'u-carol': { 't-b': 'admin' } };
const EXECUTIONS: Record<string, string> = { e1: 'p-a', e2: 'p-b', e3: 'p-a2' };

const access: CostAccess = {
  async visibleProjects(p) {
    if (p.kind === 'user' && p.user.isAdmin) return null;
    return new Map(Object.entries(TEAM_OF).flatMap(([project, team]) => (p.kind === 'user' && ROLES[p.user.id]?.[team] ? [[project, ROLES[p.user.id]![team]!] as const] : [])));
  },
  async roleIn(p, projectId) {
    const team = TEAM_OF[projectId];
    return team === undefined ? undefined : this.roleInTeam(p, team);
  },
  async roleInTeam(p, teamId) {
    if (p.kind !== 'user') return undefined;
    return p.user.isAdmin ? 'owner' : ROLES[p.user.id]?.[teamId];
  },
  async teamOf(projectId) {
    return TEAM_OF[projectId];
  },
  async projectOfExecution(executionId) {
    const projectId = EXECUTIONS[executionId];
    return projectId === undefined ? undefined : { projectId, teamId: TEAM_OF[projectId]! };
  },
};

let dir: string;
let billing: StartedBilling;
let bus: Bus;
let tls: ServiceTls;
let api: BillingApi;
let app: FastifyInstance;
const cleanups: (() => Promise<unknown>)[] = [];

/** The routes on an app as the gateway builds it: its error handler, its principals, these routes. */
async function appWith(billingApi: BillingApi): Promise<FastifyInstance> {
  const a = Fastify({ ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: true, useDefaults: false } } });
  installErrorHandler(a);
  a.decorateRequest<Principal, 'principal'>('principal', null as unknown as Principal);
  a.addHook('onRequest', async (req) => {
    const principal = PRINCIPALS[(req.headers.authorization ?? '').replace(/^Bearer /, '')];
    if (!principal) throw Object.assign(new Error('unknown token'), { statusCode: 401 });
    req.principal = principal;
  });
  await a.register(costRoutes, { billing: billingApi, access });
  await a.ready();
  return a;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'paddock-gateway-costs-'));
  await chmod(dir, 0o755);
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const home = join(dir, 'home');
  const [nats, db] = await Promise.all([startNatsServer(), freePort().then((port) => startEmbeddedPostgres({ dir: join(dir, 'postgres'), port }))]);
  cleanups.push(() => nats.stop(), () => db.stop());
  const password = randomPassword();
  await ensureServiceRoles(db.url, [{ service: 'billing', password }]);
  await ensurePki(planeDir(home), { services: ['billing', 'gateway'] });
  const env = { PADDOCK_HOME: home, DATABASE_URL: serviceDatabaseUrl(db.url, 'billing', password), NATS_URL: nats.url };
  const log = createLogger('gateway-costs-test', 'silent');
  billing = await startBilling(
    {
      ...commonConfig(env),
      grpcHost: '127.0.0.1',
      grpcPort: 0,
      tls: tlsFilesFromEnv(env, 'billing'),
      defaultPricesFile: DEFAULT_PRICES_FILE,
      ingestConcurrency: 64,
      ingestBatchMax: 100,
      webhooks: { timeoutMs: 2_000, maxAttempts: 3, initialDelayMs: 100, maxDelayMs: 200 },
      metricsPort: 0,
      bus: {},
    },
    log,
  );
  cleanups.push(() => billing.stop());
  bus = await Bus.connect({ url: nats.url, name: 'gateway-costs-test', log });
  cleanups.push(() => bus.drain());
  tls = await loadServiceTls(tlsFilesFromEnv({ PADDOCK_HOME: home }, 'gateway'));
  api = new BillingApi(billing.grpcAddress, tls);
  cleanups.push(async () => api.close());
  app = await appWith(api);
  cleanups.push(() => app.close());

  for (const [executionId, projectId] of Object.entries(EXECUTIONS)) {
    const account = { executionId, ownerId: 'u-alice', projectId, teamId: TEAM_OF[projectId]!, workflowId: '', llmKeySha256: '', sealedLlmCredentials: Buffer.alloc(0), requestedAtMs: Date.now() };
    await bus.publish(topics.executionAccount, executionId, account, { msgId: `${executionId}.account` });
  }
  // $2.50, $10 and $5 of gpt-4o input.
  const tokens: Record<string, number> = { e1: 1_000_000, e2: 4_000_000, e3: 2_000_000 };
  for (const [executionId, inputTokens] of Object.entries(tokens)) {
    const eventId = `${executionId}.llm.1`;
    await bus.publish(
      topics.usageLlm,
      executionId,
      { eventId, executionId, provider: 'openai', model: 'gpt-4o', inputTokens, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, streamed: true, status: 200, durationMs: 10, atMs: Date.UTC(2025, 4, 20, 12), api: 'chat.completions' },
      { msgId: eventId },
    );
  }
  for (let deadline = Date.now() + 15_000; ; ) {
    const report = await api.queryCosts({ groupBy: 1, fromMs: 0, toMs: 0, scope: { all: true, projectIds: [] }, teamIds: [], limit: 0 });
    if (report.rows.length === 3 && report.rows.every((r) => r.costMicros > 0)) break;
    if (Date.now() > deadline) throw new Error('the usage was not ingested in time');
    await new Promise((r) => setTimeout(r, 50));
  }
});

after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

interface BudgetAnswer {
  id: string;
  scope: string;
  scopeId: string;
  name: string;
  period: string;
  thresholdsPercent: number[];
  hard: boolean;
  action: string;
  limitMicros: number;
  spentMicros: number;
  periodEnd: string | null;
  webhookUrl: string | null;
}

/** The fields of the API's answers that these tests read; each answer has some of them. */
interface Answer {
  error: { code: string; message: string };
  rows: { key: string; costMicros: number; llmCalls: number }[];
  totals: { costMicros: number };
  currency: string;
  from: string | null;
  to: string | null;
  costMicros: number;
  ended: boolean;
  models: { model: string; calls: number; cacheReadMicrosPerMillion: number }[];
  version: number;
  createdBy: string;
  budget: BudgetAnswer;
  /** Absent unless the answer shows a secret. */
  webhookSecret: string;
  items: BudgetAnswer[];
}

async function request(as: string, method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, payload?: object) {
  const r = await app.inject({ method, url, headers: { authorization: `Bearer ${as}` }, ...(payload === undefined ? {} : { payload }) });
  return { status: r.statusCode, body: (r.body === '' ? {} : r.json()) as Answer, headers: r.headers };
}

test('costs cover the projects the caller may see, grouped as asked, over the range asked', async () => {
  const alice = await request('alice', 'GET', '/api/v1/costs');
  assert.equal(alice.status, 200);
  assert.deepEqual(alice.body.rows.map((r) => [r.key, r.costMicros]), [['p-a2', 5_000_000], ['p-a', 2_500_000]]);
  assert.equal(alice.body.totals.costMicros, 7_500_000);
  assert.equal(alice.body.currency, 'USD');
  const admin = await request('admin', 'GET', '/api/v1/costs?groupBy=execution');
  assert.deepEqual(admin.body.rows.map((r) => r.key), ['e2', 'e3', 'e1']);
  assert.deepEqual((await request('carol', 'GET', '/api/v1/costs?groupBy=team')).body.rows.map((r) => r.key), ['t-b']);
  const narrowed = await request('alice', 'GET', '/api/v1/costs?groupBy=execution&project=p-a');
  assert.deepEqual(narrowed.body.rows.map((r) => r.key), ['e1']);
  assert.equal((await request('alice', 'GET', '/api/v1/costs?project=p-b')).status, 404, "another team's project is not found");
  assert.deepEqual((await request('admin', 'GET', '/api/v1/costs?team=t-b')).body.rows.map((r) => r.key), ['p-b']);
  const ranged = await request('admin', 'GET', '/api/v1/costs?groupBy=model&from=2025-05-20&to=2025-05-21T00:00:00Z');
  assert.deepEqual([ranged.body.from, ranged.body.to], ['2025-05-20T00:00:00.000Z', '2025-05-21T00:00:00.000Z']);
  assert.deepEqual(ranged.body.rows.map((r) => [r.key, r.llmCalls]), [['openai/gpt-4o', 3]]);
  assert.deepEqual((await request('admin', 'GET', `/api/v1/costs?from=${Date.UTC(2025, 4, 21)}`)).body.rows, []);
  const bad = await request('admin', 'GET', '/api/v1/costs?from=yesterday');
  assert.deepEqual([bad.status, bad.body.error.code], [400, 'invalid_request']);
  assert.equal((await request('admin', 'GET', '/api/v1/costs?groupBy=planet')).status, 400);
  assert.equal((await request('admin', 'GET', '/api/v1/costs?from=2025-06-01&to=2025-05-01')).status, 400);
});

test("an execution's cost, to those who may see its project and to its own run", async () => {
  const bob = await request('bob', 'GET', '/api/v1/executions/e1/cost');
  assert.equal(bob.status, 200);
  assert.deepEqual([bob.body.costMicros, bob.body.ended, bob.body.models[0]?.model, bob.body.models[0]?.calls], [2_500_000, false, 'gpt-4o', 1]);
  assert.equal((await request('bob', 'GET', '/api/v1/executions/e2/cost')).status, 404);
  assert.equal((await request('bob', 'GET', '/api/v1/executions/nope/cost')).status, 404);
  assert.equal((await request('run-e2', 'GET', '/api/v1/executions/e2/cost')).body.costMicros, 10_000_000);
});

test('everyone reads the prices; only the admin sets them, as a new version', async () => {
  const prices = await request('bob', 'GET', '/api/v1/prices');
  assert.deepEqual([prices.status, prices.body.version, prices.body.currency], [200, 1, 'USD']);
  assert.ok(prices.body.models.some((m) => m.model === 'gpt-4o'));
  const list = { note: 'ours', models: [{ provider: 'openai', model: 'gpt-4o', inputMicrosPerMillion: 2_000_000, outputMicrosPerMillion: 8_000_000 }], compute: { cpuMicrosPerMillionCpuSeconds: 10_000_000, memoryMicrosPerMillionGibSeconds: 1_000_000 } };
  const refused = await request('alice', 'PUT', '/api/v1/prices', list);
  assert.deepEqual([refused.status, refused.body.error.message], [403, 'only the admin may set prices']);
  const set = await request('admin', 'PUT', '/api/v1/prices', list);
  assert.deepEqual([set.status, set.body.version, set.body.createdBy, set.body.models[0]?.cacheReadMicrosPerMillion], [200, 2, 'u-admin', 0]);
  assert.equal((await request('bob', 'GET', '/api/v1/prices')).body.version, 2);
  assert.equal((await request('bob', 'GET', '/api/v1/prices?version=1')).body.version, 1);
  assert.equal((await request('bob', 'GET', '/api/v1/prices?version=7')).status, 404);
  const invalid = await request('admin', 'PUT', '/api/v1/prices', { ...list, currency: 'EUR' });
  assert.deepEqual([invalid.status, invalid.body.error.code], [400, 'invalid_request']);
  assert.match(invalid.body.error.message, /prices are in USD/);
});

test('budgets: project and team admins make and change them, members see them, others do not; the webhook secret is shown once; a spent hard budget stops new work', async () => {
  const denied = await request('bob', 'POST', '/api/v1/budgets', { project: 'p-a', limitMicros: 1_000_000 });
  assert.deepEqual([denied.status, denied.body.error.message], [403, 'this needs the admin role or above in project p-a (yours is viewer)']);
  assert.equal((await request('carol', 'POST', '/api/v1/budgets', { project: 'p-a', limitMicros: 1_000_000 })).status, 404);
  assert.equal((await request('alice', 'POST', '/api/v1/budgets', { project: 'p-a', team: 't-a', limitMicros: 1_000_000 })).status, 400);
  assert.equal((await request('alice', 'POST', '/api/v1/budgets', { limitMicros: 1_000_000 })).status, 400);

  const made = await request('alice', 'POST', '/api/v1/budgets', { project: 'p-a', name: 'p-a monthly', limitMicros: 2_000_000, period: 'total', hard: true, webhookUrl: 'https://hooks.example.com/paddock' });
  assert.equal(made.status, 201);
  const budget = made.body.budget;
  assert.deepEqual([budget.scope, budget.scopeId, budget.period, budget.thresholdsPercent, budget.hard, budget.action, budget.spentMicros, budget.periodEnd], ['project', 'p-a', 'total', [50, 80, 100], true, 'reject', 2_500_000, null]);
  assert.match(made.body.webhookSecret, /^whsec_/);
  const team = await request('alice', 'POST', '/api/v1/budgets', { team: 't-a', limitMicros: 100_000_000, period: 'week' });
  assert.equal(team.status, 201);
  await request('carol', 'POST', '/api/v1/budgets', { team: 't-b', limitMicros: 100_000_000 });

  const seen = await request('bob', 'GET', '/api/v1/budgets');
  assert.deepEqual(seen.body.items.map((b) => b.id).sort(), [budget.id, team.body.budget.id].sort());
  assert.ok(!JSON.stringify(seen.body).includes(made.body.webhookSecret));
  assert.equal((await request('admin', 'GET', '/api/v1/budgets')).body.items.length, 3);
  assert.deepEqual((await request('bob', 'GET', '/api/v1/budgets?project=p-a2')).body.items.map((b) => b.scope), ['team'], "the team's budget applies to its projects");
  assert.equal((await request('carol', 'GET', '/api/v1/budgets?team=t-a')).status, 404);

  assert.equal((await request('bob', 'PATCH', `/api/v1/budgets/${budget.id}`, { limitMicros: 5 })).status, 403);
  assert.equal((await request('carol', 'PATCH', `/api/v1/budgets/${budget.id}`, { limitMicros: 5 })).status, 404, "another team's budget is not found");
  assert.equal((await request('alice', 'PATCH', `/api/v1/budgets/${budget.id}`, {})).status, 400);
  const patched = await request('alice', 'PATCH', `/api/v1/budgets/${budget.id}`, { limitMicros: 2_400_000, rotateWebhookSecret: true });
  assert.deepEqual([patched.status, patched.body.budget.limitMicros, patched.body.budget.name, patched.body.budget.webhookUrl], [200, 2_400_000, 'p-a monthly', 'https://hooks.example.com/paddock']);
  assert.match(patched.body.webhookSecret, /^whsec_/);
  assert.notEqual(patched.body.webhookSecret, made.body.webhookSecret);
  assert.equal((await request('alice', 'PATCH', `/api/v1/budgets/${budget.id}`, { name: 'x' })).body.webhookSecret, undefined);

  // The spent hard budget of p-a stops new work of p-a, as the executions route asks on submit.
  const admission = new BudgetAdmission(api);
  assert.deepEqual(await admission.check('p-a2', 't-a'), { allowed: true });
  const stopped = await admission.check('p-a', 't-a');
  assert.equal(stopped.allowed, false);
  if (!stopped.allowed) {
    assert.deepEqual([stopped.action, stopped.budgetId, stopped.periodEndMs], ['reject', budget.id, null]);
    assert.match(stopped.message, /the hard budget "x" .* is spent: \$2\.50 of \$2\.40 in total/);
  }

  assert.equal((await request('carol', 'DELETE', `/api/v1/budgets/${budget.id}`)).status, 404);
  assert.equal((await request('alice', 'DELETE', `/api/v1/budgets/${budget.id}`)).status, 204);
  assert.equal((await request('alice', 'DELETE', `/api/v1/budgets/${budget.id}`)).status, 404);
  assert.deepEqual(await admission.check('p-a', 't-a'), { allowed: true });
});

test('billing away is 503 with Retry-After, not a failure of the gateway', async () => {
  const away = new BillingApi(`127.0.0.1:${await freePort()}`, tls, { deadlineMs: 2_000 });
  const lonely = await appWith(away);
  try {
    for (const url of ['/api/v1/costs', '/api/v1/prices', '/api/v1/budgets', '/api/v1/executions/e1/cost']) {
      const r = await lonely.inject({ method: 'GET', url, headers: { authorization: 'Bearer admin' } });
      assert.equal(r.statusCode, 503, url);
      assert.equal(r.headers['retry-after'], '2');
      assert.equal((r.json() as { error: { code: string } }).error.code, 'unavailable');
    }
  } finally {
    await lonely.close();
    away.close();
  }
});
