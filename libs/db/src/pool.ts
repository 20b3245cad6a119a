import pg from 'pg';

export type Pool = pg.Pool;

// BIGINT columns hold epoch milliseconds and byte counts, all far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

/**
 * A pool that outlives its server: while PostgreSQL is down or restarting, queries fail (callers decide
 * whether to retry) and later ones reconnect; nothing about the outage ends the process.
 */
export function createPool(url: string, opts: { max?: number; name?: string; connectTimeoutMs?: number } = {}): Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.max ?? 10,
    application_name: opts.name ?? 'paddock',
    // Without a bound, a query waits forever on a server that accepts no connections (a full backlog, a lost host).
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
  });
  // An idle client that loses its server (database restart) must not crash the process.
  pool.on('error', () => {});
  // Nor one that is checked out (pool.connect(), for a transaction): the pool removes its own listener
  // while a client is lent, and an 'error' event with no listener ends the process. The query in
  // progress rejects with the same error, which is where it is handled.
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}
