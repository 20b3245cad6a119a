import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decide, type BrokerView, type ReconcilePolicy } from '../src/reconciler.js';
import type { JobView } from '../src/jobStore.js';
import type { JobState } from '../src/states.js';

const policy: ReconcilePolicy = { strayAfterSightings: 2, missingAfterSightings: 3, instanceLostAfterMs: 10_000, settleMs: 3_000, brokerLostAfterMs: 60_000 };

/** A broker that beat once a second up to `lastAtMs`, holding `held[i]` in its i-th heartbeat. */
function broker(brokerId: string, held: string[][], lastAtMs: number, silentForMs = 0): BrokerView {
  return {
    brokerId,
    silentForMs,
    sightings: held.map((ids, i) => ({ receivedAtMs: lastAtMs - (held.length - 1 - i) * 1_000, executionIds: new Set(ids) })),
  };
}

const job = (executionId: string, state: JobState, brokerId: string | null, changedAtMs: number, cancelRequested = false): JobView => ({
  executionId,
  state,
  brokerId,
  changedAtMs,
  cancelRequested,
});

test('a cancelled execution its broker still holds once the cancel has settled is asked to stop again', () => {
  const held = broker('b1', [['e1'], ['e1']], 10_000);
  assert.deepEqual(decide([held], [job('e1', 'executing', 'b1', 5_000, true)], 0, policy), [{ kind: 'stop-cancelled', brokerId: 'b1', executionId: 'e1' }]);
  // Recorded a moment ago: the cancel may still be on its way to the broker.
  assert.deepEqual(decide([held], [job('e1', 'executing', 'b1', 9_000, true)], 0, policy), []);
  // No longer held: the broker is ending it.
  assert.deepEqual(decide([broker('b1', [['e1'], []], 10_000)], [job('e1', 'executing', 'b1', 5_000, true)], 0, policy), []);
});

test('a final execution its broker still holds in two heartbeats after it ended is stopped there', () => {
  const repairs = decide([broker('b1', [['e1'], ['e1']], 10_000)], [job('e1', 'failed', 'b1', 5_000)], 0, policy);
  assert.deepEqual(repairs, [{ kind: 'stop-stray', brokerId: 'b1', executionId: 'e1', state: 'failed' }]);
});

test('one heartbeat is not enough, nor heartbeats that left before the execution ended', () => {
  assert.deepEqual(decide([broker('b1', [[], ['e1']], 10_000)], [job('e1', 'completed', 'b1', 5_000)], 0, policy), []);
  // Sent while the broker was still finishing it, received before the end was stored.
  assert.deepEqual(decide([broker('b1', [['e1'], ['e1']], 10_000)], [job('e1', 'completed', 'b1', 9_500)], 0, policy), []);
});

test('an execution the scheduler does not know, or placed on another broker, is stopped where it should not be', () => {
  const repairs = decide(
    [broker('b1', [['ghost', 'e2'], ['ghost', 'e2']], 10_000), broker('b2', [['e2'], ['e2']], 10_000)],
    [job('e2', 'executing', 'b2', 1_000)],
    0,
    policy,
  );
  assert.deepEqual(repairs, [
    { kind: 'stop-stray', brokerId: 'b1', executionId: 'ghost', state: 'unknown' },
    { kind: 'stop-stray', brokerId: 'b1', executionId: 'e2', state: 'executing' },
  ]);
});

test('what a broker holds and the scheduler has active there is left alone', () => {
  const brokers = [broker('b1', [['e1', 'e2'], ['e1', 'e2'], ['e1', 'e2']], 10_000)];
  assert.deepEqual(decide(brokers, [job('e1', 'provisioning', 'b1', 1_000), job('e2', 'executing', 'b1', 1_000)], 0, policy), []);
});

test('a provisioning execution missing from three settled heartbeats of its live broker is launched again', () => {
  const repairs = decide([broker('b1', [[], [], []], 10_000)], [job('e1', 'provisioning', 'b1', 1_000)], 0, policy);
  assert.deepEqual(repairs, [{ kind: 'relaunch', brokerId: 'b1', executionId: 'e1' }]);
});

test('an executing execution missing from its live broker for 10 s after it settled is reported lost', () => {
  const eleven = (ids: string[]) => Array.from({ length: 11 }, () => ids);
  const repairs = decide([broker('b1', eleven([]), 20_000)], [job('e1', 'executing', 'b1', 1_000)], 0, policy);
  assert.deepEqual(repairs, [{ kind: 'instance-lost', brokerId: 'b1', executionId: 'e1' }]);
  // Three heartbeats are enough to relaunch, not to give a running execution up.
  assert.deepEqual(decide([broker('b1', [[], [], []], 20_000)], [job('e1', 'executing', 'b1', 1_000)], 0, policy), []);
  // Held 9 s ago: the absence since is too short.
  assert.deepEqual(decide([broker('b1', [['e1'], ...Array.from({ length: 9 }, () => [])], 20_000)], [job('e1', 'executing', 'b1', 1_000)], 0, policy), []);
});

test('a launch that may still be on its way is not taken for missing', () => {
  // Changed 4 s before the last heartbeat: only the last one is past the 3 s to settle.
  assert.deepEqual(decide([broker('b1', [[], [], []], 10_000)], [job('e1', 'provisioning', 'b1', 6_000)], 0, policy), []);
  // Held in one of the last three.
  assert.deepEqual(decide([broker('b1', [[], ['e1'], []], 10_000)], [job('e1', 'provisioning', 'b1', 1_000)], 0, policy), []);
  // Fewer than three heartbeats heard.
  assert.deepEqual(decide([broker('b1', [[], []], 10_000)], [job('e1', 'provisioning', 'b1', 1_000)], 0, policy), []);
});

test('the executions of a broker silent beyond the limit are lost with it, those of a broker never heard too', () => {
  const repairs = decide(
    [broker('b1', [['e1']], 1_000, 60_001), broker('b2', [['e2']], 1_000, 59_000)],
    [job('e1', 'executing', 'b1', 500), job('e2', 'executing', 'b2', 500), job('e3', 'provisioning', 'b3', 500)],
    61_000,
    policy,
  );
  assert.deepEqual(repairs, [
    { kind: 'broker-lost', brokerId: 'b1', executionId: 'e1', silentForMs: 60_001 },
    { kind: 'broker-lost', brokerId: 'b3', executionId: 'e3', silentForMs: 61_000 },
  ]);
  // A broker never heard from, while this process has not been connected for the limit yet: it may yet be heard.
  assert.deepEqual(decide([], [job('e3', 'provisioning', 'b3', 500)], 30_000, policy), []);
});

test('queued executions are no business of the brokers', () => {
  assert.deepEqual(decide([broker('b1', [[], [], []], 10_000)], [job('e1', 'queued', null, 1_000)], 120_000, policy), []);
});
