import pg from 'pg';

export type Pool = pg.Pool;

// BIGINT columns hold epoch milliseconds and byte counts, all far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

export function createPool(url: string, opts: { max?: number; name?: string } = {}): Pool {
  const pool = new pg.Pool({ connectionString: url, max: opts.max ?? 10, application_name: opts.name ?? 'paddock' });
  // An idle client that loses its server (database restart) must not crash the process.
  pool.on('error', () => {});
  return pool;
}
