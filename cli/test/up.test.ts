import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { canConnect } from '../src/canConnect.js';
import { runCli } from '../src/cli.js';
import { testContext } from './testContext.js';
import { SERVICES } from '../src/upConfig.js';

// Stand-ins for the built services in a checkout of their own: the gateway answers /healthz on
// PADDOCK_HOST:PADDOCK_PORT and logs what it was given; the broker exits once before it stays up.
const SERVICE = `
import { existsSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
const name = process.argv[2];
const log = (msg, extra = {}) => console.error(JSON.stringify({ level: 30, time: Date.now(), pid: process.pid, service: name, msg, ...extra }));
process.on('SIGTERM', () => { log('stopping'); process.exit(0); });
log('started', { databaseUrl: process.env.DATABASE_URL, natsUrl: process.env.NATS_URL, home: process.env.PADDOCK_HOME });
const marker = new URL('./crashed', import.meta.url);
if (name === 'broker' && !existsSync(marker)) { writeFileSync(marker, ''); process.exit(3); }
if (name === 'gateway') {
  createServer((req, res) => res.writeHead(req.url === '/healthz' ? 200 : 404).end('ok'))
    .listen(Number(process.env.PADDOCK_PORT), process.env.PADDOCK_HOST);
} else {
  setInterval(() => {}, 1000);
}
`;

let dir: string;
let repo: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'paddock-up-'));
  // PostgreSQL runs as its own user, which must be able to pass through to its data directory.
  await chmod(dir, 0o755);
  repo = join(dir, 'repo');
  for (const name of SERVICES) {
    const distDir = join(repo, 'services', name, 'dist', 'src');
    await mkdir(distDir, { recursive: true });
    await writeFile(join(distDir, 'main.js'), `process.argv[2] = ${JSON.stringify(name)};\n${SERVICE}`);
  }
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Free ports for xds, the ingress, the bridge, billing, the broker's relay and the metrics, so that a Paddock running here does not collide. */
async function sparePorts(): Promise<Record<string, string>> {
  const names = [
    'PADDOCK_XDS_PORT',
    'PADDOCK_INGRESS_PORT',
    'PADDOCK_BRIDGE_PORT',
    'PADDOCK_BILLING_PORT',
    'PADDOCK_BROKER_RELAY_PORT',
    'PADDOCK_SCHEDULER_METRICS_PORT',
    'PADDOCK_BROKER_METRICS_PORT',
  ];
  return Object.fromEntries(await Promise.all(names.map(async (name) => [name, String(await freePort())] as const)));
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await sleep(20);
}

