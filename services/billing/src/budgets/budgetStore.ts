import { randomBytes } from 'node:crypto';
import type { Pool } from '@paddock/db';
import { NotFoundError, ValidationError } from '@paddock/errors';
import type { Queryable } from '@paddock/db';
import { checkBudget, type Budget, type BudgetInput } from './budget.js';
import { periodAt, type Period } from './periods.js';

/** No upper bound, as a number the rollup's hour column compares with. */
const NO_END_MS = Number.MAX_SAFE_INTEGER;

export const BUDGET_COLUMNS = `id, name, scope, scope_id AS "scopeId", limit_micros AS "limitMicros", period,
  thresholds_percent AS "thresholdsPercent", hard, action, webhook_url AS "webhookUrl", created_by AS "createdBy",
  created_at_ms AS "createdAtMs", updated_at_ms AS "updatedAtMs"`;

/** Which budgets a caller may see: all of them, or those of some projects and teams. */
export interface BudgetFilter {
  readonly all: boolean;
  readonly projectIds: readonly string[];
  readonly teamIds: readonly string[];
}

/** A budget's current period and what was spent in it. */
export interface BudgetStanding {
  readonly period: Period;
  readonly spentMicros: number;
}

/** Made by a new budget or a rotation, and shown to the caller once. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`;
}

/**
 * What the budget's scope spent in `period`, from the spending per scope and hour (every period starts on
 * the hour): a few hundred rows for a month, however large the ledger.
 */
export async function spentMicros(db: Queryable, budget: Pick<Budget, 'scope' | 'scopeId'>, period: Period): Promise<number> {
  const r = await db.query<{ spent: number }>(
    `SELECT coalesce(sum(cost_micros), 0)::bigint AS spent FROM scope_hours
      WHERE scope = $1 AND scope_id = $2 AND hour_ms >= $3 AND hour_ms < $4`,
    [budget.scope, budget.scopeId, period.startMs, period.endMs ?? NO_END_MS],
  );
  return r.rows[0]?.spent ?? 0;
}

/** The budgets table. Its webhook secrets leave it only to sign calls, and once when made. */
export class BudgetStore {
  constructor(private readonly pool: Pool) {}

  async list(filter: BudgetFilter): Promise<Budget[]> {
    if (filter.all) return (await this.pool.query<Budget>(`SELECT ${BUDGET_COLUMNS} FROM budgets ORDER BY created_at_ms, id`)).rows;
    const r = await this.pool.query<Budget>(
      `SELECT ${BUDGET_COLUMNS} FROM budgets
        WHERE (scope = 'project' AND scope_id = ANY($1::text[])) OR (scope = 'team' AND scope_id = ANY($2::text[]))
        ORDER BY created_at_ms, id`,
      [filter.projectIds, filter.teamIds],
    );
    return r.rows;
  }

  async get(id: string, db: Queryable = this.pool): Promise<Budget> {
    const budget = (await db.query<Budget>(`SELECT ${BUDGET_COLUMNS} FROM budgets WHERE id = $1`, [id])).rows[0];
    if (!budget) throw new NotFoundError('budget', id);
    return budget;
  }

  async standing(budget: Budget, nowMs: number, db: Queryable = this.pool): Promise<BudgetStanding> {
    const period = periodAt(budget.period, nowMs);
    return { period, spentMicros: await spentMicros(db, budget, period) };
  }

  async create(db: Queryable, input: BudgetInput, createdBy: string, nowMs: number): Promise<{ budget: Budget; webhookSecret: string }> {
    const settings = checkBudget(input);
    const id = `bgt_${randomBytes(12).toString('hex')}`;
    const webhookSecret = newWebhookSecret();
    const r = await db.query<Budget>(
      `INSERT INTO budgets (id, name, scope, scope_id, limit_micros, period, thresholds_percent, hard, action, webhook_url, webhook_secret, created_by, created_at_ms, updated_at_ms)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) RETURNING ${BUDGET_COLUMNS}`,
      [id, settings.name, settings.scope, settings.scopeId, settings.limitMicros, settings.period, settings.thresholdsPercent, settings.hard, settings.action, settings.webhookUrl, webhookSecret, createdBy, nowMs],
    );
    return { budget: r.rows[0]!, webhookSecret };
  }

  /** New settings for a budget; its scope stays. With `rotateSecret`, a new webhook secret is made and returned. */
  async update(db: Queryable, id: string, input: BudgetInput, opts: { rotateSecret: boolean; nowMs: number }): Promise<{ budget: Budget; webhookSecret: string }> {
    const settings = checkBudget(input);
    const current = (await db.query<Budget>(`SELECT ${BUDGET_COLUMNS} FROM budgets WHERE id = $1 FOR UPDATE`, [id])).rows[0];
    if (!current) throw new NotFoundError('budget', id);
    if (current.scope !== settings.scope || current.scopeId !== settings.scopeId) {
      throw new ValidationError(`budget ${id} belongs to ${current.scope} ${current.scopeId}; a budget cannot move: create one for ${settings.scope} ${settings.scopeId}`);
    }
    const webhookSecret = opts.rotateSecret ? newWebhookSecret() : '';
    const r = await db.query<Budget>(
      `UPDATE budgets SET name = $2, limit_micros = $3, period = $4, thresholds_percent = $5, hard = $6, action = $7, webhook_url = $8,
              webhook_secret = CASE WHEN $9 = '' THEN webhook_secret ELSE $9 END, updated_at_ms = $10
        WHERE id = $1 RETURNING ${BUDGET_COLUMNS}`,
      [id, settings.name, settings.limitMicros, settings.period, settings.thresholdsPercent, settings.hard, settings.action, settings.webhookUrl, webhookSecret, opts.nowMs],
    );
    return { budget: r.rows[0]!, webhookSecret };
  }

  /** Its alerts and pending webhook calls go with it. */
  async delete(id: string): Promise<boolean> {
    return ((await this.pool.query('DELETE FROM budgets WHERE id = $1', [id])).rowCount ?? 0) > 0;
  }
}
