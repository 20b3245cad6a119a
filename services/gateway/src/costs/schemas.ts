import type { Budget, CostRow, ExecutionCostReply, PriceList } from '@paddock/proto';

export const GROUP_BYS = ['execution', 'workflow', 'project', 'team', 'user', 'model'] as const;
export type GroupBy = (typeof GROUP_BYS)[number];
export const PERIODS = ['day', 'week', 'month', 'total'] as const;
export const ACTIONS = ['reject', 'queue'] as const;

/** An epoch-ms count, or an ISO 8601 date or date-time (UTC unless it says otherwise). */
const TIME = { type: 'string', maxLength: 40, description: 'an ISO 8601 date or date-time (UTC unless it names a zone), or epoch milliseconds' } as const;
const ID = { type: 'string', minLength: 1, maxLength: 200, pattern: '^[A-Za-z0-9_.:-]+$' } as const;
const MICROS = { type: 'integer', description: 'money in micro-units (millionths) of the currency' } as const;

export const costQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    groupBy: { type: 'string', enum: GROUP_BYS, description: 'what each row is: default project' },
    from: { ...TIME, description: `usage from this time on (inclusive); default: the beginning. ${TIME.description}` },
    to: { ...TIME, description: `usage before this time (exclusive); default: now and on. ${TIME.description}` },
    project: { ...ID, description: 'only this project (one the caller may see)' },
    team: { ...ID, description: "only this team's projects" },
    limit: { type: 'string', pattern: '^[0-9]{1,5}$', description: 'the most expensive groups first, at most this many (default 1000, at most 10000)' },
  },
} as const;

const costRow = {
  type: 'object',
  required: ['key', 'costMicros', 'llmCostMicros', 'computeCostMicros', 'inputTokens', 'outputTokens', 'cacheReadTokens', 'cacheWriteTokens', 'cpuMs', 'memoryMibMs', 'wallMs', 'unpricedModels', 'executions', 'llmCalls'],
  properties: {
    key: { type: 'string', description: "the group's id or model; empty for executions not attributed yet, or in no workflow" },
    costMicros: MICROS,
    llmCostMicros: MICROS,
    computeCostMicros: MICROS,
    inputTokens: { type: 'integer' },
    outputTokens: { type: 'integer' },
    cacheReadTokens: { type: 'integer' },
    cacheWriteTokens: { type: 'integer' },
    cpuMs: { type: 'integer' },
    memoryMibMs: { type: 'integer', description: 'memory in use integrated over time, MiB x ms' },
    wallMs: { type: 'integer' },
    unpricedModels: { type: 'array', items: { type: 'string' }, description: 'models used without a price: their tokens are counted, their cost is unknown and not in costMicros' },
    executions: { type: 'integer' },
    llmCalls: { type: 'integer' },
  },
} as const;

export const costReportSchema = {
  type: 'object',
  required: ['groupBy', 'from', 'to', 'currency', 'rows', 'totals', 'truncated'],
  properties: {
    groupBy: { type: 'string', enum: GROUP_BYS },
    from: { type: 'string', nullable: true },
    to: { type: 'string', nullable: true },
    currency: { type: 'string' },
    rows: { type: 'array', items: costRow },
    totals: costRow,
    truncated: { type: 'boolean', description: 'more groups matched than the limit: the cheapest were left out (totals count them)' },
  },
} as const;

export const executionCostSchema = {
  type: 'object',
  required: ['executionId', 'costMicros', 'currency', 'ended', 'models', 'compute'],
  properties: {
    executionId: { type: 'string' },
    costMicros: MICROS,
    currency: { type: 'string' },
    ended: { type: 'boolean', description: 'the execution is final: its cost will not grow' },
    models: {
      type: 'array',
      items: {
        type: 'object',
        required: ['provider', 'model', 'calls', 'inputTokens', 'outputTokens', 'cacheReadTokens', 'cacheWriteTokens', 'costMicros', 'unpriced'],
        properties: {
          provider: { type: 'string' },
          model: { type: 'string' },
          calls: { type: 'integer' },
          inputTokens: { type: 'integer' },
          outputTokens: { type: 'integer' },
          cacheReadTokens: { type: 'integer' },
          cacheWriteTokens: { type: 'integer' },
          costMicros: MICROS,
          unpriced: { type: 'boolean', description: 'no price covers the model: costMicros is 0 and the cost unknown' },
        },
      },
    },
    compute: {
      type: 'object',
      required: ['cpuMs', 'memoryMibMs', 'wallMs', 'costMicros'],
      properties: { cpuMs: { type: 'integer' }, memoryMibMs: { type: 'integer' }, wallMs: { type: 'integer' }, costMicros: MICROS },
    },
  },
} as const;

