// The stand-in provider speaks each API's streaming form the way clients parse it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startScriptedProvider } from '../src/llmProvider.js';

async function events(url: string, headers: Record<string, string>, body: unknown): Promise<{ event: string | null; data: string }[]> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  return (await res.text())
    .split(/\r?\n\r?\n/)
    .filter((block) => block.trim() !== '')
    .map((block) => {
      const lines = block.split(/\r?\n/);
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

const USAGE = { inputTokens: 300, outputTokens: 40, cacheReadTokens: 2048, cacheWriteTokens: 500, reasoningTokens: 12 };

test('OpenAI chat: the usage chunk comes only when the stream asks for it, with cached tokens inside the prompt', async () => {
  const p = await startScriptedProvider({ openai: [{ text: 'a', usage: USAGE }, { text: 'b', usage: USAGE }] });
  try {
    const without = await events(`${p.url}/v1/chat/completions`, { authorization: 'Bearer k' }, { model: 'm', messages: [], stream: true });
    assert.ok(without.every((e) => e.data === '[DONE]' || JSON.parse(e.data).usage === undefined));
    assert.deepEqual(p.requests[0]?.usage, { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0 }, 'a stream without include_usage reports no tokens');
    const withUsage = await events(`${p.url}/v1/chat/completions`, { authorization: 'Bearer k' }, { model: 'm', messages: [], stream: true, stream_options: { include_usage: true } });
    const last = JSON.parse(withUsage.at(-2)!.data);
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage.prompt_tokens, 300 + 2048 + 500);
    assert.equal(last.usage.prompt_tokens_details.cached_tokens, 2048);
    assert.equal(last.usage.completion_tokens, 40);
    assert.deepEqual(p.requests[1]?.usage, { inputTokens: 800, outputTokens: 40, cacheReadTokens: 2048, cacheWriteTokens: 0 }, 'OpenAI bills cache writes as input');
    assert.equal(p.requests[1]?.api, 'openai');
    assert.equal(p.requests[1]?.key, 'k');
  } finally {
    await p.stop();
  }
});

test('OpenAI Responses: output items with function calls, in one answer and as the event stream', async () => {
  const step = { text: 'calling', toolCalls: [{ name: 'shell', args: { cmd: 'ls' } }], usage: USAGE };
  const p = await startScriptedProvider({ openai: [step, step] });
  try {
    const res = await fetch(`${p.url}/v1/responses`, { method: 'POST', headers: { authorization: 'Bearer k', 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-x', input: 'hi' }) });
    const answer = (await res.json()) as { object: string; model: string; output: { type: string; name?: string; arguments?: string; call_id?: string; content?: { text: string }[] }[]; usage: Record<string, unknown> };
    assert.equal(answer.object, 'response');
    assert.equal(answer.model, 'gpt-x');
    assert.deepEqual(answer.output.map((o) => o.type), ['message', 'function_call']);
    assert.equal(answer.output[0]?.content?.[0]?.text, 'calling');
    assert.equal(answer.output[1]?.name, 'shell');
    assert.deepEqual(JSON.parse(answer.output[1]?.arguments ?? ''), { cmd: 'ls' });
    assert.match(answer.output[1]?.call_id ?? '', /^call_/);
    assert.deepEqual(answer.usage, { input_tokens: 2848, input_tokens_details: { cached_tokens: 2048 }, output_tokens: 40, output_tokens_details: { reasoning_tokens: 12 }, total_tokens: 2888 });

    const got = await events(`${p.url}/v1/responses`, { authorization: 'Bearer k' }, { model: 'gpt-x', input: [{ role: 'user', content: 'hi' }], stream: true });
    const types = got.map((e) => e.event);
    assert.equal(types[0], 'response.created');
    assert.equal(types.at(-1), 'response.completed');
    assert.ok(types.includes('response.output_text.delta') && types.includes('response.function_call_arguments.done'));
    const data = got.map((e) => JSON.parse(e.data));
    assert.deepEqual(data.map((d) => d.sequence_number), data.map((_, i) => i));
    assert.ok(data.every((d, i) => d.type === types[i]));
    assert.deepEqual(data.at(-1).response.usage, answer.usage);
    assert.deepEqual(p.requests.map((r) => r.api), ['openai-responses', 'openai-responses']);
    assert.deepEqual(p.requests[1]?.usage, { inputTokens: 800, outputTokens: 40, cacheReadTokens: 2048, cacheWriteTokens: 0 });
  } finally {
    await p.stop();
  }
});

test('Anthropic: the cache figures apart from the input, in message_start, and the output count in message_delta', async () => {
  const p = await startScriptedProvider({ anthropic: [{ text: 'x', usage: USAGE }] });
  try {
    const got = await events(`${p.url}/v1/messages`, { 'x-api-key': 'k', 'anthropic-version': '2023-06-01' }, { model: 'm', max_tokens: 10, messages: [], stream: true });
    const start = JSON.parse(got[0]!.data).message.usage;
    assert.deepEqual([start.input_tokens, start.cache_creation_input_tokens, start.cache_read_input_tokens], [300, 500, 2048]);
    assert.equal(JSON.parse(got.at(-2)!.data).usage.output_tokens, 40);
    assert.deepEqual(p.requests[0]?.usage, { inputTokens: 300, outputTokens: 40, cacheReadTokens: 2048, cacheWriteTokens: 500 });
  } finally {
    await p.stop();
  }
});

test('Gemini: generateContent with functionCall parts; streamGenerateContent as SSE or a JSON array; the key in a header or ?key=', async () => {
  const step = { text: 'thinking done', toolCalls: [{ name: 'read_file', args: { path: 'a' } }], usage: USAGE };
  const p = await startScriptedProvider({ gemini: [step, step, step] });
  const body = JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] });
  try {
    const res = await fetch(`${p.url}/v1beta/models/gemini-2.5-pro:generateContent`, { method: 'POST', headers: { 'x-goog-api-key': 'gk', 'content-type': 'application/json' }, body });
    assert.equal(res.status, 200);
    const answer = (await res.json()) as { candidates: { content: { parts: Record<string, unknown>[] } }[]; usageMetadata: Record<string, number>; modelVersion: string };
    assert.deepEqual(answer.candidates[0]?.content.parts, [{ text: 'thinking done' }, { functionCall: { name: 'read_file', args: { path: 'a' } } }]);
    assert.equal(answer.modelVersion, 'gemini-2.5-pro');
    assert.equal(answer.usageMetadata['promptTokenCount'], 2848);
    assert.equal(answer.usageMetadata['cachedContentTokenCount'], 2048);
    assert.equal(answer.usageMetadata['candidatesTokenCount'], 28);
    assert.equal(answer.usageMetadata['thoughtsTokenCount'], 12);

    const sse = await events(`${p.url}/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse&key=qk`, {}, JSON.parse(body));
    const chunks = sse.map((e) => JSON.parse(e.data));
    assert.deepEqual(chunks.map((c) => c.candidates[0].content.parts[0]), [{ text: 'thinking ' }, { text: 'done' }, { functionCall: { name: 'read_file', args: { path: 'a' } } }], 'a chunk per word, then the call');
    assert.equal(chunks[0].usageMetadata.candidatesTokenCount, undefined, 'earlier chunks carry the prompt count only');
    assert.deepEqual(chunks.at(-1).usageMetadata, answer.usageMetadata);

    const array = await fetch(`${p.url}/v1beta/models/gemini-2.5-pro:streamGenerateContent`, { method: 'POST', headers: { 'x-goog-api-key': 'gk', 'content-type': 'application/json' }, body });
    assert.equal(array.headers.get('content-type'), 'application/json');
    const parsed = JSON.parse(await array.text()) as { usageMetadata: unknown }[];
    assert.equal(parsed.length, 3);
    assert.deepEqual(parsed.at(-1)?.usageMetadata, answer.usageMetadata);

    assert.deepEqual(p.requests.map((r) => [r.api, r.key]), [['gemini', 'gk'], ['gemini', 'qk'], ['gemini', 'gk']]);
    assert.deepEqual(p.requests[0]?.usage, { inputTokens: 800, outputTokens: 40, cacheReadTokens: 2048, cacheWriteTokens: 0 });
    const anonymous = await fetch(`${p.url}/v1beta/models/gemini-2.5-pro:generateContent`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    assert.equal(anonymous.status, 403);
    assert.equal(((await anonymous.json()) as { error: { status: string } }).error.status, 'PERMISSION_DENIED');
  } finally {
    await p.stop();
  }
});

test('free side calls (model list, token counts) are recorded without usage', async () => {
  const p = await startScriptedProvider({ model: 'gpt-fixed' });
  try {
    const models = await fetch(`${p.url}/v1/models`, { headers: { authorization: 'Bearer k' } });
    assert.equal(((await models.json()) as { data: { id: string }[] }).data[0]?.id, 'gpt-fixed');
    const count = await fetch(`${p.url}/v1/messages/count_tokens`, { method: 'POST', headers: { 'x-api-key': 'k', 'anthropic-version': '2023-06-01', 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', messages: [] }) });
    assert.ok(((await count.json()) as { input_tokens: number }).input_tokens > 0);
    assert.deepEqual(p.requests.map((r) => [r.api, r.method, r.usage]), [['openai', 'GET', undefined], ['anthropic', 'POST', undefined]]);
  } finally {
    await p.stop();
  }
});

test('a streamed step paced with pauseMs stops when its caller goes away, and says what it had reported', async () => {
  const p = await startScriptedProvider({ anthropic: [{ text: 'slow', pauseMs: 200 }] });
  try {
    const aborter = new AbortController();
    const res = await fetch(`${p.url}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': 'k', 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', max_tokens: 10, messages: [], stream: true }),
      signal: aborter.signal,
    });
    const reader = res.body!.getReader();
    assert.match(new TextDecoder().decode((await reader.read()).value), /message_start/);
    assert.equal(p.requests[0]?.answered, false);
    aborter.abort();
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(p.requests[0]?.answered, false);
    assert.deepEqual(p.requests[0]?.usage, { inputTokens: 100, outputTokens: 1, cacheReadTokens: 0, cacheWriteTokens: 0 }, 'what message_start had reported');
  } finally {
    await p.stop();
  }
});
