// Budgets over real NATS, PostgreSQL and HTTP: alerts once per threshold and period on the bus and to a
// signed webhook, retries of a failing webhook, admission under spent hard budgets, and their API.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, test } from 'node:test';
import { status, type ServiceError } from '@grpc/grpc-js';
import { topics, type Subscription } from '@paddock/bus';
import type { BillingClient, BudgetExceeded, PutBudgetRequest } from '@paddock/proto';
import { account, call, eventually, llmUsage, newExecutionId, publish, startBillingStack, startWebhookReceiver, type BillingStack } from './support.js';

const DAY = 24 * 60 * 60 * 1000;
/** A Wednesday noon, UTC: the clock billing's budgets read. */
let nowMs = Date.UTC(2031, 2, 12, 12);

let stack: BillingStack;
let client: BillingClient;
let alerts: BudgetExceeded[];
let listening: Subscription;

before(async () => {
  stack = await startBillingStack({ clock: () => nowMs });
  client = await stack.client();
  alerts = [];
  // As the gateway follows them.
  listening = await stack.bus.consume(topics.budgetExceeded, { durable: 'gateway-budgets' }, async ({ message }) => {
    alerts.push(message);
  });
});

after(async () => {
  await listening?.stop();
  await stack?.stop();
});

function budget(fields: Partial<PutBudgetRequest>): Promise<{ id: string; secret: string }> {
  return call(client, client.putBudget, {
    id: '',
    name: '',
    scope: 'project',
    scopeId: 'p-none',
    limitMicros: 10_000_000,
    period: 'day',
    thresholdsPercent: [],
    hard: false,
    action: '',
    webhookUrl: '',
    changedBy: 'u-admin',
    rotateWebhookSecret: false,
    ...fields,
  }).then((r) => ({ id: r.budget!.id, secret: r.webhookSecret }));
}

/** `dollars` of gpt-4o input ($2.50 per million tokens) by a new execution of the project, at the clock's time. */
async function spend(projectId: string, teamId: string, dollars: number): Promise<void> {
  const id = newExecutionId();
  await publish.account(stack.bus, account(id, { projectId, teamId }));
  const usage = llmUsage(id, { model: 'gpt-4o', inputTokens: dollars * 400_000, outputTokens: 0, atMs: nowMs });
  await publish.llm(stack.bus, usage);
  await eventually('the spending stored', async () => ((await stack.billing.pool.query('SELECT 1 FROM usage WHERE event_id = $1', [usage.eventId])).rowCount ? true : undefined));
}

function alertsOf(budgetId: string): BudgetExceeded[] {
  return alerts.filter((a) => a.budgetId === budgetId);
}