const PRICE = { type: 'integer', minimum: 0, maximum: 1_000_000_000_000 } as const;
const modelPrice = {
  type: 'object',
  additionalProperties: false,
  required: ['provider', 'model'],
  properties: {
    provider: { type: 'string', minLength: 1, maxLength: 32, description: 'openai, anthropic or gemini' },
    model: { type: 'string', minLength: 1, maxLength: 200, description: 'a model, or the start of the model names it prices up to a -, @ or : (gpt-4o prices gpt-4o-2024-08-06)' },
    inputMicrosPerMillion: { ...PRICE, description: 'micro-units per million input tokens' },
    outputMicrosPerMillion: PRICE,
    cacheReadMicrosPerMillion: PRICE,
    cacheWriteMicrosPerMillion: PRICE,
  },
} as const;
const computePrice = {
  type: 'object',
  additionalProperties: false,
  required: ['cpuMicrosPerMillionCpuSeconds', 'memoryMicrosPerMillionGibSeconds'],
  properties: { cpuMicrosPerMillionCpuSeconds: PRICE, memoryMicrosPerMillionGibSeconds: PRICE },
} as const;

export interface PriceListBody {
  currency?: string;
  note?: string;
  models: {
    provider: string;
    model: string;
    inputMicrosPerMillion?: number;
    outputMicrosPerMillion?: number;
    cacheReadMicrosPerMillion?: number;
    cacheWriteMicrosPerMillion?: number;
  }[];
  compute: { cpuMicrosPerMillionCpuSeconds: number; memoryMicrosPerMillionGibSeconds: number };
}

export const priceListBodySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['models', 'compute'],
  properties: {
    currency: { type: 'string', pattern: '^[A-Z]{3}$', description: 'ISO 4217; must stay that of the prices in force' },
    note: { type: 'string', maxLength: 2000 },
    models: { type: 'array', maxItems: 10_000, items: modelPrice },
    compute: computePrice,
  },
} as const;

export const priceListSchema = {
  type: 'object',
  required: ['version', 'createdAt', 'createdBy', 'currency', 'note', 'models', 'compute'],
  properties: {
    version: { type: 'integer' },
    createdAt: { type: 'string' },
    createdBy: { type: 'string' },
    currency: { type: 'string' },
    note: { type: 'string' },
    models: { type: 'array', items: { ...modelPrice, required: [...modelPrice.required, 'inputMicrosPerMillion', 'outputMicrosPerMillion', 'cacheReadMicrosPerMillion', 'cacheWriteMicrosPerMillion'] } },
    compute: computePrice,
  },
} as const;

export interface BudgetBody {
  name?: string;
  project?: string;
  team?: string;
  limitMicros: number;
  period?: (typeof PERIODS)[number];
  thresholdsPercent?: number[];
  hard?: boolean;
  action?: (typeof ACTIONS)[number];
  webhookUrl?: string;
}

export type BudgetPatch = Partial<Omit<BudgetBody, 'project' | 'team'>> & { rotateWebhookSecret?: boolean };

const budgetFields = {
  name: { type: 'string', maxLength: 200 },
  limitMicros: { type: 'integer', minimum: 1, maximum: 1_000_000_000_000_000, description: 'the limit, in micro-units of the currency ($10 = 10000000)' },
  period: { type: 'string', enum: PERIODS, description: 'day, week (from Monday), month, in UTC, or total' },
  thresholdsPercent: { type: 'array', maxItems: 10, items: { type: 'integer', minimum: 1, maximum: 1000 }, description: 'alert at these percentages of the limit; default 50, 80, 100' },
  hard: { type: 'boolean', description: 'at 100% stop new work (as `action` says) and LLM calls of the scope' },
  action: { type: 'string', enum: ACTIONS, description: 'what a spent hard budget does with new work: reject (402) or queue' },
  webhookUrl: { type: 'string', maxLength: 2000, description: 'alerts are POSTed here as JSON, signed: X-Paddock-Signature: sha256=<HMAC-SHA256 of the body with the webhook secret>; empty: none' },
} as const;

