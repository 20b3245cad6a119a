// Prices as data: model matching, integer money, the default list, the periods budgets count in.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { ValidationError } from '@paddock/errors';
import { describePeriod, periodAt } from '../src/budgets/periods.js';
import { cpuCostMicros, formatMicros, memoryCostMicros, tokensCostMicros } from '../src/money.js';
import { PriceBook } from '../src/prices/priceBook.js';
import { checkPriceList, type ModelPrice } from '../src/prices/priceList.js';
import { DEFAULT_PRICES_FILE } from '../src/prices/priceStore.js';

function entry(provider: string, model: string, input: number, output = 0, cacheRead = 0, cacheWrite = 0): ModelPrice {
  return { provider, model, inputMicrosPerMillion: input, outputMicrosPerMillion: output, cacheReadMicrosPerMillion: cacheRead, cacheWriteMicrosPerMillion: cacheWrite };
}

function book(models: ModelPrice[]): PriceBook {
  return new PriceBook({
    version: 1,
    currency: 'USD',
    note: '',
    createdBy: 'test',
    createdAtMs: 0,
    models,
    compute: { cpuMicrosPerMillionCpuSeconds: 11_244_444, memoryMicrosPerMillionGibSeconds: 1_234_722 },
  });
}

test('a model is priced by its own entry, else by the longest entry its name starts with up to a -, @ or :', () => {
  const prices = book([
    entry('openai', 'gpt-4o', 1),
    entry('openai', 'gpt-4o-mini', 2),
    entry('openai', 'gpt-4', 3),
    entry('anthropic', 'claude-sonnet-4', 4),
    entry('anthropic', 'claude-sonnet-4-5', 5),
    entry('anthropic', 'claude-opus-4-1-20250805', 6),
    entry('gemini', 'gemini-2.5-pro', 7),
  ]);
  const priced = (provider: string, model: string) => prices.modelPrice(provider, model)?.inputMicrosPerMillion;
  assert.equal(priced('openai', 'gpt-4o'), 1);
  assert.equal(priced('openai', 'gpt-4o-2024-08-06'), 1, 'a dated name finds its family');
  assert.equal(priced('openai', 'gpt-4o-mini-2024-07-18'), 2, 'the longer family wins');
  assert.equal(priced('openai', 'GPT-4o-Mini'), 2, 'names match whatever their case');
  assert.equal(priced('openai', 'gpt-4o1'), undefined, 'a prefix ends at a name boundary only');
  assert.equal(priced('openai', 'gpt-4.1'), undefined, 'a dot is no boundary: gpt-4 does not price gpt-4.1');
  assert.equal(priced('openai', 'gpt-4-turbo'), 3);
  assert.equal(priced('anthropic', 'claude-sonnet-4-5-20250929'), 5);
  assert.equal(priced('anthropic', 'claude-sonnet-4-20250514'), 4);
  assert.equal(priced('anthropic', 'claude-sonnet-4-5@20250929'), 5, 'Vertex names a snapshot after @');
  assert.equal(priced('anthropic', 'claude-opus-4-1'), undefined, 'an entry never prices a shorter name (an alias may move)');
  assert.equal(priced('gemini', 'models/gemini-2.5-pro'), 7, "Gemini's resource name");
  assert.equal(priced('openai', 'claude-sonnet-4-5'), undefined, 'prices are per provider');
});

test('tokens are priced per kind in integers, rounded half up once per kind; an unknown model is unpriced, not free', () => {
  const prices = book([entry('anthropic', 'claude-sonnet-4-5', 3_000_000, 15_000_000, 300_000, 3_750_000)]);
  const cost = prices.llmCost('anthropic', 'claude-sonnet-4-5-20250929', { inputTokens: 1234, outputTokens: 567, cacheReadTokens: 10_000, cacheWriteTokens: 2_001 });
  // 3702 + 8505 + 3000 + 7503.75 → 7504
  assert.deepEqual(cost, { costMicros: 3702 + 8505 + 3000 + 7504, unpriced: false });
  assert.deepEqual(prices.llmCost('anthropic', 'claude-unknown-9', { inputTokens: 5, outputTokens: 5, cacheReadTokens: 0, cacheWriteTokens: 0 }), { costMicros: 0, unpriced: true });
  assert.equal(tokensCostMicros(1, 499_999), 0);
  assert.equal(tokensCostMicros(1, 500_000), 1);
  // Far beyond 2^53 when multiplied: computed in BigInt, exact.
  assert.equal(tokensCostMicros(9_000_000_000, 1_000_000_000_000), 9_000_000_000_000_000);
});

