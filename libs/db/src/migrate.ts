import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import type { Pool } from './pool.js';
import { waitForDatabase, type WaitForDatabaseOptions } from './waitForDatabase.js';

/** A migration that was applied has been edited since: the database no longer matches the file. */
export class MigrationChangedError extends Error {
  constructor(
    readonly service: string,
    readonly file: string,
  ) {
    super(`migration ${service}/${file} was changed after it was applied; add a new migration instead of editing an applied one`);
    this.name = 'MigrationChangedError';
  }
}

/**
 * Applies a service's SQL migrations (files named NNN_name.sql, in name order), each once and in its own
 * transaction. Services migrate at start; an advisory lock keeps two replicas from racing.
 * It first waits for PostgreSQL (see waitForDatabase), so a service started before its database, or
 * restarted while the database restarts, waits for it instead of exiting.
 */
export async function migrate(pool: Pool, service: string, dir: string, wait: WaitForDatabaseOptions = {}): Promise<string[]> {
  await waitForDatabase(pool, wait);
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort();
  const client = await pool.connect();
  const applied: string[] = [];
  let failure: Error | undefined;
  try {
    await client.query('SELECT pg_advisory_lock(hashtext($1))', [`paddock-migrate`]);
    await createLedger(client, 'paddock_migrations');
    const done = new Map(
      (await client.query<{ name: string; sha256: string | null }>('SELECT name, sha256 FROM paddock_migrations WHERE service = $1', [service])).rows.map(
        (r) => [r.name, r.sha256],
      ),
    );
    for (const file of files) {
      const sql = await readFile(join(dir, file), 'utf8');
      const sha256 = createHash('sha256').update(sql).digest('hex');
      if (done.has(file)) {
        const recorded = done.get(file);
        if (recorded === null) await client.query('UPDATE paddock_migrations SET sha256 = $3 WHERE service = $1 AND name = $2', [service, file, sha256]);
        else if (recorded !== sha256) throw new MigrationChangedError(service, file);
        continue;
      }
      await client.query('BEGIN');
      try {
        await client.query(sql);
        await client.query('INSERT INTO paddock_migrations (service, name, sha256) VALUES ($1, $2, $3)', [service, file, sha256]);
        await client.query('COMMIT');
        applied.push(file);
      } catch (err) {
        // A broken connection fails the rollback too; the migration's own error is the one to report.
        await client.query('ROLLBACK').catch(() => {});
        throw new Error(`migration ${service}/${file} failed: ${(err as Error).message}`, { cause: err });
      }
    }
  } catch (err) {
    failure = err as Error;
    throw err;
  } finally {
    await client.query('SELECT pg_advisory_unlock(hashtext($1))', [`paddock-migrate`]).catch(() => {});
    // After a failure the client is discarded, not returned to the pool: its connection may be broken.
    client.release(failure);
  }
  return applied;
}

/**
 * The ledger of applied migrations, `table` being its name as SQL (quoted, schema-qualified or not: a bare
 * name lands in the first schema of the search path, the service's own one when it runs as its role).
 * ensureServiceRoles makes the same table when it moves a service's records out of `public`.
 */
export async function createLedger(client: pg.ClientBase, table: string): Promise<void> {
  await client.query(`CREATE TABLE IF NOT EXISTS ${table} (
    service TEXT NOT NULL, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (service, name))`);
  await client.query(`ALTER TABLE ${table} ADD COLUMN IF NOT EXISTS sha256 TEXT`);
}
