import { ValidationError } from '@paddock/errors';

/** Micro-units per million tokens of one model, or of every model whose name starts with `model`. */
export interface ModelPrice {
  readonly provider: string;
  readonly model: string;
  readonly inputMicrosPerMillion: number;
  readonly outputMicrosPerMillion: number;
  readonly cacheReadMicrosPerMillion: number;
  readonly cacheWriteMicrosPerMillion: number;
}

export interface ComputePrice {
  readonly cpuMicrosPerMillionCpuSeconds: number;
  readonly memoryMicrosPerMillionGibSeconds: number;
}

/** What an operator writes (prices/default.json, `paddock prices set FILE`, SetPrices). */
export interface PriceListInput {
  readonly currency: string;
  readonly note: string;
  readonly models: readonly ModelPrice[];
  readonly compute: ComputePrice;
}

/** One stored version of the prices. */
export interface PriceList extends PriceListInput {
  readonly version: number;
  readonly createdBy: string;
  readonly createdAtMs: number;
}

const PROVIDER = /^[a-z][a-z0-9-]{0,31}$/;
const MODEL = /^[a-z0-9][a-z0-9._:@/-]{0,199}$/;
const CURRENCY = /^[A-Z]{3}$/;
/** A million currency units per million tokens or seconds: far above any real price, far below 2^53 when multiplied out. */
const MAX_PRICE_MICROS = 1_000_000_000_000;
const MODEL_PRICE_FIELDS = ['inputMicrosPerMillion', 'outputMicrosPerMillion', 'cacheReadMicrosPerMillion', 'cacheWriteMicrosPerMillion'] as const;
const COMPUTE_PRICE_FIELDS = ['cpuMicrosPerMillionCpuSeconds', 'memoryMicrosPerMillionGibSeconds'] as const;

/**
 * A model name as prices are matched against it: lowercase, and without the `models/` that Gemini's
 * resource names start with.
 */
export function normalizeModel(model: string): string {
  const lower = model.trim().toLowerCase();
  return lower.startsWith('models/') ? lower.slice('models/'.length) : lower;
}

function price(value: unknown, where: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_PRICE_MICROS) {
    throw new ValidationError(`${where} must be a whole number of micro-units from 0 to ${MAX_PRICE_MICROS}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function text(value: unknown, where: string): string {
  if (typeof value !== 'string') throw new ValidationError(`${where} must be a string, got ${JSON.stringify(value)}`);
  return value;
}

function record(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ValidationError(`${where} must be an object`);
  return value as Record<string, unknown>;
}

/**
 * Checks a price list as an operator wrote it (JSON, or the fields of a SetPrices request) and returns it
 * complete and normalized: model names lowercase, each (provider, model) once, every price a whole number
 * of micro-units. What is wrong is a ValidationError naming the entry.
 */
export function checkPriceList(input: unknown): PriceListInput {
  const doc = record(input, 'the price list');
  const currency = doc['currency'] === undefined || doc['currency'] === '' ? 'USD' : text(doc['currency'], 'currency');
  if (!CURRENCY.test(currency)) throw new ValidationError(`currency must be an ISO 4217 code such as USD, got "${currency}"`);
  const note = doc['note'] === undefined ? '' : text(doc['note'], 'note');
  if (note.length > 2000) throw new ValidationError('note is longer than 2000 characters');
  if (!Array.isArray(doc['models'])) throw new ValidationError('models must be a list of {provider, model, inputMicrosPerMillion, outputMicrosPerMillion, cacheReadMicrosPerMillion, cacheWriteMicrosPerMillion}');
  if (doc['models'].length > 10_000) throw new ValidationError('models has more than 10000 entries');
  const seen = new Set<string>();
  const models = doc['models'].map((raw: unknown, i): ModelPrice => {
    const entry = record(raw, `models[${i}]`);
    const provider = text(entry['provider'], `models[${i}].provider`).trim().toLowerCase();
    if (!PROVIDER.test(provider)) throw new ValidationError(`models[${i}].provider must be a provider name such as openai, anthropic or gemini, got "${provider}"`);
    const model = normalizeModel(text(entry['model'], `models[${i}].model`));
    if (!MODEL.test(model)) throw new ValidationError(`models[${i}].model "${model}" is not a model name (letters, digits and . _ : @ / -)`);
    const key = `${provider}/${model}`;
    if (seen.has(key)) throw new ValidationError(`models[${i}]: ${key} is priced twice`);
    seen.add(key);
    const unknown = Object.keys(entry).find((k) => !['provider', 'model', ...MODEL_PRICE_FIELDS].includes(k));
    if (unknown !== undefined) throw new ValidationError(`models[${i}] has an unknown field "${unknown}"`);
    const prices = Object.fromEntries(MODEL_PRICE_FIELDS.map((f) => [f, price(entry[f] ?? 0, `models[${i}].${f}`)])) as Record<(typeof MODEL_PRICE_FIELDS)[number], number>;
    return Object.freeze({ provider, model, ...prices });
  });
  const computeDoc = record(doc['compute'], 'compute (cpuMicrosPerMillionCpuSeconds, memoryMicrosPerMillionGibSeconds)');
  const compute = Object.freeze(
    Object.fromEntries(COMPUTE_PRICE_FIELDS.map((f) => [f, price(computeDoc[f], `compute.${f}`)])) as Record<(typeof COMPUTE_PRICE_FIELDS)[number], number>,
  );
  const unknown = Object.keys(doc).find((k) => !['currency', 'note', 'models', 'compute'].includes(k));
  if (unknown !== undefined) throw new ValidationError(`the price list has an unknown field "${unknown}"`);
  return Object.freeze({ currency, note, models: Object.freeze(models), compute });
}