test('compute is priced per million CPU-seconds and GiB-seconds', () => {
  // One CPU for an hour, at the default $0.04048 per vCPU-hour.
  assert.equal(cpuCostMicros(3_600_000, 11_244_444), 40_480);
  // One GiB for an hour, at $0.004445 per GB-hour.
  assert.equal(memoryCostMicros(1024 * 3_600_000, 1_234_722), 4_445);
  const prices = book([]);
  assert.equal(prices.computeCostMicros(3_600_000, 1024 * 3_600_000), 40_480 + 4_445);
});

test('money reads as dollars, with the fraction of a cent when there is one', () => {
  assert.equal(formatMicros(12_340_000, 'USD'), '$12.34');
  assert.equal(formatMicros(1_234, 'USD'), '$0.0012');
  assert.equal(formatMicros(0, 'USD'), '$0.00');
  assert.equal(formatMicros(-2_500_000, 'EUR'), '-2.50 EUR');
});

test('the default price list is valid, covers the common models and says it is a default to check', async () => {
  const list = checkPriceList(JSON.parse(await readFile(DEFAULT_PRICES_FILE, 'utf8')));
  assert.equal(list.currency, 'USD');
  assert.match(list.note, /check/i);
  const prices = book([...list.models]);
  for (const [provider, model] of [
    ['openai', 'gpt-4o-2024-08-06'],
    ['openai', 'gpt-4.1-mini-2025-04-14'],
    ['openai', 'gpt-5-2025-08-07'],
    ['openai', 'o4-mini-2025-04-16'],
    ['anthropic', 'claude-sonnet-4-5-20250929'],
    ['anthropic', 'claude-opus-4-1-20250805'],
    ['anthropic', 'claude-3-5-haiku-latest'],
    ['gemini', 'gemini-2.5-flash'],
    ['gemini', 'gemini-2.5-flash-lite'],
  ] as const) {
    assert.ok(prices.modelPrice(provider, model), `${provider}/${model} is priced`);
  }
  assert.equal(prices.modelPrice('openai', 'gpt-4o-mini-2024-07-18')?.model, 'gpt-4o-mini');
  assert.equal(prices.modelPrice('anthropic', 'claude-opus-4-1-20250805')?.model, 'claude-opus-4-1');
  assert.ok(list.compute.cpuMicrosPerMillionCpuSeconds > 0 && list.compute.memoryMicrosPerMillionGibSeconds > 0);
});

test('a price list that is wrong is refused with what to fix', () => {
  const compute = { cpuMicrosPerMillionCpuSeconds: 1, memoryMicrosPerMillionGibSeconds: 1 };
  const refused = (doc: unknown, pattern: RegExp) => assert.throws(() => checkPriceList(doc), (err: Error) => err instanceof ValidationError && pattern.test(err.message));
  refused({ models: [entry('openai', 'gpt-4o', 1.5)], compute }, /models\[0\]\.inputMicrosPerMillion must be a whole number/);
  refused({ models: [entry('openai', 'gpt-4o', -1)], compute }, /whole number/);
  refused({ models: [entry('openai', 'gpt-4o', 1), entry('openai', 'GPT-4o', 2)], compute }, /openai\/gpt-4o is priced twice/);
  refused({ models: [], compute: {} }, /compute\.cpuMicrosPerMillionCpuSeconds/);
  refused({ models: [] }, /compute/);
  refused({ currency: 'dollars', models: [], compute }, /ISO 4217/);
  refused({ models: [{ ...entry('openai', 'gpt-4o', 1), inputPrice: 3 }], compute }, /unknown field "inputPrice"/);
  assert.equal(checkPriceList({ models: [entry('OpenAI', 'Models/Gemini-X', 1)], compute }).models[0]?.model, 'gemini-x');
});

test('budget periods are UTC days, ISO weeks from Monday, calendar months, or the whole time', () => {
  // Wednesday 2025-06-11 10:30 UTC
  const now = Date.UTC(2025, 5, 11, 10, 30);
  assert.deepEqual(periodAt('day', now), { startMs: Date.UTC(2025, 5, 11), endMs: Date.UTC(2025, 5, 12) });
  assert.deepEqual(periodAt('week', now), { startMs: Date.UTC(2025, 5, 9), endMs: Date.UTC(2025, 5, 16) });
  assert.deepEqual(periodAt('week', Date.UTC(2025, 5, 15, 23, 59)), { startMs: Date.UTC(2025, 5, 9), endMs: Date.UTC(2025, 5, 16) }, 'Sunday ends the week');
  assert.deepEqual(periodAt('month', now), { startMs: Date.UTC(2025, 5, 1), endMs: Date.UTC(2025, 6, 1) });
  assert.deepEqual(periodAt('month', Date.UTC(2025, 11, 31, 23)), { startMs: Date.UTC(2025, 11, 1), endMs: Date.UTC(2026, 0, 1) });
  assert.deepEqual(periodAt('total', now), { startMs: 0, endMs: null });
  assert.equal(describePeriod('month', periodAt('month', now)), 'this month (until 2025-07-01 00:00 UTC)');
});