test('each threshold alerts once per period, on the bus and to the webhook, signed; the next period alerts again', async () => {
  const hook = await startWebhookReceiver();
  try {
    const { id, secret } = await budget({ scopeId: 'p-daily', name: 'daily cap', webhookUrl: hook.url });
    assert.match(secret, /^whsec_/);
    const dayStart = Date.UTC(2031, 2, 12);
    await spend('p-daily', 't-daily', 4);
    await spend('p-daily', 't-daily', 3);
    await eventually('the 50% alert', async () => (alertsOf(id).length === 1 ? true : undefined));
    await spend('p-daily', 't-daily', 5);
    await eventually('the 80% and 100% alerts', async () => (alertsOf(id).length === 3 && hook.calls.length === 3 ? true : undefined));
    await spend('p-daily', 't-daily', 1);
    // Time for a wrong repeat to show.
    await new Promise((r) => setTimeout(r, 700));
    assert.deepEqual(
      alertsOf(id).map((a) => [a.thresholdPercent, a.periodStartMs, a.periodEndMs, a.spentMicros, a.limitMicros, a.scope, a.scopeId, a.name]),
      [
        [50, dayStart, dayStart + DAY, 7_000_000, 10_000_000, 'project', 'p-daily', 'daily cap'],
        [80, dayStart, dayStart + DAY, 12_000_000, 10_000_000, 'project', 'p-daily', 'daily cap'],
        [100, dayStart, dayStart + DAY, 12_000_000, 10_000_000, 'project', 'p-daily', 'daily cap'],
      ],
    );
    assert.equal(hook.calls.length, 3);
    const bodies = hook.calls.map((c) => {
      assert.equal(c.headers['content-type'], 'application/json');
      assert.equal(c.headers['x-paddock-signature'], `sha256=${createHmac('sha256', secret).update(c.body).digest('hex')}`, 'signed with the secret shown at creation');
      const body = JSON.parse(c.body) as { id: string; type: string; thresholdPercent: number; spentMicros: number };
      assert.equal(c.headers['x-paddock-event-id'], body.id);
      assert.ok(Math.abs(Number(c.headers['x-paddock-timestamp']) - Date.now()) < 60_000);
      return body;
    });
    assert.deepEqual(bodies.map((b) => [b.type, b.id, b.thresholdPercent]).sort(), [
      ['budget.exceeded', `${id}.${dayStart}.100`, 100],
      ['budget.exceeded', `${id}.${dayStart}.50`, 50],
      ['budget.exceeded', `${id}.${dayStart}.80`, 80],
    ]);

    nowMs += DAY;
    await spend('p-daily', 't-daily', 6);
    await eventually("the next day's 50% alert", async () => (alertsOf(id).length === 4 && hook.calls.length === 4 ? true : undefined));
    assert.deepEqual([alertsOf(id)[3]!.thresholdPercent, alertsOf(id)[3]!.periodStartMs, alertsOf(id)[3]!.spentMicros], [50, dayStart + DAY, 6_000_000]);
  } finally {
    await hook.close();
  }
});

test('a failing webhook is retried with backoff until it answers 2xx, and then never called again', async () => {
  const hook = await startWebhookReceiver((n) => (n <= 2 ? 500 : 200));
  try {
    const { id } = await budget({ scopeId: 'p-flaky', thresholdsPercent: [100], limitMicros: 1_000_000, webhookUrl: hook.url });
    await spend('p-flaky', 't-flaky', 2);
    await eventually('the third call', async () => (hook.calls.length >= 3 ? true : undefined));
    await new Promise((r) => setTimeout(r, 1_000));
    assert.equal(hook.calls.length, 3);
    assert.deepEqual(new Set(hook.calls.map((c) => c.headers['x-paddock-event-id'])), new Set([`${id}.${Date.UTC(2031, 2, 13)}.100`]));
    const row = (await stack.billing.pool.query('SELECT attempts, delivered_at_ms IS NOT NULL AS delivered, last_error AS "lastError" FROM webhook_deliveries WHERE budget_id = $1', [id])).rows;
    assert.deepEqual(row, [{ attempts: 3, delivered: true, lastError: '' }]);
    assert.equal(alertsOf(id).length, 1);
  } finally {
    await hook.close();
  }
});

test('a spent hard budget stops new work of its project and team, rejecting before queueing, and stops LLM calls', async () => {
  const team = await budget({ scope: 'team', scopeId: 't-hard', name: 'team cap', hard: true, action: 'queue', limitMicros: 1_000_000 });
  const project = await budget({ scopeId: 'p-hard', name: 'project cap', hard: true, action: 'reject', limitMicros: 1_000_000, period: 'month' });
  await budget({ scopeId: 'p-hard', name: 'soft', hard: false, limitMicros: 1 });
  const allowed = await call(client, client.admission, { projectId: 'p-hard', teamId: 't-hard' });
  assert.equal(allowed.allowed, true);
  await spend('p-hard', 't-hard', 2);
  const refused = await call(client, client.admission, { projectId: 'p-hard', teamId: 't-hard' });
  assert.deepEqual([refused.allowed, refused.budgetId, refused.name, refused.action, refused.spentMicros, refused.limitMicros], [false, project.id, 'project cap', 'reject', 2_000_000, 1_000_000]);
  assert.equal(refused.message, `the hard budget "project cap" (${project.id}) of project p-hard is spent: $2.00 of $1.00 this month (until 2031-04-01 00:00 UTC); new work is refused until the period turns or its limit is raised`);
  const queued = await call(client, client.admission, { projectId: 'p-hard-sibling', teamId: 't-hard' });
  assert.deepEqual([queued.allowed, queued.budgetId, queued.action], [false, team.id, 'queue']);
  assert.match(queued.message, /"team cap".*new work waits/);
  assert.equal((await call(client, client.admission, { projectId: 'p-elsewhere', teamId: 't-elsewhere' })).allowed, true);

  const gate = stack.billing.ports.budgets;
  assert.equal((await gate.blockingBudget({ projectId: 'p-hard-sibling', teamId: 't-hard' }))?.budgetId, team.id, 'LLM calls stop whatever the action for new work');
  await call(client, client.putBudget, {
    id: team.id, name: 'team cap', scope: 'team', scopeId: 't-hard', limitMicros: 100_000_000, period: 'day', thresholdsPercent: [], hard: true, action: 'queue', webhookUrl: '', changedBy: 'u-admin', rotateWebhookSecret: false,
  });
  await eventually('the gate opens once its answer expires', async () => ((await gate.blockingBudget({ projectId: 'p-hard-sibling', teamId: 't-hard' })) === undefined ? true : undefined), 5_000);
});

