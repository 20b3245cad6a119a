import assert from 'node:assert/strict';
import { test } from 'node:test';
import { findRuntime, RUNTIME_NAMES, runtimeOfImage } from '../src/index.js';

test('every runtime has its own image, named after it', () => {
  assert.deepEqual(RUNTIME_NAMES, ['task', 'claude-code', 'gemini-cli', 'opencode', 'copilot', 'codex', 'aider', 'cursor']);
  for (const name of RUNTIME_NAMES) {
    const r = findRuntime(name);
    assert.equal(r?.image, `paddock/${name}:latest`);
    assert.match(r?.command ?? '', /\S/);
  }
});

test('an image reference maps back to its runtime only when it is one of ours', () => {
  assert.equal(runtimeOfImage('paddock/claude-code:latest')?.name, 'claude-code');
  assert.equal(runtimeOfImage('paddock/task')?.name, 'task');
  assert.equal(runtimeOfImage('paddock/task:v2'), undefined);
  assert.equal(runtimeOfImage('paddock/base:latest'), undefined);
  assert.equal(runtimeOfImage('example.com/paddock/task:latest'), undefined);
  assert.equal(findRuntime('nope'), undefined);
});
