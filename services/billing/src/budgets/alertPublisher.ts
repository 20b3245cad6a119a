import { topics, type Bus } from '@paddock/bus';
import type { Pool } from '@paddock/db';
import type { BudgetExceeded } from '@paddock/proto';
import type { Logger } from '@paddock/telemetry';
import type { Budget } from './budget.js';
import { alertEventId, alertMessage } from './budgetEvaluator.js';
import { BUDGET_COLUMNS } from './budgetStore.js';

interface UnpublishedRow {
  budget: Budget;
  periodStartMs: number;
  periodEndMs: number;
  thresholdPercent: number;
  spentMicros: number;
  limitMicros: number;
  atMs: number;
}

/**
 * Publishes budget alerts on the bus (`topics.budgetExceeded`, message id
 * `<budget-id>.<period-start-ms>.<threshold>`), from budget_alerts as an outbox: at once after the
 * transaction that made them, and again by a sweep for whatever a crash or an absent NATS left unpublished.
 */
export class AlertPublisher {
  #timer: NodeJS.Timeout | undefined;
  #sweeping: Promise<void> | undefined;

  constructor(
    private readonly pool: Pool,
    private readonly bus: Bus,
    private readonly log: Logger,
    private readonly sweepEveryMs = 5_000,
  ) {}

  start(): void {
    this.#timer = setInterval(() => void this.sweep(), this.sweepEveryMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#sweeping;
  }

  /** Alerts just committed; one that fails stays for the sweep. */
  async publish(alerts: readonly BudgetExceeded[]): Promise<void> {
    for (const alert of alerts) {
      try {
        await this.#publishOne(alert);
      } catch (err) {
        this.log.warn({ err, budgetId: alert.budgetId, threshold: alert.thresholdPercent }, 'a budget alert could not be published yet; the sweep tries again');
      }
    }
  }

  /** Publishes what is still unpublished, oldest first. Resolves, never rejects. */
  sweep(): Promise<void> {
    return (this.#sweeping ??= this.#sweep()
      .catch((err: unknown) => this.log.warn({ err }, 'budget alerts: sweep failed; the next one tries again'))
      .finally(() => (this.#sweeping = undefined)));
  }

  async #sweep(): Promise<void> {
    const r = await this.pool.query<UnpublishedRow>(
      `SELECT row_to_json(b) AS budget, a.period_start_ms AS "periodStartMs", a.period_end_ms AS "periodEndMs", a.threshold_percent AS "thresholdPercent",
              a.spent_micros AS "spentMicros", a.limit_micros AS "limitMicros", a.at_ms AS "atMs"
         FROM budget_alerts a JOIN (SELECT ${BUDGET_COLUMNS} FROM budgets) b ON b.id = a.budget_id
        WHERE a.published_at_ms IS NULL ORDER BY a.at_ms LIMIT 500`,
    );
    for (const row of r.rows) {
      await this.#publishOne(
        alertMessage(row.budget, {
          period: { startMs: row.periodStartMs, endMs: row.periodEndMs === 0 ? null : row.periodEndMs },
          thresholdPercent: row.thresholdPercent,
          spentMicros: row.spentMicros,
          limitMicros: row.limitMicros,
          atMs: row.atMs,
        }),
      );
    }
  }

  async #publishOne(alert: BudgetExceeded): Promise<void> {
    await this.bus.publish(topics.budgetExceeded, alert.budgetId, alert, {
      msgId: alertEventId(alert.budgetId, alert.periodStartMs, alert.thresholdPercent),
      retryForMs: 5_000,
    });
    await this.pool.query('UPDATE budget_alerts SET published_at_ms = $4 WHERE budget_id = $1 AND period_start_ms = $2 AND threshold_percent = $3', [
      alert.budgetId,
      alert.periodStartMs,
      alert.thresholdPercent,
      Date.now(),
    ]);
  }
}
