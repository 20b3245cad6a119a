// The stand-in provider speaks each API's streaming form the way clients parse it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startScriptedProvider } from '../src/llmProvider.js';

async function events(url: string, headers: Record<string, string>, body: unknown): Promise<{ event: string | null; data: string }[]> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  return (await res.text())
    .split('\n\n')
    .filter((block) => block.trim() !== '')
    .map((block) => {
      const lines = block.split('\n');
      const event = lines.find((l) => l.startsWith('event: '))?.slice(7) ?? null;
      return { event, data: lines.find((l) => l.startsWith('data: '))!.slice(6) };
    });
}

test('OpenAI: chat.completion.chunk events with the text and the tool calls, then [DONE]', async () => {
  const p = await startScriptedProvider({ openai: [{ text: 'hi', toolCalls: [{ name: 'run_shell', args: { command: 'ls' } }] }] });
  try {
    const got = await events(`${p.url}/v1/chat/completions`, { authorization: 'Bearer k' }, { model: 'm', messages: [], stream: true });
    assert.equal(got.at(-1)?.data, '[DONE]');
    const chunks = got.slice(0, -1).map((e) => JSON.parse(e.data));
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk'));
    assert.equal(chunks[0].choices[0].delta.content, 'hi');
    assert.equal(chunks[1].choices[0].delta.tool_calls[0].function.name, 'run_shell');
    assert.equal(chunks.at(-1).choices[0].finish_reason, 'tool_calls');
  } finally {
    await p.stop();
  }
});

test('Anthropic: message_start, a block at a time, message_delta with the stop reason, message_stop', async () => {
  const p = await startScriptedProvider({ fallback: { text: 'hello', toolCalls: [{ name: 'finish', args: { summary: 's' } }] } });
  try {
    const got = await events(`${p.url}/v1/messages?beta=true`, { 'x-api-key': 'k', 'anthropic-version': '2023-06-01' }, { model: 'm', max_tokens: 10, messages: [], stream: true });
    assert.deepEqual(got.map((e) => e.event), [
      'message_start',
      'content_block_start', 'content_block_delta', 'content_block_stop',
      'content_block_start', 'content_block_delta', 'content_block_stop',
      'message_delta', 'message_stop',
    ]);
    const data = got.map((e) => JSON.parse(e.data));
    assert.equal(data[2].delta.text, 'hello');
    assert.deepEqual(JSON.parse(data[5].delta.partial_json), { summary: 's' });
    assert.equal(data[7].delta.stop_reason, 'tool_use');
  } finally {
    await p.stop();
  }
});

test('a body that is not a JSON object is refused with 400, as the providers do, and the provider keeps serving', async () => {
  const p = await startScriptedProvider({ fallback: { text: 'still here' } });
  try {
    for (const body of ['null', '[1]', '"text"', '{not json']) {
      const res = await fetch(`${p.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: 'Bearer k', 'content-type': 'application/json' }, body });
      assert.equal(res.status, 400, body);
      assert.equal(((await res.json()) as { error: { type: string } }).error.type, 'invalid_request_error');
    }
    const res = await fetch(`${p.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: 'Bearer k', 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', messages: [] }),
    });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { choices: { message: { content: string } }[] }).choices[0]?.message.content, 'still here');
    assert.equal(p.requests.length, 1, 'only the valid request is recorded');
  } finally {
    await p.stop();
  }
});
