// Cost rollups through the gRPC API: every grouping, ranges that cut hours, scopes and team filters.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { status, type ServiceError } from '@grpc/grpc-js';
import { CostGroup, type BillingClient, type CostQuery, type CostReport } from '@paddock/proto';
import { account, call, computeUsage, eventually, llmUsage, publish, startBillingStack, type BillingStack } from './support.js';

const HOUR = 60 * 60 * 1000;
const MIN = 60 * 1000;
/** 10:00 UTC on a day in the past: every event below is placed relative to it. */
const H = Date.UTC(2025, 0, 10, 10);
/** $1 per million tokens of these, in micro-units. */
const GPT4O_IN = 2_500_000;
const SONNET_IN = 3_000_000;
const GEMINI_PRO_IN = 1_250_000;
/** One CPU-hour at the default price. */
const CPU_HOUR = 40_480;

let stack: BillingStack;
let client: BillingClient;

before(async () => {
  stack = await startBillingStack();
  client = await stack.client();
  await publish.account(stack.bus, account('e1', { ownerId: 'u-a', projectId: 'p-a', teamId: 't-1', workflowId: 'w-1' }));
  await publish.account(stack.bus, account('e2', { ownerId: 'u-b', projectId: 'p-a', teamId: 't-1', workflowId: 'w-1' }));
  await publish.account(stack.bus, account('e3', { ownerId: 'u-a', projectId: 'p-b', teamId: 't-2', workflowId: '' }));
  const million = { inputTokens: 1_000_000, outputTokens: 0 };
  await publish.llm(stack.bus, llmUsage('e1', { ...million, model: 'gpt-4o', atMs: H + 10 * MIN }));
  await publish.llm(stack.bus, llmUsage('e1', { ...million, provider: 'anthropic', model: 'claude-sonnet-4-5', atMs: H + 70 * MIN }));
  await publish.llm(stack.bus, llmUsage('e2', { ...million, model: 'gpt-4o', atMs: H + 130 * MIN }));
  await publish.compute(stack.bus, computeUsage('e2', 1, { cpuMs: HOUR, memoryMibMs: 0, wallMs: HOUR }, H + 30 * MIN));
  await publish.llm(stack.bus, llmUsage('e3', { ...million, provider: 'gemini', model: 'gemini-2.5-pro', atMs: H + 190 * MIN }));
  await publish.llm(stack.bus, llmUsage('e3', { inputTokens: 5, outputTokens: 5, model: 'gpt-unreleased', atMs: H + 20 * MIN }));
  await eventually('every event stored', async () => ((await stack.billing.pool.query('SELECT count(*)::int AS n FROM usage')).rows[0].n === 6 ? true : undefined));
});

after(async () => {
  await stack?.stop();
});

const ALL = { all: true, projectIds: [] };

function query(fields: Partial<CostQuery>): Promise<CostReport> {
  return call(client, client.queryCosts, { groupBy: CostGroup.COST_GROUP_PROJECT, fromMs: 0, toMs: 0, scope: ALL, teamIds: [], limit: 0, ...fields });
}

function costs(report: CostReport): [string, number][] {
  return report.rows.map((r) => [r.key, r.costMicros]);
}

test('costs by each grouping, most expensive first, with totals over every group', async () => {
  assert.deepEqual(costs(await query({ groupBy: CostGroup.COST_GROUP_PROJECT })), [
    ['p-a', GPT4O_IN + SONNET_IN + GPT4O_IN + CPU_HOUR],
    ['p-b', GEMINI_PRO_IN],
  ]);
  assert.deepEqual(costs(await query({ groupBy: CostGroup.COST_GROUP_EXECUTION })), [
    ['e1', GPT4O_IN + SONNET_IN],
    ['e2', GPT4O_IN + CPU_HOUR],
    ['e3', GEMINI_PRO_IN],
  ]);
  assert.deepEqual(costs(await query({ groupBy: CostGroup.COST_GROUP_WORKFLOW })), [
    ['w-1', GPT4O_IN + SONNET_IN + GPT4O_IN + CPU_HOUR],
    ['', GEMINI_PRO_IN],
  ]);
  assert.deepEqual(costs(await query({ groupBy: CostGroup.COST_GROUP_TEAM })), [
    ['t-1', GPT4O_IN + SONNET_IN + GPT4O_IN + CPU_HOUR],
    ['t-2', GEMINI_PRO_IN],
  ]);
  assert.deepEqual(costs(await query({ groupBy: CostGroup.COST_GROUP_USER })), [
    ['u-a', GPT4O_IN + SONNET_IN + GEMINI_PRO_IN],
    ['u-b', GPT4O_IN + CPU_HOUR],
  ]);
  const byModel = await query({ groupBy: CostGroup.COST_GROUP_MODEL });
  assert.deepEqual(costs(byModel), [
    ['openai/gpt-4o', 2 * GPT4O_IN],
    ['anthropic/claude-sonnet-4-5', SONNET_IN],
    ['gemini/gemini-2.5-pro', GEMINI_PRO_IN],
    ['compute', CPU_HOUR],
    ['openai/gpt-unreleased', 0],
  ]);
  assert.deepEqual(byModel.rows.find((r) => r.key === 'openai/gpt-4o')!.executions, 2);
  assert.deepEqual(byModel.rows.find((r) => r.key === 'compute')!.cpuMs, HOUR);
  assert.deepEqual(byModel.rows.find((r) => r.key === 'openai/gpt-unreleased')!.unpricedModels, ['openai/gpt-unreleased']);
  const totals = byModel.totals!;
  assert.equal(totals.costMicros, 2 * GPT4O_IN + SONNET_IN + GEMINI_PRO_IN + CPU_HOUR);
  assert.equal(totals.llmCostMicros, 2 * GPT4O_IN + SONNET_IN + GEMINI_PRO_IN);
  assert.equal(totals.computeCostMicros, CPU_HOUR);
  assert.equal(totals.executions, 3, 'each execution once, however many groups it is in');
  assert.equal(totals.llmCalls, 5);
  assert.equal(totals.inputTokens, 4_000_005);
  assert.deepEqual(totals.unpricedModels, ['openai/gpt-unreleased']);
  assert.equal(byModel.currency, 'USD');
});

