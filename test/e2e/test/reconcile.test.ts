// Final means stopped: whenever an execution is stored as completed, failed or cancelled, its container is
// gone within seconds, whichever part of Paddock decided the end. Each race is provoked on a real Paddock
// (real engine, broker, NATS and PostgreSQL), then the test checks the final state and that no container
// of the execution is left.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startPaddock, type Execution, type RunningPaddock } from '@paddock/testkit';
import { containersOf, waitFor } from '../src/index.js';

type Supervised = Parameters<RunningPaddock['pidOf']>[0];

/** Bound on "within seconds": the reconciler runs every 2 s; a stop takes the cancel grace (1 s here) and a remove. */
const GONE_WITHIN_MS = 30_000;
const FINAL_WAIT_MS = 90_000;

function pidOf(paddock: RunningPaddock, name: Supervised): number {
  const pid = paddock.pidOf(name);
  assert.ok(pid, `${name} is running`);
  return pid;
}

/**
 * Freezes a process (SIGSTOP), as a machine that stops scheduling it or a hung event loop would: it holds
 * its connections and containers but answers nothing. Resumed by `resume()`, or at the latest by `after`.
 */
function freeze(paddock: RunningPaddock, name: Supervised): { resume(): void } {
  const pid = pidOf(paddock, name);
  process.kill(pid, 'SIGSTOP');
  let resumed = false;
  const resume = () => {
    if (resumed) return;
    resumed = true;
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      // Already gone: nothing to resume.
    }
  };
  frozen.add(resume);
  return { resume };
}
const frozen = new Set<() => void>();

