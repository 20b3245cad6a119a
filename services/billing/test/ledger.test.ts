// The ledger over real NATS and PostgreSQL: idempotent ingest, compute deltas, prices, late attribution,
// dead letters and retries, and the ports the metering proxy uses.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, test } from 'node:test';
import { topics } from '@paddock/bus';
import { CostGroup, ExecutionState, type BillingClient } from '@paddock/proto';
import { PriceBook } from '../src/prices/priceBook.js';
import { checkPriceList } from '../src/prices/priceList.js';
import { account, call, computeUsage, eventually, llmUsage, newExecutionId, publish, startBillingStack, type BillingStack } from './support.js';

let stack: BillingStack;
let client: BillingClient;
let defaults: PriceBook;

before(async () => {
  stack = await startBillingStack();
  client = await stack.client();
  const prices = await call(client, client.getPrices, { version: 0 });
  defaults = new PriceBook({ ...checkPriceList({ currency: prices.currency, note: prices.note, models: prices.models, compute: prices.compute }), version: 1, createdBy: '', createdAtMs: 0 });
});

after(async () => {
  await stack?.stop();
});

async function ledgerRows(executionId: string): Promise<{ eventId: string; kind: string; costMicros: number; cpuMs: number; memoryMibMs: number; wallMs: number; unpriced: boolean; priceVersion: number }[]> {
  const r = await stack.billing.pool.query(
    `SELECT event_id AS "eventId", kind, cost_micros AS "costMicros", cpu_ms AS "cpuMs", memory_mib_ms AS "memoryMibMs", wall_ms AS "wallMs",
            unpriced, price_version AS "priceVersion"
       FROM usage WHERE execution_id = $1 ORDER BY at_ms, event_id`,
    [executionId],
  );
  return r.rows;
}

/** Messages of one execution are handled in order: once `marker` is in the ledger, everything before it was handled. */
async function settled(executionId: string): Promise<void> {
  const marker = llmUsage(executionId, { inputTokens: 0, outputTokens: 0 });
  await publish.llm(stack.bus, marker);
  await eventually(`the marker of ${executionId}`, async () => ((await ledgerRows(executionId)).some((r) => r.eventId === marker.eventId) ? true : undefined));
}

test('an LLM event delivered twice is one ledger row, priced with the current price version', async () => {
  const id = newExecutionId();
  const usage = llmUsage(id, { model: 'gpt-4o-2024-08-06', inputTokens: 1000, outputTokens: 100 });
  await publish.llm(stack.bus, usage);
  // The same event again past JetStream's duplicate window, as a replay would bring it.
  await publish.llm(stack.bus, usage, `${usage.eventId}.replayed`);
  await settled(id);
  const rows = (await ledgerRows(id)).filter((r) => r.eventId === usage.eventId);
  assert.equal(rows.length, 1);
  // gpt-4o at the default $2.50 in / $10 out per million tokens.
  assert.deepEqual(rows.map((r) => [r.costMicros, r.unpriced, r.priceVersion]), [[2_500 + 1_000, false, 1]]);
  const cost = await call(client, client.executionCost, { executionId: id });
  assert.equal(cost.costMicros, 3_500);
  assert.deepEqual(
    cost.models.map((m) => [m.provider, m.model, m.calls, m.inputTokens, m.outputTokens]),
    [['openai', 'gpt-4o-2024-08-06', 2, 1000, 100]],
    'the call and the marker',
  );
});

