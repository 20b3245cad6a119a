import type { BudgetExceeded } from '@paddock/proto';
import type { Queryable } from '@paddock/db';
import type { Budget } from './budget.js';
import { BUDGET_COLUMNS, spentMicros } from './budgetStore.js';
import { periodAt, type Period } from './periods.js';

/** The projects and teams whose spending changed. */
export interface TouchedScopes {
  readonly projectIds: readonly string[];
  readonly teamIds: readonly string[];
}

/** The message id of an alert on the bus, and its webhook call's X-Paddock-Event-Id. */
export function alertEventId(budgetId: string, periodStartMs: number, thresholdPercent: number): string {
  return `${budgetId}.${periodStartMs}.${thresholdPercent}`;
}

export function alertMessage(budget: Budget, alert: { period: Period; thresholdPercent: number; spentMicros: number; limitMicros: number; atMs: number }): BudgetExceeded {
  return {
    budgetId: budget.id,
    scope: budget.scope,
    scopeId: budget.scopeId,
    thresholdPercent: alert.thresholdPercent,
    periodStartMs: alert.period.startMs,
    periodEndMs: alert.period.endMs ?? 0,
    spentMicros: alert.spentMicros,
    limitMicros: alert.limitMicros,
    hard: budget.hard,
    action: budget.action,
    atMs: alert.atMs,
    name: budget.name,
  };
}

/** The JSON a budget's webhook receives: the alert, with its event id. */
export function webhookBody(alert: BudgetExceeded): string {
  return JSON.stringify({
    type: 'budget.exceeded',
    id: alertEventId(alert.budgetId, alert.periodStartMs, alert.thresholdPercent),
    budgetId: alert.budgetId,
    name: alert.name,
    scope: alert.scope,
    scopeId: alert.scopeId,
    thresholdPercent: alert.thresholdPercent,
    periodStartMs: alert.periodStartMs,
    periodEndMs: alert.periodEndMs === 0 ? null : alert.periodEndMs,
    spentMicros: alert.spentMicros,
    limitMicros: alert.limitMicros,
    hard: alert.hard,
    action: alert.action,
    atMs: alert.atMs,
  });
}

/** Whether `spent` reached `thresholdPercent` of `limit`, in integers. */
function reached(spent: number, limit: number, thresholdPercent: number): boolean {
  return BigInt(spent) * 100n >= BigInt(limit) * BigInt(thresholdPercent);
}

/**
 * Runs inside the transaction that changed the spending (a batch of the ledger, an account that arrived, a
 * budget made or changed): each budget of the touched scopes is locked, so that concurrent transactions
 * evaluate it one after the other and the later one sees the earlier one's rows; every threshold reached
 * in the current period that has no alert yet gets one (budget_alerts is the once-only record) and, when
 * the budget has a webhook, a delivery in the outbox. Returns the new alerts, for the bus once committed.
 */
export async function evaluateBudgets(db: Queryable, scopes: TouchedScopes, nowMs: number): Promise<BudgetExceeded[]> {
  if (scopes.projectIds.length === 0 && scopes.teamIds.length === 0) return [];
  const budgets = await db.query<Budget>(
    `SELECT ${BUDGET_COLUMNS} FROM budgets
      WHERE (scope = 'project' AND scope_id = ANY($1::text[])) OR (scope = 'team' AND scope_id = ANY($2::text[]))
      ORDER BY id FOR UPDATE`,
    [scopes.projectIds, scopes.teamIds],
  );
  const alerts: BudgetExceeded[] = [];
  for (const budget of budgets.rows) alerts.push(...(await evaluateBudget(db, budget, nowMs)));
  return alerts;
}

/** One budget, locked by the caller's transaction. */
export async function evaluateBudget(db: Queryable, budget: Budget, nowMs: number): Promise<BudgetExceeded[]> {
  const period = periodAt(budget.period, nowMs);
  const spent = await spentMicros(db, budget, period);
  const due = budget.thresholdsPercent.filter((t) => reached(spent, budget.limitMicros, t));
  if (due.length === 0) return [];
  const inserted = await db.query<{ threshold: number }>(
    `INSERT INTO budget_alerts (budget_id, period_start_ms, threshold_percent, period_end_ms, spent_micros, limit_micros, at_ms)
     SELECT $1, $2, t, $3, $4, $5, $6 FROM unnest($7::int[]) AS t
     ON CONFLICT DO NOTHING RETURNING threshold_percent AS threshold`,
    [budget.id, period.startMs, period.endMs ?? 0, spent, budget.limitMicros, nowMs, due],
  );
  const alerts = inserted.rows
    .map((r) => r.threshold)
    .sort((a, b) => a - b)
    .map((thresholdPercent) => alertMessage(budget, { period, thresholdPercent, spentMicros: spent, limitMicros: budget.limitMicros, atMs: nowMs }));
  if (budget.webhookUrl !== '' && alerts.length > 0) {
    // The outbox runs on the wall clock, whatever clock the periods are read from.
    const dueMs = Date.now();
    await db.query(
      `INSERT INTO webhook_deliveries (event_id, budget_id, url, body, next_attempt_at_ms, created_at_ms)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $5::bigint[]) ON CONFLICT DO NOTHING`,
      [
        alerts.map((a) => alertEventId(a.budgetId, a.periodStartMs, a.thresholdPercent)),
        alerts.map(() => budget.id),
        alerts.map(() => budget.webhookUrl),
        alerts.map(webhookBody),
        alerts.map(() => dueMs),
      ],
    );
  }
  return alerts;
}
