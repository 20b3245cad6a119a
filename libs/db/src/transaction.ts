import type pg from 'pg';
import type { Pool } from './pool.js';

/** A pool or a client in a transaction: whatever runs one statement. */
export type Queryable = Pick<pg.ClientBase, 'query'>;

/**
 * Runs `work` in one transaction on a client of `pool` of its own: committed when it resolves, rolled back
 * when it throws. A client that cannot even roll back (its connection failed) is discarded, not returned
 * to the pool.
 */
export async function inTransaction<T>(pool: Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let reusable = true;
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    reusable = await client.query('ROLLBACK').then(
      () => true,
      () => false,
    );
    throw err;
  } finally {
    client.release(!reusable);
  }
}
