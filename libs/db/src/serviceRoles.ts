import pg from 'pg';
import { createLedger } from './migrate.js';
import { createPool } from './pool.js';
import { serviceDatabaseUrl } from './rolePasswords.js';
import { scramMatches, scramVerifier } from './scram.js';
import { checkServiceName, InvalidServiceRoleError, serviceRole } from './serviceRole.js';
import { waitForDatabase, type WaitForDatabaseOptions } from './waitForDatabase.js';

/**
 * The tables each service kept in `public` before services had roles and schemas of their own. They are
 * moved at the upgrade (see ensureServiceRoles); tables made since land in the service's schema, so this
 * list never grows.
 */
export const PUBLIC_TABLES_BEFORE_ROLES: Readonly<Record<string, readonly string[]>> = Object.freeze({
  gateway: Object.freeze(['users', 'executions', 'secrets', 'terminal_tickets']),
  scheduler: Object.freeze(['scheduler_jobs']),
  broker: Object.freeze(['broker_instances']),
});

/** A service whose role ensureServiceRoles sets up. */
export interface ServiceRoleSpec {
  /** Lowercase letters, digits and `_`, starting with a letter: the schema's name, and the role's after `paddock_`. */
  readonly service: string;
  /** The role's password: printable ASCII without spaces, at least 16 characters (see ensureRolePasswords). */
  readonly password: string;
  /** The service's tables that may still sit in `public`; PUBLIC_TABLES_BEFORE_ROLES[service] when not given. */
  readonly publicTables?: readonly string[];
}

/** What ensureServiceRoles set up, and what it had to change for that. */
export interface ServiceRolesSetup {
  readonly roles: readonly { readonly service: string; readonly role: string; readonly schema: string }[];
  /** Each change made, in words ("created role paddock_gateway"), in order; empty when everything was in place already. */
  readonly changes: readonly string[];
}

/** The admin URL's role may not create roles or schemas, so it cannot set up the services' roles. */
export class RolePrivilegesError extends Error {
  constructor(
    readonly user: string,
    readonly database: string,
    readonly missing: readonly string[],
  ) {
    const grants = [missing.includes('CREATEROLE') ? `ALTER ROLE "${user}" CREATEROLE;` : '', missing.some((m) => m.startsWith('CREATE on')) ? `GRANT CREATE ON DATABASE "${database}" TO "${user}";` : '']
      .filter((g) => g !== '')
      .join(' ');
    super(
      `the database role "${user}" cannot set up Paddock's service roles: it lacks ${missing.join(' and ')}. ` +
        `Connect as a superuser, or as a role with CREATEROLE that owns database "${database}" (as a superuser: ${grants}), ` +
        `or set the roles up once as described in @paddock/db's README`,
    );
    this.name = 'RolePrivilegesError';
  }
}

/** A table of a service sits both in `public` and in the service's schema: which one holds the data is for a person to decide. */
export class PublicTableConflictError extends Error {
  constructor(
    readonly service: string,
    readonly table: string,
  ) {
    super(`table ${table} of ${service} is both in schema public and in schema ${service}; keep the one that holds the data and drop the other, then start again`);
    this.name = 'PublicTableConflictError';
  }
}

/** A step of the setup failed in the database (a privilege, a lock, an object in the way); `cause` is PostgreSQL's error. */
export class ServiceRoleSetupError extends Error {
  constructor(
    readonly step: string,
    options: ErrorOptions,
  ) {
    super(`${step} failed: ${(options.cause as Error).message}`, options);
    this.name = 'ServiceRoleSetupError';
  }
}

const TABLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
const PASSWORD = /^[\x21-\x7e]{16,}$/;
const LOCK = 'paddock-service-roles';
const LEDGER = 'paddock_migrations';
/** duplicate_object (the role exists), unique_violation (on the role catalog), serialization_failure. */
const RACES = new Set(['42710', '23505', '40001']);
const ATTEMPTS = 3;
const LOCK_TIMEOUT_MS = 30_000;

