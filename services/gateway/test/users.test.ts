// Tokens are stored only as hashes; the admin's token lives in $PADDOCK_HOME/admin-token, readable only by
// its owner, kept across restarts and issued anew when the file is gone.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startGateway, type StartedGateway } from '../src/gateway.js';
import { hashToken, UserStore } from '../src/users/userStore.js';
import { startTestStack, type TestStack } from './testStack.js';

let stack: TestStack;

before(async () => {
  stack = await startTestStack();
});
after(async () => {
  await stack?.stop();
});

async function me(gateway: StartedGateway, token: string): Promise<{ status: number; body: { id?: string; name?: string; admin?: boolean; error?: { code: string } } }> {
  const r = await gateway.app.inject({ method: 'GET', url: '/api/v1/users/me', headers: { authorization: `Bearer ${token}` } });
  return { status: r.statusCode, body: r.json() };
}

async function adminRows(): Promise<{ id: string; token_hash: string }[]> {
  return (await stack.pool.query<{ id: string; token_hash: string }>('SELECT id, token_hash FROM users WHERE is_admin')).rows;
}

test('a token is stored only as its SHA-256 hash, and the hash is not a token', async () => {
  const users = new UserStore(stack.pool);
  const { user, token } = await users.create('alice');
  assert.match(token, /^pdk_/);
  assert.equal(user.name, 'alice');
  assert.equal(user.isAdmin, false);
  assert.match(user.id, /^u[0-9a-z]{22}$/);

  const row = (await stack.pool.query('SELECT * FROM users WHERE id = $1', [user.id])).rows[0] as Record<string, unknown>;
  assert.equal(row['token_hash'], createHash('sha256').update(token).digest('hex'));
  assert.equal(hashToken(token), row['token_hash']);
  const everything = JSON.stringify((await stack.pool.query('SELECT * FROM users')).rows);
  assert.ok(!everything.includes(token.slice(4)), 'the token appears nowhere in the users table');

  assert.equal((await users.byToken(token))?.id, user.id);
  assert.equal(await users.byToken(hashToken(token)), null, 'whoever reads the table cannot log in with what is there');
  assert.equal(await users.byToken(`${token}x`), null);
});

test('a rotated token stops working at once and the new one works', async () => {
  const users = new UserStore(stack.pool);
  const { user, token } = await users.create('bob');
  assert.equal((await users.byToken(token))?.id, user.id, 'now cached');
  const fresh = await users.rotate(user.id);
  assert.notEqual(fresh, token);
  assert.equal(await users.byToken(token), null);
  assert.equal((await users.byToken(fresh))?.id, user.id);
});

test('the first start writes the admin token to $PADDOCK_HOME/admin-token (0600), a restart reuses it, a lost file gets a new one', async () => {
  const file = join(stack.home, 'admin-token');
  // A permissive umask must not make the token readable by others.
  const umask = process.umask(0);
  let first: StartedGateway;
  try {
    first = await startGateway(stack.config(), stack.log);
  } finally {
    process.umask(umask);
  }
  let token: string;
  let adminId: string;
  try {
    const content = await readFile(file, 'utf8');
    assert.match(content, /^pdk_[A-Za-z0-9_-]{43}\n$/);
    token = content.trim();
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.deepEqual((await readdir(stack.home)).filter((f) => f.startsWith('admin-token')), ['admin-token'], 'no temporary file is left behind');
    const who = await me(first, token);
    assert.equal(who.status, 200);
    assert.equal(who.body.name, 'admin');
    assert.equal(who.body.admin, true);
    adminId = who.body.id!;
    assert.deepEqual(await adminRows(), [{ id: adminId, token_hash: hashToken(token) }]);
  } finally {
    await first.stop();
  }

  const second = await startGateway(stack.config(), stack.log);
  try {
    assert.equal((await readFile(file, 'utf8')).trim(), token, 'the restart kept the token');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal((await me(second, token)).body.id, adminId);
    assert.equal((await adminRows()).length, 1, 'and made no second admin');
  } finally {
    await second.stop();
  }

  await rm(file);
  const third = await startGateway(stack.config(), stack.log);
  try {
    const rotated = (await readFile(file, 'utf8')).trim();
    assert.match(rotated, /^pdk_/);
    assert.notEqual(rotated, token);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const who = await me(third, rotated);
    assert.equal(who.status, 200);
    assert.equal(who.body.id, adminId, 'the same admin, with a new token');
    const old = await me(third, token);
    assert.equal(old.status, 401, 'the old token, maybe still somewhere, no longer works');
    assert.equal(old.body.error?.code, 'unauthorized');
    assert.deepEqual(await adminRows(), [{ id: adminId, token_hash: hashToken(rotated) }]);
  } finally {
    await third.stop();
  }
});

test('PADDOCK_ADMIN_TOKEN_FILE puts the token elsewhere, creating its directory', async () => {
  const file = join(stack.home, 'elsewhere', 'deeper', 'token');
  const gateway = await startGateway(stack.config({ PADDOCK_ADMIN_TOKEN_FILE: file }), stack.log);
  try {
    const token = (await readFile(file, 'utf8')).trim();
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal((await me(gateway, token)).body.admin, true);
  } finally {
    await gateway.stop();
  }
});
