import type { Admission } from '../budgets/admission.js';

/** A spent hard budget, as the metering proxy names it in the 429 it answers. */
export interface BlockingBudget {
  readonly budgetId: string;
  readonly name: string;
  readonly message: string;
}

/**
 * The metering proxy's question before each call: is a hard budget of the run's project or team spent?
 * Whatever the budget's action for new work, its runs' LLM calls stop. Answers are kept for `ttlMs`: an
 * agent makes calls in quick succession, and spending moves only as usage is ingested.
 */
export class AdmissionBudgetGate {
  readonly #answers = new Map<string, { atMs: number; answer: Promise<BlockingBudget | undefined> }>();

  constructor(
    private readonly admission: Admission,
    private readonly ttlMs = 1_000,
  ) {}

  blockingBudget(run: { projectId: string; teamId: string }): Promise<BlockingBudget | undefined> {
    const key = `${run.projectId}\u0000${run.teamId}`;
    const nowMs = Date.now();
    const cached = this.#answers.get(key);
    if (cached && nowMs - cached.atMs < this.ttlMs) return cached.answer;
    for (const [k, v] of this.#answers) if (nowMs - v.atMs >= this.ttlMs) this.#answers.delete(k);
    const answer = this.admission.check(run.projectId, run.teamId).then((reply) =>
      reply.allowed ? undefined : { budgetId: reply.budgetId, name: reply.name, message: reply.message },
    );
    this.#answers.set(key, { atMs: nowMs, answer });
    // A failed check is not kept: the next call asks again.
    answer.catch(() => this.#answers.delete(key));
    return answer;
  }
}