test('budgets are listed by scope with their spending; a budget cannot move; a new one over a spent period alerts at once', async () => {
  await spend('p-list', 't-list', 3);
  const { id, secret } = await budget({ scopeId: 'p-list', limitMicros: 2_000_000, period: 'week', thresholdsPercent: [100, 10, 10] });
  await eventually('the alert of the new budget', async () => (alertsOf(id).length === 2 ? true : undefined));
  assert.deepEqual(alertsOf(id).map((a) => a.thresholdPercent), [10, 100]);
  const listed = await call(client, client.listBudgets, { all: false, projectIds: ['p-list'], teamIds: [] });
  assert.deepEqual(
    listed.budgets.map((b) => [b.id, b.name, b.period, b.thresholdsPercent, b.spentMicros, b.periodStartMs, b.action, b.createdBy]),
    [[id, 'weekly budget of project p-list', 'week', [10, 100], 3_000_000, Date.UTC(2031, 2, 10), 'reject', 'u-admin']],
  );
  assert.equal(listed.currency, 'USD');
  assert.equal((await call(client, client.listBudgets, { all: false, projectIds: [], teamIds: ['t-hard'] })).budgets.length, 1);
  assert.ok((await call(client, client.listBudgets, { all: true, projectIds: [], teamIds: [] })).budgets.length >= 5);
  assert.ok(!JSON.stringify(listed).includes(secret), 'the webhook secret is shown once only');

  const invalid = (fields: Partial<PutBudgetRequest>, pattern: RegExp) =>
    assert.rejects(budget(fields), (err: ServiceError) => err.code === status.INVALID_ARGUMENT && pattern.test(err.details));
  await invalid({ id, scopeId: 'p-other' }, /cannot move/);
  await invalid({ period: 'year' }, /period must be day, week, month or total/);
  await invalid({ limitMicros: 0 }, /limit must be/);
  await invalid({ webhookUrl: 'ftp://example.com/x' }, /http or https/);
  await invalid({ thresholdsPercent: [0] }, /threshold/);
  const rotated = await call(client, client.putBudget, {
    id, name: 'renamed', scope: 'project', scopeId: 'p-list', limitMicros: 2_000_000, period: 'week', thresholdsPercent: [10, 100], hard: false, action: '', webhookUrl: '', changedBy: 'u-admin', rotateWebhookSecret: true,
  });
  assert.equal(rotated.budget?.name, 'renamed');
  assert.match(rotated.webhookSecret, /^whsec_/);
  assert.notEqual(rotated.webhookSecret, secret);
  assert.deepEqual(await call(client, client.deleteBudget, { id }), { found: true });
  assert.deepEqual(await call(client, client.deleteBudget, { id }), { found: false });
  await assert.rejects(call(client, client.getBudget, { id }), (err: ServiceError) => err.code === status.NOT_FOUND);
});
