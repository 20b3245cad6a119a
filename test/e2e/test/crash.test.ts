// Crashes, as `paddock up` lives through them: a service or nats-server killed with SIGKILL and started
// again by the supervisor. Nothing accepted may be lost, and every container must reach its true end.
import assert from 'node:assert/strict';
import { connect, createServer, type Server } from 'node:net';
import { after, before, test } from 'node:test';
import { startPaddock, type Execution, type RunningPaddock } from '@paddock/testkit';
import { containersOf, waitFor } from '../src/index.js';

type Supervised = Parameters<RunningPaddock['pidOf']>[0];

const FINAL_WAIT_MS = 90_000;

let paddock: RunningPaddock;

before(async () => {
  paddock = await startPaddock();
});

after(async () => {
  await paddock?.stop();
});

/** SIGKILL, as a crash or the OOM killer would; resolves once the process is gone, with its pid. */
async function crash(name: Supervised): Promise<number> {
  const pid = paddock.pidOf(name);
  assert.ok(pid, `${name} is running`);
  process.kill(pid, 'SIGKILL');
  await waitFor(`${name} (pid ${pid}) to die`, async () => paddock.pidOf(name) !== pid, 10_000, 10);
  return pid;
}

function restarted(name: Supervised, oldPid: number): Promise<number> {
  return waitFor(`${name} to be restarted`, async () => {
    const pid = paddock.pidOf(name);
    return pid !== undefined && pid !== oldPid ? pid : undefined;
  }, FINAL_WAIT_MS);
}

async function submitShell(command: string): Promise<Execution> {
  const r = await paddock.admin.request('POST', '/api/v1/executions', { kind: 'shell', command });
  assert.equal(r.status, 201, `submitting "${command}" answered ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body as Execution;
}

async function assertEnded(id: string, expected: { state: string; exitCode: number; output?: string | RegExp }): Promise<void> {
  const final = await paddock.admin.waitFinal(id, FINAL_WAIT_MS);
  assert.equal(final.state, expected.state, `${id} ended ${final.state} (${final.error})`);
  assert.equal(final.exitCode, expected.exitCode, `${id}: ${final.error}`);
  const logs = await paddock.admin.logs(id);
  if (typeof expected.output === 'string') assert.equal(logs, expected.output, `output of ${id}`);
  else if (expected.output) assert.match(logs, expected.output, `output of ${id}`);
  assert.deepEqual(await containersOf(id), [], `no container of ${id} is left`);
}

function natsAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.setTimeout(1000, () => (socket.destroy(), resolve(false)));
    socket.once('data', (d: Buffer) => (socket.destroy(), resolve(d.toString().startsWith('INFO '))));
    socket.once('error', () => resolve(false));
  });
}

/**
 * Keeps `port` taken, so that the supervisor's attempts to start nats-server again fail until
 * `release()`: without this the supervisor has it back within a second, faster than a publish times
 * out, and the outage this test is about would not happen. Connections are dropped at once, as a dead
 * server's would be refused.
 */
async function holdPort(port: number): Promise<{ release(): Promise<void> }> {
  const server = await waitFor(`port ${port} to be free`, () =>
    new Promise<Server | false>((resolve) => {
      const s = createServer((socket) => socket.destroy());
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => resolve(s));
    }), 5_000, 5);
  return { release: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

test('a broker killed while containers run adopts them on restart and reports their true ends', async () => {
  const a = await submitShell('sleep 4; echo finished-A');
  const b = await submitShell('echo b-started; sleep 2; exit 5');
  await paddock.admin.waitState(a.id, 'executing', FINAL_WAIT_MS);
  await paddock.admin.waitState(b.id, 'executing', FINAL_WAIT_MS);
  await waitFor("B's output", async () => (await paddock.admin.logs(b.id)).includes('b-started'), FINAL_WAIT_MS);

  const oldPid = await crash('paddock-broker');
  const c = await submitShell('echo submitted-while-the-broker-was-down');
  assert.equal(paddock.pidOf('paddock-broker'), undefined, 'C was submitted while no broker ran');
  await restarted('paddock-broker', oldPid);

  await assertEnded(a.id, { state: 'completed', exitCode: 0, output: /finished-A\n/ });
  await assertEnded(b.id, { state: 'failed', exitCode: 5, output: /^b-started\n/ });
  await assertEnded(c.id, { state: 'completed', exitCode: 0, output: 'submitted-while-the-broker-was-down\n' });
});

test('requests accepted while the scheduler is down all run once it is back', async () => {
  const oldPid = await crash('paddock-scheduler');
  const submitted = await Promise.all([0, 1, 2, 3, 4].map((i) => submitShell(`echo job-${i}`)));
  assert.equal(paddock.pidOf('paddock-scheduler'), undefined, 'the jobs were submitted while no scheduler ran');
  await restarted('paddock-scheduler', oldPid);

  for (const [i, { id }] of submitted.entries()) await assertEnded(id, { state: 'completed', exitCode: 0, output: `job-${i}\n` });
});

test('while nats-server is down requests are still accepted, and they and a running job end once it is back', async () => {
  const running = await submitShell('echo before-outage; sleep 5; echo after-outage');
  await paddock.admin.waitState(running.id, 'executing', FINAL_WAIT_MS);
  await waitFor('output before the outage', async () => (await paddock.admin.logs(running.id)).includes('before-outage'), FINAL_WAIT_MS);

  const natsPort = Number(new URL(paddock.natsUrl).port);
  process.kill(paddock.pidOf('nats-server') ?? assert.fail('nats-server is running'), 'SIGKILL');
  const outage = await holdPort(natsPort);
  let accepted: Execution[];
  try {
    const timeout = new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error('the gateway did not answer within 60 s while NATS was down')), 60_000).unref(),
    );
    accepted = await Promise.race([Promise.all([0, 1, 2].map((i) => submitShell(`echo during-outage-${i}`))), timeout]);
  } finally {
    await outage.release();
  }
  await waitFor('nats-server to be started again', () => natsAnswers(natsPort), FINAL_WAIT_MS, 200);

  await assertEnded(running.id, { state: 'completed', exitCode: 0, output: 'before-outage\nafter-outage\n' });
  for (const [i, { id }] of accepted.entries()) await assertEnded(id, { state: 'completed', exitCode: 0, output: `during-outage-${i}\n` });
});