test('a range that cuts hours counts the usage inside it, from whole hours and from the partial ones', async () => {
  // 10:05 to 12:15: whole hour 11:00-12:00 from the rollup, the ends from the ledger; 13:10 is out.
  const cut = await query({ groupBy: CostGroup.COST_GROUP_EXECUTION, fromMs: H + 5 * MIN, toMs: H + 135 * MIN });
  assert.deepEqual(costs(cut), [
    ['e1', GPT4O_IN + SONNET_IN],
    ['e2', GPT4O_IN + CPU_HOUR],
    ['e3', 0],
  ]);
  assert.deepEqual(cut.rows.find((r) => r.key === 'e3')!.unpricedModels, ['openai/gpt-unreleased']);
  // 10:15 to 11:05: no whole hour inside.
  assert.deepEqual(costs(await query({ groupBy: CostGroup.COST_GROUP_EXECUTION, fromMs: H + 15 * MIN, toMs: H + 65 * MIN })), [
    ['e2', CPU_HOUR],
    ['e3', 0],
  ]);
  // Whole hours exactly: 11:00 to 13:00.
  assert.deepEqual(costs(await query({ groupBy: CostGroup.COST_GROUP_EXECUTION, fromMs: H + HOUR, toMs: H + 3 * HOUR })), [
    ['e1', SONNET_IN],
    ['e2', GPT4O_IN],
  ]);
  // From is inclusive, to exclusive.
  assert.deepEqual(costs(await query({ groupBy: CostGroup.COST_GROUP_EXECUTION, fromMs: H + 10 * MIN, toMs: H + 70 * MIN })), [
    ['e1', GPT4O_IN],
    ['e2', CPU_HOUR],
    ['e3', 0],
  ]);
  assert.deepEqual((await query({ fromMs: H + 4 * HOUR })).rows, []);
});

test('the scope the gateway sends and the team filter bound what is seen', async () => {
  assert.deepEqual(costs(await query({ scope: { all: false, projectIds: ['p-b'] } })), [['p-b', GEMINI_PRO_IN]]);
  assert.deepEqual((await query({ scope: { all: false, projectIds: [] } })).rows, [], 'no project, nothing');
  assert.deepEqual(costs(await query({ groupBy: CostGroup.COST_GROUP_EXECUTION, teamIds: ['t-2'] })), [['e3', GEMINI_PRO_IN]]);
  assert.deepEqual(costs(await query({ scope: { all: false, projectIds: ['p-a'] }, teamIds: ['t-2'] })), []);
});

test('a limit keeps the most expensive groups and says the rest were left out; totals stay whole', async () => {
  const top = await query({ groupBy: CostGroup.COST_GROUP_EXECUTION, limit: 1 });
  assert.deepEqual(costs(top), [['e1', GPT4O_IN + SONNET_IN]]);
  assert.equal(top.truncated, true);
  assert.equal(top.totals!.executions, 3);
  assert.equal((await query({ groupBy: CostGroup.COST_GROUP_EXECUTION, limit: 3 })).truncated, false);
});

test('an execution cost by model and compute; a bad query is INVALID_ARGUMENT', async () => {
  const e2 = await call(client, client.executionCost, { executionId: 'e2' });
  assert.equal(e2.costMicros, GPT4O_IN + CPU_HOUR);
  assert.deepEqual([e2.projectId, e2.teamId, e2.ownerId, e2.workflowId, e2.known], ['p-a', 't-1', 'u-b', 'w-1', true]);
  assert.deepEqual(e2.compute, { cpuMs: HOUR, memoryMibMs: 0, wallMs: HOUR, costMicros: CPU_HOUR });
  const unknown = await call(client, client.executionCost, { executionId: 'nobody' });
  assert.equal(unknown.known, false);
  await assert.rejects(query({ fromMs: H, toMs: H }), (err: ServiceError) => err.code === status.INVALID_ARGUMENT && /range is empty/.test(err.details));
  await assert.rejects(query({ groupBy: CostGroup.COST_GROUP_UNSPECIFIED }), (err: ServiceError) => err.code === status.INVALID_ARGUMENT);
});
