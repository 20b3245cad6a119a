import type pg from 'pg';
import type { Pool } from '@paddock/db';

/** A pool or a client in a transaction: whatever runs one statement. */
export type Queryable = Pick<pg.ClientBase, 'query'>;

/**
 * Runs `work` in one transaction on a client of `pool`: committed when it resolves, rolled back when it
 * throws. A client whose connection failed is discarded, not returned to the pool.
 */
export async function inTransaction<T>(pool: Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let failure: Error | undefined;
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    failure = err as Error;
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release(failure);
  }
}

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
