import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExitCause, type InstanceExited } from '@paddock/proto';
import { finalOf } from '../src/index.js';

const exit = (cause: ExitCause, more: Partial<InstanceExited> = {}): InstanceExited => ({
  executionId: 'e1',
  brokerId: 'b1',
  cause,
  detail: '',
  startedAtMs: 1,
  finishedAtMs: 2,
  artifactsSaved: true,
  ...more,
});

test('a job that exits with 0 completed, with no reason', () => {
  assert.deepEqual(finalOf(exit(ExitCause.EXIT_CAUSE_EXITED, { exitCode: 0 })), { state: 'completed', reason: '' });
});

test('a job that exits with another code failed, and the reason gives the code', () => {
  assert.deepEqual(finalOf(exit(ExitCause.EXIT_CAUSE_EXITED, { exitCode: 2 })), { state: 'failed', reason: 'the job exited with code 2' });
  assert.deepEqual(finalOf(exit(ExitCause.EXIT_CAUSE_EXITED, { exitCode: -1 })), { state: 'failed', reason: 'the job exited with code -1' });
  assert.deepEqual(finalOf(exit(ExitCause.EXIT_CAUSE_EXITED)), { state: 'failed', reason: 'the job exited with code unknown' });
});

test('a cancelled instance is cancelled, whatever its exit code', () => {
  assert.deepEqual(finalOf(exit(ExitCause.EXIT_CAUSE_CANCELLED, { exitCode: 137, detail: 'cancelled' })), { state: 'cancelled', reason: 'cancelled' });
  assert.deepEqual(finalOf(exit(ExitCause.EXIT_CAUSE_CANCELLED)), { state: 'cancelled', reason: 'cancelled' });
});

test("every other end fails the execution, with the broker's explanation as the reason", () => {
  const cases: [ExitCause, string][] = [
    [ExitCause.EXIT_CAUSE_TIMED_OUT, 'timed out: the job ran longer than its 30s limit'],
    [ExitCause.EXIT_CAUSE_OOM_KILLED, 'out of memory: the job used more than its 256 MiB limit and was killed'],
    [ExitCause.EXIT_CAUSE_PROVISIONING_FAILED, 'could not pull image nope:latest'],
    [ExitCause.EXIT_CAUSE_LOST, 'the container disappeared while its broker was down'],
  ];
  for (const [cause, detail] of cases) {
    assert.deepEqual(finalOf(exit(cause, { exitCode: 137, detail })), { state: 'failed', reason: detail }, ExitCause[cause]);
  }
});

test('an end without an explanation, or of a cause this version does not know, still fails with a sentence', () => {
  for (const cause of [ExitCause.EXIT_CAUSE_LOST, ExitCause.EXIT_CAUSE_UNSPECIFIED, ExitCause.UNRECOGNIZED, 42 as ExitCause]) {
    assert.deepEqual(finalOf(exit(cause)), { state: 'failed', reason: 'the instance ended unexpectedly' }, String(cause));
  }
});
