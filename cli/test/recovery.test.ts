// `paddock up` brings back what dies: PostgreSQL (its server, or the process that runs it) and nats-server,
// each killed -9 under a real Paddock, are back within seconds, and Paddock runs executions again.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startPaddock, type RunningPaddock } from '@paddock/testkit';

/** What "within a few seconds" allows: PostgreSQL's crash recovery, the restart delay, the services reconnecting. */
const BACK_WITHIN_MS = 20_000;

let paddock: RunningPaddock;

before(async () => {
  paddock = await startPaddock();
});

after(async () => {
  await paddock?.stop();
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The pid of the PostgreSQL server (the postmaster) now, from its lock file. */
async function postmasterPid(): Promise<number | undefined> {
  const lock = await readFile(join(paddock.home, 'postgres', 'data', 'postmaster.pid'), 'utf8').catch(() => undefined);
  const pid = Number(lock?.split('\n')[0]);
  return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : undefined;
}

async function parentOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

async function healthy(): Promise<boolean> {
  return fetch(`${paddock.url}/healthz`, { signal: AbortSignal.timeout(2_000) }).then(
    async (r) => (await r.body?.cancel(), r.status === 200),
    () => false,
  );
}

/** Waits until `condition` holds, and says how long that took. */
async function backWithin(what: string, condition: () => Promise<boolean>): Promise<number> {
  const startedAt = Date.now();
  while (!(await condition())) {
    if (Date.now() - startedAt > BACK_WITHIN_MS) assert.fail(`${what} not within ${BACK_WITHIN_MS} ms; paddock up said:\n${paddock.output().slice(-4_000)}`);
    await sleep(100);
  }
  return Date.now() - startedAt;
}

/** The proof that Paddock works again: a shell execution runs to the end with its output. */
async function runsAShellExecution(tag: string): Promise<void> {
  const submitted = await paddock.admin.submit({ kind: 'shell', command: `echo ${tag}` });
  const final = await paddock.admin.waitFinal(submitted.id, 90_000);
  assert.equal(final.state, 'completed', JSON.stringify(final));
  assert.equal(await paddock.admin.logs(submitted.id), `${tag}\n`);
}

test('PostgreSQL server killed -9: paddock up starts it again on the same data, and Paddock works again', { timeout: 180_000 }, async (t) => {
  await runsAShellExecution('before');
  const killed = await postmasterPid();
  assert.ok(killed !== undefined, 'the PostgreSQL server runs');
  process.kill(killed, 'SIGKILL');

  const serverMs = await backWithin('a new PostgreSQL server', async () => ((await postmasterPid()) ?? killed) !== killed);
  const healthyMs = await backWithin('/healthz answering 200', healthy);
  t.diagnostic(`PostgreSQL back after ${serverMs} ms, /healthz 200 ${healthyMs} ms later`);
  await backWithin('paddock up saying PostgreSQL is back', async () => /PostgreSQL is back on port \d+/.test(paddock.output()));
  assert.match(paddock.output(), /PostgreSQL exited \(exit status 1\); restarting it/);
  await runsAShellExecution('after-server-kill');
});

test('the process running PostgreSQL killed -9: the server it leaves is stopped and started again', { timeout: 180_000 }, async (t) => {
  const server = await postmasterPid();
  assert.ok(server !== undefined, 'the PostgreSQL server runs');
  const wrapper = await parentOf(server);
  assert.match(await readFile(`/proc/${wrapper}/cmdline`, 'utf8'), /__postgres/);
  process.kill(wrapper, 'SIGKILL');

  const serverMs = await backWithin('the orphaned server gone and a new one running', async () => !alive(server) && (await postmasterPid()) !== undefined);
  const replacement = (await postmasterPid()) as number;
  assert.notEqual(await parentOf(replacement), wrapper);
  const healthyMs = await backWithin('/healthz answering 200', healthy);
  t.diagnostic(`PostgreSQL back after ${serverMs} ms, /healthz 200 ${healthyMs} ms later`);
  await runsAShellExecution('after-wrapper-kill');
});

test('nats-server killed -9: paddock up starts it again with its JetStream store, and work sent meanwhile is done', { timeout: 180_000 }, async (t) => {
  const streamsDir = join(paddock.home, 'nats', 'jetstream', '$G', 'streams');
  const streams = (await readdir(streamsDir)).sort();
  assert.ok(streams.length > 0, 'JetStream has streams on disk');
  const killed = paddock.pidOf('nats-server');
  assert.ok(killed !== undefined, 'nats-server runs');
  process.kill(killed, 'SIGKILL');
  // Sent while NATS may still be down: the gateway keeps it until the bus is back.
  const sentMeanwhile = await paddock.admin.submit({ kind: 'shell', command: 'echo meanwhile' });

  const serverMs = await backWithin('a new nats-server', async () => (paddock.pidOf('nats-server') ?? killed) !== killed);
  const healthyMs = await backWithin('/healthz answering 200', healthy);
  t.diagnostic(`nats-server back after ${serverMs} ms, /healthz 200 ${healthyMs} ms later`);
  assert.deepEqual((await readdir(streamsDir)).sort(), streams);
  assert.match(paddock.output(), /nats-server exited \(signal SIGKILL\); restarting it/);
  const final = await paddock.admin.waitFinal(sentMeanwhile.id, 90_000);
  assert.equal(final.state, 'completed', JSON.stringify(final));
  assert.equal(await paddock.admin.logs(sentMeanwhile.id), 'meanwhile\n');
  await runsAShellExecution('after-nats-kill');
});
