import { ValidationError } from '@paddock/errors';
import { isBudgetPeriod, type BudgetPeriod } from './periods.js';

export const BUDGET_SCOPES = ['project', 'team'] as const;
export type BudgetScope = (typeof BUDGET_SCOPES)[number];
export const BUDGET_ACTIONS = ['reject', 'queue'] as const;
export type BudgetAction = (typeof BUDGET_ACTIONS)[number];

export const DEFAULT_THRESHOLDS_PERCENT: readonly number[] = Object.freeze([50, 80, 100]);

export interface Budget {
  readonly id: string;
  readonly name: string;
  readonly scope: BudgetScope;
  readonly scopeId: string;
  readonly limitMicros: number;
  readonly period: BudgetPeriod;
  /** Ascending, each once. */
  readonly thresholdsPercent: readonly number[];
  readonly hard: boolean;
  readonly action: BudgetAction;
  /** Empty: alerts go to the bus only. */
  readonly webhookUrl: string;
  readonly createdBy: string;
  readonly createdAtMs: number;
  readonly updatedAtMs: number;
}

/** A budget's settings as a caller gives them, before they are checked and defaults filled. */
export interface BudgetInput {
  readonly name: string;
  readonly scope: string;
  readonly scopeId: string;
  readonly limitMicros: number;
  readonly period: string;
  readonly thresholdsPercent: readonly number[];
  readonly hard: boolean;
  readonly action: string;
  readonly webhookUrl: string;
}

export type BudgetSettings = Pick<Budget, 'name' | 'scope' | 'scopeId' | 'limitMicros' | 'period' | 'thresholdsPercent' | 'hard' | 'action' | 'webhookUrl'>;

const SCOPE_ID = /^[A-Za-z0-9_.:-]{1,200}$/;
/** A billion currency units: beyond it a limit is a typo. */
const MAX_LIMIT_MICROS = 1_000_000_000_000_000;

const ADJECTIVE: Record<BudgetPeriod, string> = { day: 'daily', week: 'weekly', month: 'monthly', total: 'total' };

/** Checks what a caller asks for and fills the defaults: thresholds 50, 80, 100; action reject; a name. */
export function checkBudget(input: BudgetInput): BudgetSettings {
  if (!(BUDGET_SCOPES as readonly string[]).includes(input.scope)) throw new ValidationError(`scope must be project or team, got "${input.scope}"`);
  const scope = input.scope as BudgetScope;
  if (!SCOPE_ID.test(input.scopeId)) throw new ValidationError(`the ${scope} id "${input.scopeId}" is not valid`);
  if (!Number.isSafeInteger(input.limitMicros) || input.limitMicros <= 0 || input.limitMicros > MAX_LIMIT_MICROS) {
    throw new ValidationError(`the limit must be a whole number of micro-units above 0 and at most ${MAX_LIMIT_MICROS}, got ${input.limitMicros}`);
  }
  if (!isBudgetPeriod(input.period)) throw new ValidationError(`period must be day, week, month or total, got "${input.period}"`);
  const thresholds = input.thresholdsPercent.length === 0 ? DEFAULT_THRESHOLDS_PERCENT : [...new Set(input.thresholdsPercent)].sort((a, b) => a - b);
  if (thresholds.length > 10) throw new ValidationError('a budget has at most 10 thresholds');
  for (const t of thresholds) {
    if (!Number.isInteger(t) || t < 1 || t > 1000) throw new ValidationError(`a threshold is a whole percentage from 1 to 1000, got ${t}`);
  }
  const action = input.action === '' ? 'reject' : input.action;
  if (!(BUDGET_ACTIONS as readonly string[]).includes(action)) throw new ValidationError(`action must be reject or queue, got "${action}"`);
  const webhookUrl = input.webhookUrl.trim();
  if (webhookUrl !== '') checkWebhookUrl(webhookUrl);
  const name = input.name.trim() === '' ? `${ADJECTIVE[input.period]} budget of ${scope} ${input.scopeId}` : input.name.trim();
  if (name.length > 200) throw new ValidationError('the name is longer than 200 characters');
  return {
    name,
    scope,
    scopeId: input.scopeId,
    limitMicros: input.limitMicros,
    period: input.period,
    thresholdsPercent: Object.freeze(thresholds),
    hard: input.hard,
    action: action as BudgetAction,
    webhookUrl,
  };
}

function checkWebhookUrl(value: string): void {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ValidationError(`the webhook "${value}" is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ValidationError(`the webhook must be an http or https URL, got "${value}"`);
  if (url.username !== '' || url.password !== '') throw new ValidationError('the webhook URL may not hold credentials: calls are signed with the budget\'s webhook secret');
  if (value.length > 2000) throw new ValidationError('the webhook URL is longer than 2000 characters');
}