/** Whether `pid` still runs: a zombie (killed, and not yet collected by its new parent) does not. */
async function stillRuns(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return stat !== undefined && !/^\d+ \(.*\) Z/.test(stat);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('up starts PostgreSQL, NATS and the services, restarts a crashed one, and stops them all on Ctrl-C', { timeout: 60_000 }, async (t) => {
  const home = join(dir, 'home');
  const [httpPort, dbPort, natsPort] = [await freePort(), await freePort(), await freePort()];
  const { ctx, out, interrupts } = testContext(
    { PATH: process.env['PATH'], PADDOCK_HOME: home, PADDOCK_PORT: String(httpPort), PADDOCK_DB_PORT: String(dbPort), PADDOCK_NATS_PORT: String(natsPort), ...(await sparePorts()) },
    { repoRoot: repo },
  );
  const running = runCli(ctx, ['up']);
  // Whatever fails below, stop what `up` started, so that nothing outlives the test.
  t.after(async () => {
    interrupts.emit('SIGINT');
    await running;
  });
  await until(() => out.stdout.includes('Paddock is up') || /^paddock: /m.test(out.stderr));
  assert.ok(out.stdout.includes(`Paddock is up: http://127.0.0.1:${httpPort}  (admin token: ${home}/admin-token)\n`), out.stdout + out.stderr);
  await until(() => out.stderr.split('\n').filter((line) => line.startsWith('[broker]') && line.includes('started')).length === 2);
  assert.match(out.stdout, /\[paddock\] broker exited \(exit status 3\); restarting it in 0\.5 s/);

  // database-url holds the superuser's URL (for tools); each service gets its own role's.
  const superuserPassword = (await readFile(join(home, 'postgres', 'superuser-password'), 'utf8')).trim();
  assert.equal(await readFile(join(home, 'database-url'), 'utf8'), `postgres://paddock:${superuserPassword}@127.0.0.1:${dbPort}/paddock`);
  const gatewayPassword = (await readFile(join(home, 'plane', 'db', 'gateway.password'), 'utf8')).trim();
  const databaseUrl = `postgres://paddock_gateway:${gatewayPassword}@127.0.0.1:${dbPort}/paddock`;
  assert.ok(await canConnect('127.0.0.1', dbPort));
  assert.ok(await canConnect('127.0.0.1', natsPort));
  const gatewayLog = (await readFile(join(home, 'logs', 'gateway.log'), 'utf8')).split('\n')[0] ?? '';
  const started = JSON.parse(gatewayLog) as { pid: number; databaseUrl: string; natsUrl: string; home: string };
  assert.deepEqual([started.databaseUrl, started.natsUrl, started.home], [databaseUrl, `nats://127.0.0.1:${natsPort}`, home]);
  assert.match(out.stderr, new RegExp(`^\\[gateway\\] +\\d\\d:\\d\\d:\\d\\d INFO  started databaseUrl=postgres`, 'm'));
  assert.match(await readFile(join(home, 'logs', 'postgres.log'), 'utf8'), /ready to accept connections/);

  interrupts.emit('SIGINT');
  assert.equal(await running, 0);
  assert.match(out.stdout, /\[paddock\] stopped\n$/);
  assert.equal(alive(started.pid), false);
  assert.equal(await canConnect('127.0.0.1', natsPort), false);
  assert.equal(await canConnect('127.0.0.1', dbPort), false);
  assert.equal(await canConnect('127.0.0.1', httpPort), false);
  assert.match(await readFile(join(home, 'logs', 'gateway.log'), 'utf8'), /"msg":"stopping"/);
});

test('up fails clearly, and leaves nothing running, when nats-server cannot be started', async () => {
  const home = join(dir, 'home-no-nats');
  const { ctx, out } = testContext(
    { PATH: join(dir, 'empty-path'), PADDOCK_HOME: home, PADDOCK_PORT: String(await freePort()), PADDOCK_NATS_PORT: String(await freePort()), DATABASE_URL: 'postgres://elsewhere/db', ...(await sparePorts()) },
    { repoRoot: repo },
  );
  assert.equal(await runCli(ctx, ['up']), 1);
  assert.match(out.stderr, /^paddock: cannot start nats-server: it is not on PATH: install it/m);
  assert.equal(await readFile(join(home, 'database-url'), 'utf8'), 'postgres://elsewhere/db');
});

test('up refuses to start when the API port is taken', async () => {
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  const port = (taken.address() as AddressInfo).port;
  try {
    const { ctx, out } = testContext({ PADDOCK_HOME: join(dir, 'home-taken'), PADDOCK_PORT: String(port) }, { repoRoot: repo });
    assert.equal(await runCli(ctx, ['up']), 1);
    assert.match(out.stderr, new RegExp(`paddock: something already listens on port ${port}`));
  } finally {
    await new Promise((resolve) => taken.close(resolve));
  }
});

test('up says which service is not built', async () => {
  const { ctx, out } = testContext({ PADDOCK_HOME: join(dir, 'home-unbuilt') }, { repoRoot: join(dir, 'nowhere') });
  assert.equal(await runCli(ctx, ['up']), 1);
  assert.match(out.stderr, /paddock: services\/scheduler is not built/);
});

test('up takes over from a PostgreSQL that an earlier, killed run left on its data and port', { timeout: 90_000 }, async (t) => {
  const home = join(dir, 'home-orphan');
  const [httpPort, dbPort, natsPort] = [await freePort(), await freePort(), await freePort()];
  // The earlier run: its `__postgres` is killed -9 together with `up`, and its server stays behind.
  const earlier = spawn(process.execPath, [fileURLToPath(new URL('../src/main.js', import.meta.url)), '__postgres', '--dir', join(home, 'postgres'), '--port', String(dbPort)], {
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  let announced = '';
  earlier.stdout.setEncoding('utf8').on('data', (chunk: string) => (announced += chunk));
  await until(() => announced.includes('"url"') || earlier.exitCode !== null);
  const lock = await readFile(join(home, 'postgres', 'data', 'postmaster.pid'), 'utf8');
  const orphan = Number(lock.split('\n')[0]);
  earlier.kill('SIGKILL');
  await new Promise((resolve) => earlier.once('exit', resolve));
  // Whatever fails below, the server left behind must not outlive the test.
  t.after(async () => {
    if (await stillRuns(orphan)) process.kill(orphan, 'SIGKILL');
  });
  assert.ok((await stillRuns(orphan)) && (await canConnect('127.0.0.1', dbPort)), 'the earlier server still runs');

  const { ctx, out, interrupts } = testContext(
    { PATH: process.env['PATH'], PADDOCK_HOME: home, PADDOCK_PORT: String(httpPort), PADDOCK_DB_PORT: String(dbPort), PADDOCK_NATS_PORT: String(natsPort), ...(await sparePorts()) },
    { repoRoot: repo },
  );
  const running = runCli(ctx, ['up']);
  t.after(async () => {
    interrupts.emit('SIGINT');
    await running;
  });
  await until(() => out.stdout.includes('Paddock is up') || /^paddock: /m.test(out.stderr));
  assert.ok(out.stdout.includes('Paddock is up'), out.stdout + out.stderr);
  assert.equal(await stillRuns(orphan), false);
  assert.match(await readFile(join(home, 'logs', 'postgres.log'), 'utf8'), new RegExp(`stopping PostgreSQL server pid ${orphan}, which its starter \\(pid ${earlier.pid}\\) left running`));
  assert.ok(await canConnect('127.0.0.1', dbPort));

  interrupts.emit('SIGINT');
  assert.equal(await running, 0);
  assert.equal(await canConnect('127.0.0.1', dbPort), false);
});