export const budgetBodySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['limitMicros'],
  properties: { ...budgetFields, project: { ...ID, description: 'a budget of this project (give project or team)' }, team: { ...ID, description: 'a budget of this team' } },
} as const;

export const budgetPatchSchema = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: { ...budgetFields, rotateWebhookSecret: { type: 'boolean', description: 'make a new webhook secret, returned once in this answer' } },
} as const;

const budgetSchema = {
  type: 'object',
  required: ['id', 'name', 'scope', 'scopeId', 'limitMicros', 'period', 'thresholdsPercent', 'hard', 'action', 'webhookUrl', 'createdBy', 'createdAt', 'updatedAt', 'periodStart', 'periodEnd', 'spentMicros'],
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    scope: { type: 'string', enum: ['project', 'team'] },
    scopeId: { type: 'string' },
    limitMicros: MICROS,
    period: { type: 'string', enum: PERIODS },
    thresholdsPercent: { type: 'array', items: { type: 'integer' } },
    hard: { type: 'boolean' },
    action: { type: 'string', enum: ACTIONS },
    webhookUrl: { type: 'string', nullable: true },
    createdBy: { type: 'string' },
    createdAt: { type: 'string' },
    updatedAt: { type: 'string' },
    periodStart: { type: 'string' },
    periodEnd: { type: 'string', nullable: true },
    spentMicros: { ...MICROS, description: 'spent in the current period so far' },
  },
} as const;

export const budgetListSchema = {
  type: 'object',
  required: ['currency', 'items'],
  properties: { currency: { type: 'string' }, items: { type: 'array', items: budgetSchema } },
} as const;

export const savedBudgetSchema = {
  type: 'object',
  required: ['budget'],
  properties: {
    budget: budgetSchema,
    webhookSecret: { type: 'string', description: 'the secret webhook calls are signed with: shown when the budget is made or its secret rotated, never again' },
  },
} as const;

export const budgetListQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: { project: { ...ID, description: "this project's budgets and its team's" }, team: { ...ID, description: "this team's budgets" } },
} as const;

export const idParams = { type: 'object', additionalProperties: false, required: ['id'], properties: { id: ID } } as const;

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

export function costRowJson(row: CostRow | undefined): CostRow {
  return {
    key: row?.key ?? '',
    costMicros: row?.costMicros ?? 0,
    llmCostMicros: row?.llmCostMicros ?? 0,
    computeCostMicros: row?.computeCostMicros ?? 0,
    inputTokens: row?.inputTokens ?? 0,
    outputTokens: row?.outputTokens ?? 0,
    cacheReadTokens: row?.cacheReadTokens ?? 0,
    cacheWriteTokens: row?.cacheWriteTokens ?? 0,
    cpuMs: row?.cpuMs ?? 0,
    memoryMibMs: row?.memoryMibMs ?? 0,
    wallMs: row?.wallMs ?? 0,
    unpricedModels: row?.unpricedModels ?? [],
    executions: row?.executions ?? 0,
    llmCalls: row?.llmCalls ?? 0,
  };
}

export function executionCostJson(c: ExecutionCostReply) {
  return {
    executionId: c.executionId,
    costMicros: c.costMicros,
    currency: c.currency,
    ended: c.ended,
    models: c.models,
    compute: c.compute ?? { cpuMs: 0, memoryMibMs: 0, wallMs: 0, costMicros: 0 },
  };
}

export function priceListJson(p: PriceList) {
  return {
    version: p.version,
    createdAt: iso(p.createdAtMs),
    createdBy: p.createdBy,
    currency: p.currency,
    note: p.note,
    models: p.models,
    compute: p.compute ?? { cpuMicrosPerMillionCpuSeconds: 0, memoryMicrosPerMillionGibSeconds: 0 },
  };
}

export function budgetJson(b: Budget) {
  return {
    id: b.id,
    name: b.name,
    scope: b.scope,
    scopeId: b.scopeId,
    limitMicros: b.limitMicros,
    period: b.period,
    thresholdsPercent: b.thresholdsPercent,
    hard: b.hard,
    action: b.action,
    webhookUrl: b.webhookUrl === '' ? null : b.webhookUrl,
    createdBy: b.createdBy,
    createdAt: iso(b.createdAtMs),
    updatedAt: iso(b.updatedAtMs),
    periodStart: iso(b.periodStartMs),
    periodEnd: b.periodEndMs === 0 ? null : iso(b.periodEndMs),
    spentMicros: b.spentMicros,
  };
}