test('compute totals become deltas: a repeated or stale sequence changes nothing, and nothing is negative', async () => {
  const id = newExecutionId();
  const t0 = Date.now();
  await publish.compute(stack.bus, computeUsage(id, 1, { cpuMs: 1_000, memoryMibMs: 1_000, wallMs: 2_000 }, t0));
  await publish.compute(stack.bus, computeUsage(id, 3, { cpuMs: 5_000, memoryMibMs: 4_000, wallMs: 6_000 }, t0 + 2));
  // Arrives after 3: stale, its totals are older.
  await publish.compute(stack.bus, computeUsage(id, 2, { cpuMs: 3_000, memoryMibMs: 2_000, wallMs: 4_000 }, t0 + 1));
  await publish.compute(stack.bus, computeUsage(id, 3, { cpuMs: 5_000, memoryMibMs: 4_000, wallMs: 6_000 }, t0 + 2), `${id}.compute.3.again`);
  // A CPU total below the last one (a broker that lost count) adds no CPU, and takes none away.
  await publish.compute(stack.bus, computeUsage(id, 4, { cpuMs: 4_000, memoryMibMs: 8_000, wallMs: 8_000 }, t0 + 3));
  const rows = await eventually('seq 4 ingested', async () => {
    const r = await ledgerRows(id);
    return r.some((x) => x.eventId === `${id}.compute.4`) ? r : undefined;
  });
  assert.deepEqual(
    rows.map((r) => [r.eventId, r.cpuMs, r.memoryMibMs, r.wallMs]),
    [
      [`${id}.compute.1`, 1_000, 1_000, 2_000],
      [`${id}.compute.3`, 4_000, 3_000, 4_000],
      [`${id}.compute.4`, 0, 4_000, 2_000],
    ],
  );
  for (const r of rows) assert.ok(r.costMicros >= 0);
  const cost = await call(client, client.executionCost, { executionId: id });
  assert.deepEqual(cost.compute, { cpuMs: 5_000, memoryMibMs: 8_000, wallMs: 8_000, costMicros: defaults.computeCostMicros(5_000, 8_000) });
  assert.equal(
    rows.reduce((sum, r) => sum + r.costMicros, 0),
    defaults.computeCostMicros(5_000, 8_000),
    'the rows add up to the cost of the last totals, with no rounding error per row',
  );
});

test('a model without a price is counted in tokens and flagged unpriced, never silently free', async () => {
  const id = newExecutionId();
  await publish.account(stack.bus, account(id, { projectId: 'p-unpriced' }));
  await publish.llm(stack.bus, llmUsage(id, { provider: 'anthropic', model: 'claude-imaginary-9', inputTokens: 700, outputTokens: 70 }));
  await publish.llm(stack.bus, llmUsage(id, { provider: 'anthropic', model: 'claude-sonnet-4-5-20250929', inputTokens: 1_000_000, outputTokens: 0 }));
  await settled(id);
  const rows = await ledgerRows(id);
  assert.deepEqual(rows.filter((r) => r.unpriced).map((r) => r.costMicros), [0]);
  const report = await call(client, client.queryCosts, { groupBy: CostGroup.COST_GROUP_PROJECT, fromMs: 0, toMs: 0, scope: { all: false, projectIds: ['p-unpriced'] }, teamIds: [], limit: 0 });
  assert.equal(report.rows.length, 1);
  assert.deepEqual(report.rows[0]?.unpricedModels, ['anthropic/claude-imaginary-9']);
  assert.equal(report.rows[0]?.inputTokens, 1_000_700);
  assert.equal(report.rows[0]?.costMicros, 3_000_000, 'the priced call only: $3 per million input tokens');
  assert.deepEqual(report.totals?.unpricedModels, ['anthropic/claude-imaginary-9']);
  const cost = await call(client, client.executionCost, { executionId: id });
  assert.deepEqual(cost.models.filter((m) => m.unpriced).map((m) => [m.model, m.inputTokens, m.costMicros]), [['claude-imaginary-9', 700, 0]]);
});

test('usage that comes before its account is kept and attributed when the account arrives', async () => {
  const id = newExecutionId();
  const project = `p-late-${id}`;
  await publish.llm(stack.bus, llmUsage(id, { inputTokens: 2_000_000, outputTokens: 0 }));
  await settled(id);
  const query = { groupBy: CostGroup.COST_GROUP_PROJECT, fromMs: 0, toMs: 0, scope: { all: false, projectIds: [project] }, teamIds: [], limit: 0 };
  assert.deepEqual((await call(client, client.queryCosts, query)).rows, []);
  const unattributed = await call(client, client.queryCosts, { ...query, groupBy: CostGroup.COST_GROUP_EXECUTION, scope: { all: true, projectIds: [] } });
  assert.ok(unattributed.rows.some((r) => r.key === id), 'an administrator sees it, unattributed');
  await publish.account(stack.bus, account(id, { projectId: project, teamId: 't-late', ownerId: 'u-late' }));
  const report = await eventually('the usage under its project', async () => {
    const r = await call(client, client.queryCosts, query);
    return r.rows.length > 0 ? r : undefined;
  });
  assert.deepEqual(report.rows.map((r) => [r.key, r.costMicros, r.executions]), [[project, 5_000_000, 1]]);
});

