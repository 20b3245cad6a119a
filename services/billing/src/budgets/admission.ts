import type { Pool } from '@paddock/db';
import type { AdmissionReply } from '@paddock/proto';
import { formatMicros } from '../money.js';
import type { Budget } from './budget.js';
import { BUDGET_COLUMNS, spentMicros } from './budgetStore.js';
import { describePeriod, periodAt } from './periods.js';

export const ALLOWED: AdmissionReply = Object.freeze({
  allowed: true,
  budgetId: '',
  name: '',
  action: '',
  message: '',
  spentMicros: 0,
  limitMicros: 0,
  periodEndMs: 0,
});

/**
 * Whether new work of a project may start: not while a hard budget of the project or of its team is spent
 * in its current period. When several are, one that rejects wins over one that queues, so that a caller
 * is not left waiting for work that another budget refuses anyway.
 */
export class Admission {
  constructor(
    private readonly pool: Pool,
    private readonly currency: () => Promise<string>,
    private readonly now: () => number = Date.now,
  ) {}

  async check(projectId: string, teamId: string): Promise<AdmissionReply> {
    const hard = await this.pool.query<Budget>(
      `SELECT ${BUDGET_COLUMNS} FROM budgets
        WHERE hard AND ((scope = 'project' AND scope_id = $1) OR (scope = 'team' AND scope_id = $2))
        ORDER BY action = 'reject' DESC, id`,
      [projectId, teamId],
    );
    const nowMs = this.now();
    for (const budget of hard.rows) {
      const period = periodAt(budget.period, nowMs);
      const spent = await spentMicros(this.pool, budget, period);
      if (spent < budget.limitMicros) continue;
      const currency = await this.currency();
      const then = budget.action === 'reject' ? 'new work is refused' : 'new work waits';
      const until = period.endMs === null ? 'until its limit is raised' : 'until the period turns or its limit is raised';
      return {
        allowed: false,
        budgetId: budget.id,
        name: budget.name,
        action: budget.action,
        message:
          `the hard budget "${budget.name}" (${budget.id}) of ${budget.scope} ${budget.scopeId} is spent: ` +
          `${formatMicros(spent, currency)} of ${formatMicros(budget.limitMicros, currency)} ${describePeriod(budget.period, period)}; ${then} ${until}`,
        spentMicros: spent,
        limitMicros: budget.limitMicros,
        periodEndMs: period.endMs ?? 0,
      };
    }
    return ALLOWED;
  }
}
