import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

/** A service's real migrations folder (tests run from libs/db/dist/test). */
export function migrationsOf(service: string): string {
  return fileURLToPath(new URL(`../../../../services/${service}/migrations`, import.meta.url));
}

/** The last migration of each service in the release before roles: what a database to upgrade has. */
export const LAST_MIGRATION_BEFORE_ROLES: Readonly<Record<string, string>> = { gateway: '004_retention.sql', scheduler: '002_reconcile.sql', broker: '002_access.sql' };

/** The SQL files of a service's migrations folder, in the order migrate() applies them. */
export function migrationFiles(service: string): string[] {
  return readdirSync(migrationsOf(service))
    .filter((f) => f.endsWith('.sql'))
    .sort();
}

/** The SQLSTATE with which PostgreSQL refuses to let `target` in, or 'connected'. */
export async function loginOutcome(target: string | pg.ClientConfig): Promise<string> {
  const client = new pg.Client({ ...(typeof target === 'string' ? { connectionString: target } : target), connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
    return 'connected';
  } catch (err) {
    return String((err as { code?: unknown }).code);
  } finally {
    await client.end().catch(() => {});
  }
}

/** The SQLSTATE `sql` fails with, run through `client`, or 'ok'. */
export async function outcomeOf(client: pg.ClientBase | pg.Pool, sql: string): Promise<string> {
  try {
    await client.query(sql);
    return 'ok';
  } catch (err) {
    return String((err as { code?: unknown }).code);
  }
}

export function withPassword(url: string, password: string): string {
  const changed = new URL(url);
  changed.password = password;
  return changed.toString();
}

export function withDatabase(url: string, database: string): string {
  const changed = new URL(url);
  changed.pathname = `/${database}`;
  return changed.toString();
}

export function withUser(url: string, user: string, password: string): string {
  const changed = new URL(url);
  changed.username = user;
  changed.password = password;
  return changed.toString();
}
