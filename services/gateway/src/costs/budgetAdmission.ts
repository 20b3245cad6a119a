import { PaddockError } from '@paddock/errors';
import type { BillingApi } from './billingApi.js';

/** New work refused by a spent hard budget whose action is `reject`: 402, the message naming the budget. */
export class BudgetExceededError extends PaddockError {
  constructor(
    message: string,
    readonly budgetId: string,
  ) {
    super('budget_exceeded', 402, message);
  }
}

/** What a spent hard budget does with new work of its project. */
export type AdmissionDecision =
  | { readonly allowed: true }
  | {
      readonly allowed: false;
      /** `reject`: answer 402 with `message`; `queue`: accept and hold the work until the period turns or the limit is raised. */
      readonly action: 'reject' | 'queue';
      /** Names the budget, its spending and what lifts it. */
      readonly message: string;
      readonly budgetId: string;
      readonly name: string;
      /** When the budget's period ends (epoch ms); null for a budget over all time. */
      readonly periodEndMs: number | null;
    };

/**
 * Whether new work of a project may start under its budgets, for the executions route to ask on submit.
 * Billing unavailable is a BillingUnavailableError (503 with Retry-After): whether work may start without
 * the answer is the caller's decision.
 */
export class BudgetAdmission {
  constructor(private readonly billing: Pick<BillingApi, 'admission'>) {}

  async check(projectId: string, teamId: string): Promise<AdmissionDecision> {
    const reply = await this.billing.admission(projectId, teamId);
    if (reply.allowed) return { allowed: true };
    return {
      allowed: false,
      action: reply.action === 'queue' ? 'queue' : 'reject',
      message: reply.message,
      budgetId: reply.budgetId,
      name: reply.name,
      periodEndMs: reply.periodEndMs === 0 ? null : reply.periodEndMs,
    };
  }
}
