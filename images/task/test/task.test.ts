// The task agent as a real process against a local provider that speaks each wire protocol.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startScriptedProvider, type Step } from '@paddock/testkit';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));

function runTask(env: Record<string, string>, cwd: string): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN], { cwd, env: { PATH: process.env['PATH'] ?? '', ...env } }, (err, stdout) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout });
    });
  });
}

const SCRIPT: Step[] = [
  { text: 'I will compute it with Python.', toolCalls: [{ name: 'run_python', args: { code: 'print(sum(i * i for i in range(1, 11)))' } }] },
  { toolCalls: [{ name: 'write_file', args: { path: 'out/answer.txt', content: '385\n' } }, { name: 'read_file', args: { path: '../etc/passwd' } }] },
  { toolCalls: [{ name: 'finish', args: { summary: 'The sum of squares of 1..10 is 385.' } }] },
];

for (const api of ['openai', 'anthropic'] as const) {
  test(`the task agent plans, runs Python, writes files and summarises over the ${api} protocol`, async () => {
    const provider = await startScriptedProvider({ [api]: SCRIPT });
    const workspace = await mkdtemp(join(tmpdir(), 'paddock-task-'));
    try {
      const env: Record<string, string> = api === 'openai'
        ? { OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: `${provider.url}/v1` }
        : { ANTHROPIC_API_KEY: 'sk-ant-test', ANTHROPIC_BASE_URL: provider.url };
      const { code, stdout } = await runTask({ ...env, PROMPT: 'Compute the sum of the squares of 1 to 10 and save it.' }, workspace);
      assert.equal(code, 0, stdout);
      assert.match(stdout, /^385$/m, 'the Python output is in the log');
      assert.match(stdout, /outside the workspace/);
      assert.equal(await readFile(join(workspace, 'out/answer.txt'), 'utf8'), '385\n');
      assert.match(await readFile(join(workspace, 'RESULT.md'), 'utf8'), /sum of squares of 1\.\.10 is 385/);

      assert.equal(provider.requests.length, 3);
      const [first, second, third] = provider.requests;
      assert.deepEqual(first?.body.tools.map((t: { name?: string; function?: { name: string } }) => t.name ?? t.function?.name), ['run_shell', 'run_python', 'write_file', 'read_file', 'finish']);
      if (api === 'openai') {
        assert.equal(first?.headers.authorization, 'Bearer sk-test');
        const toolMessage = second?.body.messages.at(-1);
        assert.equal(toolMessage.role, 'tool');
        assert.equal(toolMessage.tool_call_id, second?.body.messages.at(-2).tool_calls[0].id);
        assert.match(toolMessage.content, /exit code 0\nstdout:\n385\n/);
        assert.equal(third?.body.messages.filter((m: { role: string }) => m.role === 'tool').length, 3);
      } else {
        assert.equal(first?.headers['x-api-key'], 'sk-ant-test');
        assert.equal(first?.headers['anthropic-version'], '2023-06-01');
        const results = second?.body.messages.at(-1);
        assert.equal(results.role, 'user');
        assert.equal(results.content[0].type, 'tool_result');
        assert.match(results.content[0].content, /385/);
        assert.equal(third?.body.messages.at(-1).content[1].is_error, true);
      }
    } finally {
      await provider.stop();
      await rm(workspace, { recursive: true, force: true });
    }
  });
}

test('the task agent stops at its step limit and says so', async () => {
  const loop: Step = { toolCalls: [{ name: 'run_shell', args: { command: 'echo again' } }] };
  const provider = await startScriptedProvider({ openai: [loop, loop, loop] });
  const workspace = await mkdtemp(join(tmpdir(), 'paddock-task-'));
  try {
    const { code, stdout } = await runTask({ OPENAI_API_KEY: 'k', OPENAI_BASE_URL: `${provider.url}/v1`, PROMPT: 'loop', PADDOCK_TASK_MAX_STEPS: '2' }, workspace);
    assert.equal(code, 2);
    assert.match(stdout, /step limit \(2\)/);
    assert.equal(provider.requests.length, 2);
    assert.match(await readFile(join(workspace, 'RESULT.md'), 'utf8'), /Stopped after 2 steps/);
  } finally {
    await provider.stop();
    await rm(workspace, { recursive: true, force: true });
  }
});

test('a command that runs too long is killed and the model is told', async () => {
  const provider = await startScriptedProvider({
    anthropic: [{ toolCalls: [{ name: 'run_shell', args: { command: 'sleep 30', timeout_s: 1 } }] }, { text: 'It timed out.' }],
  });
  const workspace = await mkdtemp(join(tmpdir(), 'paddock-task-'));
  try {
    const { code } = await runTask({ ANTHROPIC_API_KEY: 'k', ANTHROPIC_BASE_URL: provider.url, PROMPT: 'sleep' }, workspace);
    assert.equal(code, 0);
    assert.match(provider.requests[1]?.body.messages.at(-1).content[0].content, /killed after the 1s time limit/);
  } finally {
    await provider.stop();
    await rm(workspace, { recursive: true, force: true });
  }
});

test('without a provider, or when the provider refuses, the agent fails with a clear message', async () => {
  const workspace = await mkdtemp(join(tmpdir(), 'paddock-task-'));
  try {
    const none = await runTask({ PROMPT: 'x' }, workspace);
    assert.equal(none.code, 1);
    assert.match(none.stdout, /no LLM provider: set OPENAI_API_KEY/);
    const provider = await startScriptedProvider({});
    try {
      const refused = await runTask({ ANTHROPIC_BASE_URL: provider.url, PROMPT: 'x' }, workspace);
      assert.equal(refused.code, 1);
      assert.match(refused.stdout, /answered 401: .*x-api-key header is required/);
    } finally {
      await provider.stop();
    }
  } finally {
    await rm(workspace, { recursive: true, force: true });
  }
});
