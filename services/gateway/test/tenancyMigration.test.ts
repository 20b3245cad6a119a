// Upgrading a database of the release before tenancy: its users get personal teams and projects, their
// executions move there, and the gateway serves them as before, in their projects.
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createPool, migrate, type Pool } from '@paddock/db';
import { MIGRATIONS_DIR, startGateway } from '../src/gateway.js';
import { hashToken } from '../src/users/userStore.js';
import { startTestStack, type TestStack } from './testStack.js';

/** The first migration of tenancy: the ones before it are the release before. */
const TENANCY = '007_tenancy.sql';

let stack: TestStack;
let previous: string;
let pool: Pool;
let databaseUrl: string;

before(async () => {
  stack = await startTestStack();
  // A database of its own on the same server, migrated as the release before left it.
  await stack.pool.query('CREATE DATABASE before_tenancy');
  const url = new URL(stack.databaseUrl);
  url.pathname = '/before_tenancy';
  databaseUrl = url.toString();
  pool = createPool(databaseUrl, { name: 'tenancy-migration-test' });
  previous = await mkdtemp(join(tmpdir(), 'paddock-migrations-before-tenancy-'));
  for (const file of await readdir(MIGRATIONS_DIR)) {
    if (file.endsWith('.sql') && file < TENANCY) await copyFile(join(MIGRATIONS_DIR, file), join(previous, file));
  }
});

after(async () => {
  await pool?.end();
  if (previous) await rm(previous, { recursive: true, force: true });
  await stack?.stop();
});

test('users and executions of the release before get personal teams and projects, and are served in them', { timeout: 60_000 }, async () => {
  assert.deepEqual(await migrate(pool, 'gateway', previous), (await readdir(previous)).sort());
  const users = [
    { id: 'u0old0admin000000000000', name: 'admin', token: 'pdk_old-admin', admin: true },
    { id: 'u0old0alice000000000000', name: 'alice', token: 'pdk_old-alice', admin: false },
    { id: 'u0old0bob00000000000000', name: 'bob', token: 'pdk_old-bob', admin: false },
  ];
  for (const u of users) {
    await pool.query('INSERT INTO users (id, name, token_hash, is_admin) VALUES ($1, $2, $3, $4)', [u.id, u.name, hashToken(u.token), u.admin]);
  }
  const request = { kind: 'shell', command: 'echo old', script: null, files: [], env: [], image: 'paddock/base:latest', resources: { cpus: 1, memoryMb: 1024, diskMb: 0 }, timeoutS: 60, network: 'none', service: false, secrets: [] };
  const executions = [
    ['0old0exec0alice00000001', users[1]!.id, 'completed'],
    ['0old0exec0alice00000002', users[1]!.id, 'executing'],
    ['0old0exec0bob0000000001', users[2]!.id, 'failed'],
  ] as const;
  for (const [id, owner, state] of executions) {
    await pool.query(`INSERT INTO executions (id, owner_id, request, spec, state, published) VALUES ($1, $2, $3, '\\x'::bytea, $4, true)`, [id, owner, request, state]);
  }
  await pool.query(`INSERT INTO secrets (owner_id, name, sealed) VALUES ($1, 'KEEP', '\\x00'::bytea)`, [users[1]!.id]);

  assert.deepEqual(await migrate(pool, 'gateway', MIGRATIONS_DIR), [TENANCY, ...(await readdir(MIGRATIONS_DIR)).filter((f) => f.endsWith('.sql') && f > TENANCY).sort()]);

  const spaces = await pool.query<{ userId: string; teamId: string; teamName: string; role: string; projectId: string; projectName: string }>(
    `SELECT t.personal_of AS "userId", t.id AS "teamId", t.name AS "teamName", m.role, p.id AS "projectId", p.name AS "projectName"
     FROM teams t JOIN team_members m ON m.team_id = t.id JOIN projects p ON p.team_id = t.id AND p.personal ORDER BY t.personal_of`,
  );
  assert.deepEqual(
    spaces.rows.map((r) => [r.userId, r.teamName, r.role, r.projectName]),
    users.map((u) => [u.id, u.name, 'owner', 'default']).sort(),
    'one personal team (its user its owner) and project per user',
  );
  for (const r of spaces.rows) {
    assert.match(r.teamId, /^t[0-9a-f]{22}$/);
    assert.match(r.projectId, /^p[0-9a-f]{22}$/);
  }
  const projectOf = new Map(spaces.rows.map((r) => [r.userId, r.projectId]));
  const moved = await pool.query<{ id: string; owner: string; project: string }>('SELECT id, owner_id AS owner, project_id AS project FROM executions ORDER BY id');
  assert.deepEqual(
    moved.rows.map((r) => [r.id, r.project]),
    executions.map(([id, owner]) => [id, projectOf.get(owner)]).sort(),
    "each execution in its owner's personal project",
  );
  assert.equal((await pool.query('SELECT count(*)::int AS n FROM secrets')).rows[0].n, 1, "users' secrets stay theirs");

  // The gateway of this release on the upgraded database: old tokens work, old executions are where they were moved.
  // Where the release before kept the admin's token: the gateway issues a new one only when it is gone.
  const adminTokenFile = join(previous, 'admin-token');
  await writeFile(adminTokenFile, 'pdk_old-admin\n', { mode: 0o600 });
  const gateway = await startGateway(stack.config({ DATABASE_URL: databaseUrl, PADDOCK_ADMIN_TOKEN_FILE: adminTokenFile }), stack.log);
  try {
    const get = (url: string, token: string) => gateway.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } });
    const alices = await get('/api/v1/executions', 'pdk_old-alice');
    assert.equal(alices.statusCode, 200, alices.body);
    assert.deepEqual(
      alices.json<{ items: { id: string; projectId: string }[] }>().items.map((e) => [e.id, e.projectId]),
      [executions[1], executions[0]].map(([id]) => [id, projectOf.get(users[1]!.id)]),
    );
    assert.equal((await get(`/api/v1/executions/${executions[2][0]}`, 'pdk_old-alice')).statusCode, 404, "bob's is still not alice's");
    const me = await get('/api/v1/users/me', 'pdk_old-bob');
    assert.equal(me.json<{ personalProjectId: string }>().personalProjectId, projectOf.get(users[2]!.id));
    const created = await gateway.app.inject({ method: 'POST', url: '/api/v1/executions', headers: { authorization: 'Bearer pdk_old-bob' }, payload: { kind: 'shell', command: 'true' } });
    assert.equal(created.statusCode, 201, created.body);
    assert.equal(created.json<{ projectId: string }>().projectId, projectOf.get(users[2]!.id));
    const fresh = await gateway.app.inject({ method: 'POST', url: '/api/v1/users', headers: { authorization: 'Bearer pdk_old-admin' }, payload: { name: 'carol' } });
    assert.equal(fresh.statusCode, 201, fresh.body);
    const carol = fresh.json<{ id: string; token: string }>();
    const carols = await get('/api/v1/users/me', carol.token);
    assert.match(carols.json<{ personalProjectId: string }>().personalProjectId, /^p[0-9a-z]{22}$/, 'a user made after the upgrade gets hers with the user');
  } finally {
    await gateway.stop();
  }
});