/**
 * Gives each service a LOGIN role `paddock_<service>` with its password and a schema named after the
 * service, owned by that role and first (only) in the role's search_path. A service connecting as its
 * role creates its tables and its migration ledger there, owns them, and can neither read nor write
 * another service's schema, nor create anything in `public`.
 *
 * Run with a superuser, or a role with CREATEROLE and CREATE on the database, before the services start:
 * by `paddock up`, or by an operator. Idempotent: a second run changes nothing (a password is only set
 * when it differs) and reports no changes. Concurrent runs on one database queue on an advisory lock;
 * everything happens in one transaction, so a failure leaves the database as it was.
 *
 * The upgrade of a database made before roles: a service's tables that still sit in `public` (its
 * `publicTables`) move into its schema, indexes, constraints and owned sequences with them, and are given
 * to its role; its records in `public.paddock_migrations` move to the schema's own ledger, so that no
 * migration runs twice. `public.paddock_migrations` is dropped once no service has records left in it.
 *
 * `wait` is as for waitForDatabase: a server that is not up yet is waited for, wrong credentials fail at once.
 */
export async function ensureServiceRoles(adminUrl: string, roles: readonly ServiceRoleSpec[], wait: WaitForDatabaseOptions = {}): Promise<ServiceRolesSetup> {
  const specs = checkSpecs(roles);
  const pool = createPool(adminUrl, { max: 1, name: 'paddock-roles' });
  try {
    await waitForDatabase(pool, wait);
    for (let attempt = 1; ; attempt++) {
      const client = await pool.connect();
      let failure: Error | undefined;
      try {
        return await setUp(client, adminUrl, specs);
      } catch (err) {
        failure = err as Error;
        // Roles belong to the cluster while the advisory lock belongs to the database: two Paddock databases
        // of one cluster setting up at once may both try to create a role, and the loser just tries again.
        if (attempt < ATTEMPTS && RACES.has(sqlState(err) ?? '')) continue;
        throw err;
      } finally {
        client.release(failure);
      }
    }
  } finally {
    await pool.end();
  }
}

interface Admin {
  readonly user: string;
  readonly database: string;
  readonly superuser: boolean;
  readonly serverVersion: number;
}

function checkSpecs(roles: readonly ServiceRoleSpec[]): Required<ServiceRoleSpec>[] {
  const services = new Set<string>();
  const tables = new Map<string, string>();
  return roles.map((spec) => {
    checkServiceName(spec.service);
    if (services.has(spec.service)) throw new InvalidServiceRoleError(`service ${spec.service} is listed twice`);
    services.add(spec.service);
    if (typeof spec.password !== 'string' || !PASSWORD.test(spec.password)) {
      throw new InvalidServiceRoleError(`the password of service ${spec.service} must be printable ASCII without spaces, at least 16 characters`);
    }
    const publicTables = spec.publicTables ?? PUBLIC_TABLES_BEFORE_ROLES[spec.service] ?? [];
    for (const table of publicTables) {
      if (!TABLE_NAME.test(table) || table === LEDGER) throw new InvalidServiceRoleError(`${JSON.stringify(table)} in the public tables of ${spec.service} is not a table name Paddock uses`);
      const other = tables.get(table);
      if (other !== undefined) throw new InvalidServiceRoleError(`table ${table} is listed for both ${other} and ${spec.service}`);
      tables.set(table, spec.service);
    }
    return { service: spec.service, password: spec.password, publicTables };
  });
}

async function setUp(client: pg.PoolClient, adminUrl: string, specs: readonly Required<ServiceRoleSpec>[]): Promise<ServiceRolesSetup> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [LOCK]);
    // Moving a table waits for everyone using it: a service of the old layout still running would hold
    // the setup (and every query queued behind it) forever; a named failure says which table instead.
    await client.query(`SET LOCAL lock_timeout = '${LOCK_TIMEOUT_MS}ms'`);
    const admin = await adminPrivileges(client);
    const run = new Steps(client);
    for (const spec of specs) {
      const role = serviceRole(spec.service);
      await ensureRole(run, admin, adminUrl, spec, role);
      if (!admin.superuser) await ensureMembership(run, admin, role);
      await ensureSchema(run, spec.service, role);
      await ensureConnect(run, admin, role);
      await movePublicTables(run, spec, role);
      await moveLedgerRecords(run, spec.service, role);
    }
    await closePublicAndOtherSchemas(run, specs);
    await client.query('COMMIT');
    return { roles: specs.map(({ service }) => ({ service, role: serviceRole(service), schema: service })), changes: run.changes };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/** Runs the statements of a setup, naming the step in any failure and recording what it changed. */
class Steps {
  readonly changes: string[] = [];

  constructor(readonly client: pg.PoolClient) {}

  id(name: string): string {
    return this.client.escapeIdentifier(name);
  }

  literal(value: string): string {
    return this.client.escapeLiteral(value);
  }

