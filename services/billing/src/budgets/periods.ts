export const BUDGET_PERIODS = ['day', 'week', 'month', 'total'] as const;
export type BudgetPeriod = (typeof BUDGET_PERIODS)[number];

export function isBudgetPeriod(value: string): value is BudgetPeriod {
  return (BUDGET_PERIODS as readonly string[]).includes(value);
}

/** A budget's period: [startMs, endMs), in UTC; `total` starts at 0 and has no end (endMs null). */
export interface Period {
  readonly startMs: number;
  readonly endMs: number | null;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * The period of kind `period` that holds `nowMs`. Days start at 00:00 UTC, weeks on Monday (ISO 8601),
 * months on the 1st. Every start is a whole UTC hour, which the hourly rollup relies on.
 */
export function periodAt(period: BudgetPeriod, nowMs: number): Period {
  const now = new Date(nowMs);
  const dayStart = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  switch (period) {
    case 'day':
      return { startMs: dayStart, endMs: dayStart + DAY_MS };
    case 'week': {
      const sinceMonday = (now.getUTCDay() + 6) % 7;
      const startMs = dayStart - sinceMonday * DAY_MS;
      return { startMs, endMs: startMs + 7 * DAY_MS };
    }
    case 'month':
      return { startMs: Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1), endMs: Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1) };
    case 'total':
      return { startMs: 0, endMs: null };
  }
}

/** "this month (until 2025-12-01 00:00 UTC)", "in total", for messages. */
export function describePeriod(period: BudgetPeriod, at: Period): string {
  if (at.endMs === null) return 'in total';
  const until = new Date(at.endMs).toISOString().slice(0, 16).replace('T', ' ');
  return `${period === 'day' ? 'today' : `this ${period}`} (until ${until} UTC)`;
}
