import { inTransaction, type Pool } from '@paddock/db';
import { PermanentError } from '@paddock/errors';
import type { BudgetExceeded, ExecutionAccount } from '@paddock/proto';
import { evaluateBudgets } from '../budgets/budgetEvaluator.js';
import { lockExecutions } from '../db.js';

/** PostgreSQL's unique_violation. */
const UNIQUE_VIOLATION = '23505';

/** The accounts and execution_ends tables: attribution as the gateway published it, and the end of each run. */
export class AccountStore {
  constructor(
    private readonly pool: Pool,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Keeps the first account published for an execution (a repeat changes nothing) and evaluates the budgets
   * of its project and team, whose spending now includes whatever usage of it came first. Returns the alerts
   * that caused, committed and still to be published.
   */
  async record(account: ExecutionAccount): Promise<readonly BudgetExceeded[]> {
    return inTransaction(this.pool, async (client) => {
      await lockExecutions(client, [account.executionId]);
      let inserted: number;
      try {
        const r = await client.query(
          `INSERT INTO accounts (execution_id, owner_id, project_id, team_id, workflow_id, llm_key_sha256, sealed_llm_credentials, requested_at_ms, received_at_ms)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (execution_id) DO NOTHING`,
          [
            account.executionId,
            account.ownerId,
            account.projectId,
            account.teamId,
            account.workflowId,
            account.llmKeySha256 === '' ? null : account.llmKeySha256,
            account.sealedLlmCredentials.length === 0 ? null : Buffer.from(account.sealedLlmCredentials),
            account.requestedAtMs,
            this.now(),
          ],
        );
        inserted = r.rowCount ?? 0;
      } catch (err) {
        if ((err as { code?: string }).code === UNIQUE_VIOLATION) {
          throw new PermanentError(`the account of execution ${account.executionId} names a run key that another execution holds already`, { cause: err });
        }
        throw err;
      }
      if (inserted === 0) return [];
      // What the execution used before its account came now counts for its project and team.
      await client.query(
        `INSERT INTO scope_hours AS s (scope, scope_id, hour_ms, cost_micros)
         SELECT o.scope, o.scope_id, h.hour_ms, sum(h.cost_micros)
           FROM usage_hours h CROSS JOIN (VALUES ('project', $2::text), ('team', $3::text)) AS o (scope, scope_id)
          WHERE h.execution_id = $1 AND o.scope_id <> ''
          GROUP BY o.scope, o.scope_id, h.hour_ms ORDER BY o.scope, o.scope_id, h.hour_ms
         ON CONFLICT (scope, scope_id, hour_ms) DO UPDATE SET cost_micros = s.cost_micros + excluded.cost_micros`,
        [account.executionId, account.projectId, account.teamId],
      );
      return evaluateBudgets(client, { projectIds: [account.projectId], teamIds: [account.teamId] }, this.now());
    });
  }

  /** The execution reached a final state: its run key stops working. The first end recorded stays. */
  async end(executionId: string, atMs: number): Promise<void> {
    await this.pool.query('INSERT INTO execution_ends (execution_id, ended_at_ms) VALUES ($1, $2) ON CONFLICT DO NOTHING', [executionId, atMs || this.now()]);
  }
}
