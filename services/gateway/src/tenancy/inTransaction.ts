import type { Pool } from '@paddock/db';
import type { Queryable } from '../executions/idempotencyKeys.js';

/** Runs `work` in one transaction on a client of its own: committed when it returns, rolled back when it throws. */
export async function inTransaction<T>(pool: Pool, work: (db: Queryable) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let reusable = true;
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    // A connection that cannot even roll back is not given back to the pool.
    reusable = await client.query('ROLLBACK').then(() => true, () => false);
    throw err;
  } finally {
    client.release(!reusable);
  }
}