  async query<R extends pg.QueryResultRow>(step: string, sql: string, values: unknown[] = []): Promise<R[]> {
    try {
      return (await this.client.query<R>(sql, values)).rows;
    } catch (err) {
      throw new ServiceRoleSetupError(step, { cause: err });
    }
  }

  /** `sql` changes something: `change` says what, in the outcome. */
  async change(change: string, sql: string, values: unknown[] = []): Promise<void> {
    await this.query(change, sql, values);
    this.changes.push(change);
  }
}

async function adminPrivileges(client: pg.PoolClient): Promise<Admin> {
  const row = (
    await client.query<{ user: string; database: string; superuser: boolean; createrole: boolean; createOnDatabase: boolean; serverVersion: number }>(
      `SELECT current_user AS "user", current_database() AS database, r.rolsuper AS superuser, r.rolcreaterole AS createrole,
              has_database_privilege(current_database(), 'CREATE') AS "createOnDatabase",
              current_setting('server_version_num')::int AS "serverVersion"
         FROM pg_roles r WHERE r.rolname = current_user`,
    )
  ).rows[0];
  if (row === undefined) throw new Error('the current user is missing from pg_roles');
  if (!row.superuser) {
    const missing = [...(row.createrole ? [] : ['CREATEROLE']), ...(row.createOnDatabase ? [] : [`CREATE on database "${row.database}"`])];
    if (missing.length > 0) throw new RolePrivilegesError(row.user, row.database, missing);
  }
  return { user: row.user, database: row.database, superuser: row.superuser, serverVersion: row.serverVersion };
}

/** The role exists, may log in, has no powers beyond its own objects, and has `spec.password`. */
async function ensureRole(run: Steps, admin: Admin, adminUrl: string, spec: Required<ServiceRoleSpec>, role: string): Promise<void> {
  const [found] = await run.query<{ rolsuper: boolean; rolcreaterole: boolean; rolcreatedb: boolean; rolreplication: boolean; rolbypassrls: boolean; rolcanlogin: boolean; rolconfig: string[] | null }>(
    `looking up role ${role}`,
    'SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolcanlogin, rolconfig FROM pg_roles WHERE rolname = $1',
    [role],
  );
  if (found === undefined) {
    await run.change(`created role ${role}`, `CREATE ROLE ${run.id(role)} LOGIN PASSWORD ${run.literal(scramVerifier(spec.password))}`);
  } else {
    const fixes = [
      ...(found.rolcanlogin ? [] : ['LOGIN']),
      ...(found.rolsuper ? ['NOSUPERUSER'] : []),
      ...(found.rolcreaterole ? ['NOCREATEROLE'] : []),
      ...(found.rolcreatedb ? ['NOCREATEDB'] : []),
      ...(found.rolreplication ? ['NOREPLICATION'] : []),
      ...(found.rolbypassrls ? ['NOBYPASSRLS'] : []),
    ];
    if (fixes.length > 0) await run.change(`made role ${role} ${fixes.join(' ')}`, `ALTER ROLE ${run.id(role)} ${fixes.join(' ')}`);
    if (!(await hasPassword(run, admin, adminUrl, spec, role))) {
      await run.change(`set the password of role ${role}`, `ALTER ROLE ${run.id(role)} PASSWORD ${run.literal(scramVerifier(spec.password))}`);
    }
  }
  const searchPath = `search_path=${spec.service}`;
  if (!(found?.rolconfig ?? []).includes(searchPath)) {
    await run.change(`set the search_path of role ${role} to ${spec.service}`, `ALTER ROLE ${run.id(role)} SET search_path = ${run.id(spec.service)}`);
  }
}

/**
 * Whether the role's password is `spec.password` already, so that a second run does not set it again.
 * A superuser reads the stored verifier; any other admin cannot, and finds out by logging in as the role.
 */
