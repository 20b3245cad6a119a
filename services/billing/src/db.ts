import type { Queryable } from '@paddock/db';

/** The first key of the advisory locks billing takes per execution, apart from any other use of them. */
const EXECUTION_LOCKS = 0x6269_6c6c;

/**
 * Serializes, until the end of the transaction, the writers that touch these executions: the ledger's
 * batches and the arrival of their accounts. Without it, usage and its account committed at the same time
 * would each evaluate budgets without seeing the other, and a threshold crossed by both would go unnoticed.
 * Locks are taken in one order, so writers never wait for each other in a circle.
 */
export async function lockExecutions(client: Queryable, executionIds: readonly string[]): Promise<void> {
  await client.query(
    `SELECT count(pg_advisory_xact_lock($1, k)) FROM (SELECT DISTINCT hashtext(id) AS k FROM unnest($2::text[]) AS id ORDER BY k) AS keys`,
    [EXECUTION_LOCKS, executionIds],
  );
}