async function submitShell(paddock: RunningPaddock, command: string): Promise<Execution> {
  const r = await paddock.admin.request('POST', '/api/v1/executions', { kind: 'shell', command });
  assert.equal(r.status, 201, `submitting "${command}" answered ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body as Execution;
}

async function assertNoContainerWithin(id: string, timeoutMs = GONE_WITHIN_MS): Promise<void> {
  await waitFor(`no container of ${id} to be left`, async () => (await containersOf(id)).length === 0, timeoutMs, 250);
}

/** The state must be final and must not change after the repair (an exit reported late is ignored). */
async function assertStaysFinal(paddock: RunningPaddock, id: string, expected: { state: string; error?: RegExp }): Promise<void> {
  const ex = await paddock.admin.get(id);
  assert.equal(ex.state, expected.state, `${id} is ${ex.state} (${ex.error})`);
  if (expected.error) assert.match(ex.error ?? '', expected.error, `reason of ${id}`);
}

after(() => {
  for (const resume of frozen) resume();
});

describe('a short broker-lost window', () => {
  let paddock: RunningPaddock;

  before(async () => {
    paddock = await startPaddock({ env: { PADDOCK_BROKER_LOST_AFTER_MS: '5000', PADDOCK_CANCEL_GRACE_MS: '1000' } });
  });

  after(async () => {
    for (const resume of frozen) resume();
    await paddock?.stop();
  });

  test('a job failed because its broker went silent has its container stopped when the broker comes back', async () => {
    const ex = await submitShell(paddock, 'echo started; sleep 300');
    await paddock.admin.waitState(ex.id, 'executing', FINAL_WAIT_MS);

    const broker = freeze(paddock, 'paddock-broker');
    const failed = await paddock.admin.waitFinal(ex.id, 30_000);
    assert.equal(failed.state, 'failed');
    assert.match(failed.error ?? '', /stopped answering for 5s/);
    assert.equal((await containersOf(ex.id)).length, 1, 'the container runs on while its broker is frozen: the race is provoked');

    broker.resume();
    await assertNoContainerWithin(ex.id);
    await assertStaysFinal(paddock, ex.id, { state: 'failed', error: /stopped answering/ });
  });

  test('cancels racing the claim of their executions all end cancelled with no container left', async () => {
    // Cancelled 0 ms to about 1.5 s after being accepted: some while queued, some while being claimed or
    // launched, some running.
    const submitted = await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        const ex = await submitShell(paddock, `echo race-${i}; sleep 300`);
        await sleep(i * 200);
        const r = await paddock.admin.request('POST', `/api/v1/executions/${ex.id}/cancel`);
        assert.equal(r.status, 202, `cancel of ${ex.id} answered ${r.status}: ${JSON.stringify(r.body)}`);
        return ex;
      }),
    );
    for (const ex of submitted) {
      const final = await paddock.admin.waitFinal(ex.id, FINAL_WAIT_MS);
      assert.equal(final.state, 'cancelled', `${ex.id} ended ${final.state} (${final.error})`);
    }
    for (const ex of submitted) await assertNoContainerWithin(ex.id);
    // Nothing started late behind a cancel: the executions stay cancelled and without a container.
    await sleep(5_000);
    for (const ex of submitted) {
      await assertStaysFinal(paddock, ex.id, { state: 'cancelled' });
      assert.deepEqual(await containersOf(ex.id), [], `no container of ${ex.id} appeared later`);
    }
  });
});

describe('a short launch retry window', () => {
  let paddock: RunningPaddock;

  before(async () => {
    paddock = await startPaddock({ env: { PADDOCK_LAUNCH_RETRY_FOR_MS: '1000', PADDOCK_CANCEL_GRACE_MS: '1000' } });
  });

  after(async () => {
    for (const resume of frozen) resume();
    await paddock?.stop();
  });

  test('a scheduler killed while a job is provisioning launches it again once its broker is heard', async () => {
    // A job placed and run first: the scheduler has heard the broker (under load its first heartbeat can
    // come after /healthz answers), so the next claim is made and only its Launch goes nowhere.
    const warm = await submitShell(paddock, 'true');
    assert.equal((await paddock.admin.waitFinal(warm.id, FINAL_WAIT_MS)).state, 'completed');
    // The broker is frozen: the claim's Launch goes nowhere, and the job stays provisioning.
    const broker = freeze(paddock, 'paddock-broker');
    const ex = await submitShell(paddock, 'echo relaunched');
    await paddock.admin.waitState(ex.id, 'provisioning', 30_000);

    const oldPid = pidOf(paddock, 'paddock-scheduler');
    process.kill(oldPid, 'SIGKILL');
    await waitFor('the scheduler to be restarted', async () => {
      const pid = paddock.pidOf('paddock-scheduler');
      return pid !== undefined && pid !== oldPid;
    }, FINAL_WAIT_MS);
    // Longer than the retry window: a relaunch that did not wait for the broker would have failed by now.
    await sleep(5_000);
    assert.equal((await paddock.admin.get(ex.id)).state, 'provisioning', 'still waiting for its broker');

    broker.resume();
    const final = await paddock.admin.waitFinal(ex.id, FINAL_WAIT_MS);
    assert.equal(final.state, 'completed', `${ex.id} ended ${final.state} (${final.error})`);
    assert.equal(await paddock.admin.logs(ex.id), 'relaunched\n', 'it ran once');
    await assertNoContainerWithin(ex.id);
  });

  test('a launch given up on has the container it started removed, and stays failed', async () => {
    // The broker is frozen in the middle of the launch (its container made, not yet started), so the
    // scheduler's Launch call runs into its deadline (60 s) long after the retry window, and the job fails.
    // Resumed, the broker finishes the launch it had begun: that container must not be left running.
    let provoked: { ex: Execution; broker: { resume(): void } } | undefined;
    for (let attempt = 0; attempt < 5 && !provoked; attempt++) {
      const ex = await submitShell(paddock, 'echo should-not-run-on; sleep 300');
      const state = await waitFor(`a container of ${ex.id}`, async () => (await containersOf(ex.id))[0]?.State, 30_000, 5);
      if (state === 'created') provoked = { ex, broker: freeze(paddock, 'paddock-broker') };
      else await paddock.admin.request('POST', `/api/v1/executions/${ex.id}/cancel`);
    }
    assert.ok(provoked, 'the broker was frozen between creating and starting a container');
    const { ex, broker } = provoked;

    const failed = await paddock.admin.waitFinal(ex.id, FINAL_WAIT_MS);
    assert.equal(failed.state, 'failed');
    assert.match(failed.error ?? '', /could not start/);
    assert.equal((await containersOf(ex.id)).length, 1, 'its container is still there while the broker is frozen');

    broker.resume();
    await assertNoContainerWithin(ex.id);
    await assertStaysFinal(paddock, ex.id, { state: 'failed', error: /could not start/ });
  });
});
