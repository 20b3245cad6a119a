import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { ensureRolePasswords, InvalidServiceRoleError, SecretFileError, serviceDatabaseUrl } from '../src/index.js';

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'paddock-role-passwords-test-'));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('each service gets a random password, kept in a 0600 file and the same at every later call', async () => {
  const passwords = join(dir, 'plane', 'db');
  const first = await ensureRolePasswords(passwords, ['gateway', 'scheduler']);
  assert.deepEqual(first.map((s) => s.service), ['gateway', 'scheduler']);
  for (const { service, password } of first) {
    assert.match(password, /^[A-Za-z0-9_-]{32}$/);
    assert.equal((await readFile(join(passwords, `${service}.password`), 'utf8')).trim(), password);
    assert.equal((await stat(join(passwords, `${service}.password`))).mode & 0o777, 0o600);
  }
  assert.notEqual(first[0]?.password, first[1]?.password);
  assert.equal((await stat(passwords)).mode & 0o777, 0o700);
  assert.deepEqual(await ensureRolePasswords(passwords, ['gateway', 'scheduler']), first);
});

test('callers racing for a new password all get the one that was written', async () => {
  const passwords = join(dir, 'racing');
  const results = await Promise.all(Array.from({ length: 8 }, () => ensureRolePasswords(passwords, ['broker'])));
  assert.equal(new Set(results.map(([spec]) => spec?.password)).size, 1);
  assert.equal((await readFile(join(passwords, 'broker.password'), 'utf8')).trim(), results[0]?.[0]?.password);
});

test('an empty password file is refused rather than used; a name that cannot be a role is refused before any file is made', async () => {
  const passwords = join(dir, 'broken');
  await ensureRolePasswords(passwords, ['gateway']);
  await writeFile(join(passwords, 'gateway.password'), '\n');
  await assert.rejects(ensureRolePasswords(passwords, ['gateway']), (err: unknown) => err instanceof SecretFileError && /gateway\.password: is empty/.test(err.message));
  await assert.rejects(ensureRolePasswords(passwords, ['../escape']), InvalidServiceRoleError);
});

/** Where pg connects, and as whom, with `url`. */
function parse(url: string): { user?: string; password?: string | null; host?: string; port?: number; database?: string } {
  const client = new pg.Client({ connectionString: url });
  return { user: client.user, password: client.password, host: client.host, port: client.port, database: client.database };
}

test('a service\'s DATABASE_URL is the admin URL with the service\'s role and password, options kept', () => {
  const url = serviceDatabaseUrl('postgres://admin:s3cret@db.example:6432/paddock?sslmode=verify-full&application_name=x', 'gateway', 'p@ss:w/rd%41');
  const parsed = parse(url);
  assert.equal(parsed.user, 'paddock_gateway');
  assert.equal(parsed.password, 'p@ss:w/rd%41');
  assert.equal(parsed.host, 'db.example');
  assert.equal(parsed.port, 6432);
  assert.equal(parsed.database, 'paddock');
  assert.equal(new URL(url).searchParams.get('sslmode'), 'verify-full');
  assert.doesNotMatch(url, /s3cret|admin/);

  const overridden = parse(serviceDatabaseUrl('postgresql://admin@db.example/paddock?user=admin&password=s3cret', 'broker', 'broker-password-0123456789'));
  assert.equal(overridden.user, 'paddock_broker');
  assert.equal(overridden.password, 'broker-password-0123456789');

  const socket = parse(serviceDatabaseUrl('postgres:///paddock?host=/run/postgresql', 'scheduler', 'scheduler-password-0123456789'));
  assert.equal(socket.host, '/run/postgresql');
  assert.equal(socket.user, 'paddock_scheduler');
  assert.equal(socket.password, 'scheduler-password-0123456789');
  assert.equal(socket.database, 'paddock');

  assert.throws(() => serviceDatabaseUrl('host=db dbname=paddock', 'gateway', 'x'), (err: unknown) => err instanceof InvalidServiceRoleError && /not a URL/.test(err.message));
  assert.throws(() => serviceDatabaseUrl('mysql://db/paddock', 'gateway', 'x'), /must start with postgres:\/\/ or postgresql:\/\//);
});