async function hasPassword(run: Steps, admin: Admin, adminUrl: string, spec: Required<ServiceRoleSpec>, role: string): Promise<boolean> {
  if (admin.superuser) {
    const [stored] = await run.query<{ rolpassword: string | null }>(`reading the password verifier of role ${role}`, 'SELECT rolpassword FROM pg_authid WHERE rolname = $1', [role]);
    return typeof stored?.rolpassword === 'string' && scramMatches(stored.rolpassword, spec.password);
  }
  const client = new pg.Client({ connectionString: serviceDatabaseUrl(adminUrl, spec.service, spec.password), connectionTimeoutMillis: 10_000 });
  try {
    await client.connect();
    return true;
  } catch {
    // Refused, or unable to tell: setting the same password again is harmless.
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * A non-superuser admin needs to act as the role to create its schema and hand it tables (CREATE SCHEMA
 * ... AUTHORIZATION, ALTER TABLE ... OWNER TO). From PostgreSQL 16 on, the role that creates a role only
 * administers it, so it is granted membership with SET and INHERIT.
 */
async function ensureMembership(run: Steps, admin: Admin, role: string): Promise<void> {
  const modern = admin.serverVersion >= 160000;
  const [row] = await run.query<{ member: boolean }>(
    `checking that ${admin.user} may act as ${role}`,
    modern ? "SELECT pg_has_role($1, 'SET') AND pg_has_role($1, 'USAGE') AS member" : "SELECT pg_has_role($1, 'USAGE') AS member",
    [role],
  );
  if (row?.member === true) return;
  await run.change(`granted role ${role} to ${admin.user}`, `GRANT ${run.id(role)} TO CURRENT_USER${modern ? ' WITH INHERIT TRUE, SET TRUE' : ''}`);
}

/** The service's schema exists, belongs to its role, and PUBLIC has nothing on it. */
async function ensureSchema(run: Steps, schema: string, role: string): Promise<void> {
  const [found] = await run.query<{ owner: string; publicUse: boolean }>(
    `looking up schema ${schema}`,
    `SELECT pg_get_userbyid(nspowner) AS owner,
            has_schema_privilege('public', oid, 'USAGE') OR has_schema_privilege('public', oid, 'CREATE') AS "publicUse"
       FROM pg_namespace WHERE nspname = $1`,
    [schema],
  );
  if (found === undefined) {
    await run.change(`created schema ${schema} owned by ${role}`, `CREATE SCHEMA ${run.id(schema)} AUTHORIZATION ${run.id(role)}`);
    return;
  }
  if (found.owner !== role) await run.change(`gave schema ${schema} (owned by ${found.owner}) to ${role}`, `ALTER SCHEMA ${run.id(schema)} OWNER TO ${run.id(role)}`);
  if (found.publicUse) await run.change(`revoked every privilege of PUBLIC on schema ${schema}`, `REVOKE ALL ON SCHEMA ${run.id(schema)} FROM PUBLIC`);
}

async function ensureConnect(run: Steps, admin: Admin, role: string): Promise<void> {
  const [row] = await run.query<{ connect: boolean }>(`checking that ${role} may connect`, "SELECT has_database_privilege($1, current_database(), 'CONNECT') AS connect", [role]);
  if (row?.connect !== true) await run.change(`granted ${role} CONNECT on database ${admin.database}`, `GRANT CONNECT ON DATABASE ${run.id(admin.database)} TO ${run.id(role)}`);
}

/** The upgrade: the service's tables that still sit in `public` move into its schema and are given to its role. */
async function movePublicTables(run: Steps, spec: Required<ServiceRoleSpec>, role: string): Promise<void> {
  if (spec.publicTables.length === 0) return;
  const schema = spec.service;
  const found = await run.query<{ name: string; taken: boolean }>(
    `looking for tables of ${spec.service} in schema public`,
    `SELECT c.relname AS name,
            EXISTS (SELECT 1 FROM pg_class d JOIN pg_namespace dn ON dn.oid = d.relnamespace WHERE dn.nspname = $2 AND d.relname = c.relname) AS taken
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname = ANY($1::text[])
      ORDER BY c.relname`,
    [spec.publicTables, schema],
  );
  for (const { name, taken } of found) {
    if (taken) throw new PublicTableConflictError(spec.service, name);
    // Moved first, then given away: a new owner must be allowed to create in the table's schema, which the
    // role may in its own schema and not in public. Indexes, constraints and owned sequences follow the table.
    await run.change(`moved table public.${name} into schema ${schema}`, `ALTER TABLE public.${run.id(name)} SET SCHEMA ${run.id(schema)}`);
    await run.query(`giving ${schema}.${name} to ${role}`, `ALTER TABLE ${run.id(schema)}.${run.id(name)} OWNER TO ${run.id(role)}`);
  }
}

/** The upgrade: the service's records in the shared `public.paddock_migrations` move to its schema's own ledger. */
async function moveLedgerRecords(run: Steps, service: string, role: string): Promise<void> {
  const [ledgerTable] = await run.query<{ present: boolean; sha256: boolean }>(
    'looking for the shared migration ledger public.paddock_migrations',
    `SELECT to_regclass('public.paddock_migrations') IS NOT NULL AS present,
            EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('public.paddock_migrations') AND attname = 'sha256' AND NOT attisdropped) AS sha256`,
  );
  if (ledgerTable?.present !== true) return;
  const [shared] = await run.query<{ records: number }>(`counting the migration records of ${service}`, 'SELECT count(*) AS records FROM public.paddock_migrations WHERE service = $1', [service]);
  if (shared === undefined || shared.records === 0) return;
  const ledger = `${run.id(service)}.${LEDGER}`;
  try {
    await createLedger(run.client, ledger);
  } catch (err) {
    throw new ServiceRoleSetupError(`creating the migration ledger ${service}.${LEDGER}`, { cause: err });
  }
  await run.query(`giving ${service}.${LEDGER} to ${role}`, `ALTER TABLE ${ledger} OWNER TO ${run.id(role)}`);
  await run.query(
    `copying the migration records of ${service}`,
    `INSERT INTO ${ledger} (service, name, applied_at, sha256)
       SELECT service, name, applied_at, ${ledgerTable.sha256 ? 'sha256' : 'NULL'} FROM public.paddock_migrations WHERE service = $1
       ON CONFLICT (service, name) DO NOTHING`,
    [service],
  );
  await run.change(`moved ${shared.records} migration record(s) of ${service} from public.${LEDGER} to ${service}.${LEDGER}`, 'DELETE FROM public.paddock_migrations WHERE service = $1', [service]);
  const [left] = await run.query<{ any: boolean }>('checking what is left in public.paddock_migrations', 'SELECT EXISTS (SELECT 1 FROM public.paddock_migrations) AS any');
  if (left?.any === false) await run.change(`dropped the emptied public.${LEDGER}`, 'DROP TABLE public.paddock_migrations');
}

/**
 * No role may create objects in `public` (the default up to PostgreSQL 14 lets everyone), and no service
 * role may use another's schema: grants that say otherwise are revoked, and what is still allowed through
 * some other path (membership in another role) fails the setup instead of passing unnoticed.
 */
async function closePublicAndOtherSchemas(run: Steps, specs: readonly Required<ServiceRoleSpec>[]): Promise<void> {
  const [publicSchema] = await run.query<{ publicCreate: boolean }>(
    'looking up schema public',
    "SELECT has_schema_privilege('public', oid, 'CREATE') AS \"publicCreate\" FROM pg_namespace WHERE nspname = 'public'",
  );
  if (publicSchema?.publicCreate === true) await run.change('revoked CREATE on schema public from PUBLIC', 'REVOKE CREATE ON SCHEMA public FROM PUBLIC');
  const granted = async (role: string, schema: string, privileges: readonly string[]) => {
    const [row] = await run.query<{ granted: string[] }>(
      `checking what ${role} may do in schema ${schema}`,
      'SELECT array(SELECT p FROM unnest($3::text[]) AS p WHERE has_schema_privilege($1::name, $2::text, p)) AS granted',
      [role, schema, privileges],
    );
    return row?.granted ?? [];
  };
  for (const spec of specs) {
    const role = serviceRole(spec.service);
    const closed = [
      ...(publicSchema === undefined ? [] : [{ schema: 'public', privileges: ['CREATE'] }]),
      ...specs.filter((other) => other !== spec).map((other) => ({ schema: other.service, privileges: ['USAGE', 'CREATE'] })),
    ];
    for (const { schema, privileges } of closed) {
      const open = await granted(role, schema, privileges);
      if (open.length === 0) continue;
      await run.change(`revoked ${open.join(', ')} on schema ${schema} from ${role}`, `REVOKE ${open.join(', ')} ON SCHEMA ${run.id(schema)} FROM ${run.id(role)}`);
      const still = await granted(role, schema, privileges);
      if (still.length > 0) {
        throw new ServiceRoleSetupError(`closing schema ${schema} to ${role}`, {
          cause: new Error(`${role} still has ${still.join(', ')} on it through a role it is a member of; revoke that membership`),
        });
      }
    }
  }
}

/** The SQLSTATE of a PostgreSQL error, also when it is the cause of one of ours. */
function sqlState(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined; e !== undefined && e !== null; e = e.cause as typeof e) {
    if (typeof e.code === 'string') return e.code;
  }
  return undefined;
}
