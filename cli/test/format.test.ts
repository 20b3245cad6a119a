import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeExecution } from '../src/commands/status.js';
import { executionTable } from '../src/commands/ls.js';
import type { Execution } from '../src/execution.js';
import { formatAge, formatBytes, formatDuration, formatTable, truncate } from '../src/format.js';

const NOW = new Date('2024-05-01T12:00:00Z');

const EXECUTION: Execution = {
  id: 'ex_1',
  owner: 'admin',
  kind: 'shell',
  state: 'completed',
  exitCode: 0,
  error: null,
  image: 'paddock/base:latest',
  command: 'echo hi',
  createdAt: '2024-05-01T11:55:00Z',
  startedAt: '2024-05-01T11:55:01Z',
  finishedAt: '2024-05-01T11:55:03.500Z',
  timeoutS: 600,
  resources: { cpus: 1, memoryMb: 512 },
  network: 'none',
};

test('tables pad every column but the last', () => {
  assert.equal(formatTable(['A', 'LONGER'], [['xyz', 'q'], ['', 'last column']]), 'A    LONGER\nxyz  q\n     last column');
});

test('ages, durations, sizes, truncation', () => {
  assert.equal(formatAge('2024-05-01T11:59:15Z', NOW), '45s ago');
  assert.equal(formatAge('2024-05-01T11:57:00Z', NOW), '3m ago');
  assert.equal(formatAge('2024-05-01T07:00:00Z', NOW), '5h ago');
  assert.equal(formatAge('2024-04-28T12:00:00Z', NOW), '3d ago');
  assert.equal(formatDuration(850), '850 ms');
  assert.equal(formatDuration(12_340), '12.3 s');
  assert.equal(formatDuration(245_000), '4m 05s');
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(1_500), '1.5 KB');
  assert.equal(formatBytes(230_400_000), '230.4 MB');
  assert.equal(truncate('a  b\nc', 10), 'a b c');
  assert.equal(truncate('abcdefghij', 5), 'abcd…');
});

test('ls shows one row per execution', () => {
  const python: Execution = { ...EXECUTION, id: 'ex_2', kind: 'python', command: null, state: 'executing', exitCode: null };
  assert.equal(
    executionTable([EXECUTION, python], NOW),
    ['ID    STATE      KIND    EXIT  CREATED  COMMAND', 'ex_1  completed  shell   0     5m ago   echo hi', 'ex_2  executing  python  -     5m ago   (python)'].join('\n'),
  );
});

test('status shows the fields by name', () => {
  const text = describeExecution({ ...EXECUTION, state: 'failed', exitCode: null, error: 'timed out after 600 s' }, NOW);
  assert.match(text, /^ID: +ex_1$/m);
  assert.match(text, /^State: +failed$/m);
  assert.match(text, /^Exit code: +-$/m);
  assert.match(text, /^Ran for: +2\.5 s$/m);
  assert.match(text, /^Resources: +1 CPU, 512 MB$/m);
  assert.match(text, /^Error: +timed out after 600 s$/m);
});

test('status shows what an execution cost so far, by model and compute, or why it is unknown', () => {
  const running = describeExecution({ ...EXECUTION, state: 'executing', finishedAt: null }, NOW, {
    costMicros: 1_234,
    currency: 'USD',
    ended: false,
    models: [
      { model: 'gpt-4o', calls: 3, inputTokens: 300, outputTokens: 60, unpriced: false },
      { model: 'my-local-model', calls: 1, inputTokens: 10, outputTokens: 2, unpriced: true },
    ],
    compute: { cpuMs: 1_500, wallMs: 12_000 },
  });
  assert.match(running, /^Cost: +\$0\.0012 so far$/m);
  assert.match(running, /^ +gpt-4o: 3 call\(s\), 300 in, 60 out$/m);
  assert.match(running, /^ +my-local-model: 1 call\(s\), 10 in, 2 out \(no price: counted in tokens only\)$/m);
  assert.match(running, /^ +compute: 1\.5 CPU-s over 12\.0 s$/m);
  const away = describeExecution(EXECUTION, NOW, new Error('billing is not reachable right now'));
  assert.match(away, /^Cost: +unknown: billing is not reachable right now$/m);
});
