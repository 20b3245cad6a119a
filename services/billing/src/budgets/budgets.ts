import { inTransaction, type Pool } from '@paddock/db';
import type { BudgetExceeded } from '@paddock/proto';
import type { Budget, BudgetInput } from './budget.js';
import { evaluateBudget } from './budgetEvaluator.js';
import { BudgetStore, type BudgetFilter, type BudgetStanding } from './budgetStore.js';

export interface BudgetView {
  readonly budget: Budget;
  readonly standing: BudgetStanding;
}

/**
 * Budgets as the API manages them: each made or changed budget is evaluated at once in the same
 * transaction, so one created over a period already spent alerts without waiting for the next usage.
 */
export class Budgets {
  readonly store: BudgetStore;

  constructor(
    private readonly pool: Pool,
    private readonly onAlerts: (alerts: readonly BudgetExceeded[]) => void,
    private readonly now: () => number = Date.now,
  ) {
    this.store = new BudgetStore(pool);
  }

  async list(filter: BudgetFilter): Promise<BudgetView[]> {
    const nowMs = this.now();
    const budgets = await this.store.list(filter);
    return Promise.all(budgets.map(async (budget) => ({ budget, standing: await this.store.standing(budget, nowMs) })));
  }

  async get(id: string): Promise<BudgetView> {
    const budget = await this.store.get(id);
    return { budget, standing: await this.store.standing(budget, this.now()) };
  }

  /** Creates (no `id`) or changes a budget; the webhook secret is returned when made, else ''. */
  async put(id: string, input: BudgetInput, opts: { by: string; rotateSecret: boolean }): Promise<BudgetView & { webhookSecret: string }> {
    const nowMs = this.now();
    const { budget, webhookSecret, alerts, standing } = await inTransaction(this.pool, async (client) => {
      const saved = id === '' ? await this.store.create(client, input, opts.by, nowMs) : await this.store.update(client, id, input, { rotateSecret: opts.rotateSecret, nowMs });
      const alerts = await evaluateBudget(client, saved.budget, nowMs);
      return { ...saved, alerts, standing: await this.store.standing(saved.budget, nowMs, client) };
    });
    if (alerts.length > 0) this.onAlerts(alerts);
    return { budget, standing, webhookSecret };
  }

  delete(id: string): Promise<boolean> {
    return this.store.delete(id);
  }
}