test('a message that can never be stored is dead-lettered with the reason; the others go on', async () => {
  const id = newExecutionId();
  const stray = llmUsage(newExecutionId());
  // Published on the subject of another execution: the attribution would be wrong.
  await stack.bus.publish(topics.usageLlm, id, stray, { msgId: stray.eventId });
  await stack.bus.publish(topics.usageLlm, id, llmUsage(id, { eventId: '' }), { msgId: `${id}.no-id` });
  await settled(id);
  const letters = await eventually('two dead letters', async () => {
    const found = (await stack.bus.deadLetters('billing-llm')).filter((l) => l.originalSubject === topics.usageLlm.subject(id));
    return found.length === 2 ? found : undefined;
  });
  assert.match(letters[0]!.reason, /was published on the subject of execution/);
  assert.match(letters[1]!.reason, /no valid event id/);
  const computeLetter = newExecutionId();
  await publish.compute(stack.bus, computeUsage(computeLetter, 0, { cpuMs: 1, memoryMibMs: 1, wallMs: 1 }));
  const dead = await eventually('the compute dead letter', async () => (await stack.bus.deadLetters('billing-compute')).find((l) => l.originalSubject === topics.usageCompute.subject(computeLetter)));
  assert.match(dead.reason, /seq starts at 1/);
});

test('while PostgreSQL is down, usage waits on the bus and is stored once it is back', async () => {
  const id = newExecutionId();
  const usage = llmUsage(id, { inputTokens: 4_000_000, outputTokens: 0 });
  await stack.databaseDown(async () => {
    await publish.llm(stack.bus, usage);
    // Long enough for the consumer to try, fail and schedule a retry.
    await new Promise((r) => setTimeout(r, 1_500));
  });
  const rows = await eventually('the event after the outage', async () => {
    const r = await ledgerRows(id);
    return r.length > 0 ? r : undefined;
  }, 60_000);
  assert.deepEqual(rows.map((r) => [r.eventId, r.costMicros]), [[usage.eventId, 10_000_000]]);
  assert.ok((stack.billing.bus.stats().consumers['billing-llm']?.retried ?? 0) >= 1, 'the failed write was retried, not dead-lettered');
});

test("the metering proxy's ports: a run known by its key's hash until its execution is final, and usage through the bus", async () => {
  const id = newExecutionId();
  const runKey = `plk_${id}_secret`;
  const sha256 = createHash('sha256').update(runKey).digest('hex');
  const sealed = Buffer.from('sealed provider keys');
  await publish.account(stack.bus, account(id, { llmKeySha256: sha256, sealedLlmCredentials: sealed, projectId: 'p-proxy', teamId: 't-proxy', workflowId: 'wf-1' }));
  const run = await eventually('the run', () => stack.billing.ports.runs.byKeyHash(sha256));
  assert.deepEqual({ ...run, sealedCredentials: run.sealedCredentials.toString() }, {
    executionId: id,
    ownerId: 'u-alice',
    projectId: 'p-proxy',
    teamId: 't-proxy',
    workflowId: 'wf-1',
    ended: false,
    sealedCredentials: 'sealed provider keys',
  });
  assert.equal(await stack.billing.ports.runs.byKeyHash(createHash('sha256').update('plk_unknown').digest('hex')), undefined);
  const usage = llmUsage(id, { provider: 'gemini', model: 'models/gemini-2.5-flash', inputTokens: 1_000_000, outputTokens: 1_000_000, api: 'streamGenerateContent' });
  await stack.billing.ports.usage.publish(usage);
  // The proxy's retry of a publish whose ack was lost: the same message id, stored once.
  await stack.billing.ports.usage.publish(usage);
  const cost = await eventually('the proxied call in the ledger', async () => {
    const c = await call(client, client.executionCost, { executionId: id });
    return c.models.length > 0 ? c : undefined;
  });
  assert.deepEqual(cost.models.map((m) => [m.provider, m.model, m.calls, m.costMicros]), [['gemini', 'gemini-2.5-flash', 1, 300_000 + 2_500_000]]);
  await stack.bus.publish(
    topics.executionState,
    id,
    { executionId: id, ownerId: 'u-alice', state: ExecutionState.EXECUTION_STATE_COMPLETED, version: 5, atMs: Date.now(), exitCode: 0, reason: '', brokerId: 'b', startedAtMs: 0, finishedAtMs: Date.now() },
    { msgId: `${id}.state.5` },
  );
  await eventually('the run ended', async () => ((await stack.billing.ports.runs.byKeyHash(sha256))?.ended ? true : undefined));
  assert.equal((await call(client, client.executionCost, { executionId: id })).ended, true);
});
