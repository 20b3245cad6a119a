import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Pool } from './pool.js';

/**
 * Applies a service's SQL migrations (files named NNN_name.sql, in name order), each once and in its own
 * transaction. Services migrate at start; an advisory lock keeps two replicas from racing.
 */
export async function migrate(pool: Pool, service: string, dir: string): Promise<string[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort();
  const client = await pool.connect();
  const applied: string[] = [];
  try {
    await client.query('SELECT pg_advisory_lock(hashtext($1))', [`paddock-migrate`]);
    await client.query(`CREATE TABLE IF NOT EXISTS paddock_migrations (
      service TEXT NOT NULL, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
      PRIMARY KEY (service, name))`);
    const done = new Set(
      (await client.query<{ name: string }>('SELECT name FROM paddock_migrations WHERE service = $1', [service])).rows.map((r) => r.name),
    );
    for (const file of files) {
      if (done.has(file)) continue;
      const sql = await readFile(join(dir, file), 'utf8');
      await client.query('BEGIN');
      try {
        await client.query(sql);
        await client.query('INSERT INTO paddock_migrations (service, name) VALUES ($1, $2)', [service, file]);
        await client.query('COMMIT');
        applied.push(file);
      } catch (err) {
        await client.query('ROLLBACK');
        throw new Error(`migration ${service}/${file} failed: ${(err as Error).message}`, { cause: err });
      }
    }
  } finally {
    await client.query('SELECT pg_advisory_unlock(hashtext($1))', [`paddock-migrate`]).catch(() => {});
    client.release();
  }
  return applied;
}
