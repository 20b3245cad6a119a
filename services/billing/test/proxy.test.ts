// The metering proxy between a client and a provider: the stand-in speaks each provider's wire protocol over
// HTTP; the proxy listens on a unix socket as in production; runs, budgets and the usage sink are the
// module's ports, kept in memory here; the provider keys are sealed with a real LLM key.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { request, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { LlmCredentials, type LlmUsage } from '@paddock/proto';
import { LlmKey } from '@paddock/secrets';
import { createLogger } from '@paddock/telemetry';
import { startScriptedProvider, type ScriptedProvider, type Step } from '@paddock/testkit';
import { MAX_REQUEST_BYTES, ProxySocketError, startMeteringProxy, type RunAccount, type StartedMeteringProxy } from '../src/proxy/meteringProxy.js';
import { parseUpstreams } from '../src/proxy/upstreams.js';

const REAL = { openai: 'sk-real-openai', anthropic: 'sk-ant-real', gemini: 'AIza-real-gemini' } as const;
const USAGE: NonNullable<Step['usage']> = { inputTokens: 321, outputTokens: 45, cacheReadTokens: 1024, cacheWriteTokens: 200, reasoningTokens: 7 };
const log = createLogger('billing-proxy-test', process.env['PADDOCK_TEST_LOG'] ?? 'silent');
const llmKey = LlmKey.withKey(randomBytes(32));

/** The ports of the module, in memory. */
const runs = new Map<string, RunAccount>();
const blocked = new Map<string, { budgetId: string; name: string; message: string }>();
const published: LlmUsage[] = [];
const publishWaiters: (() => void)[] = [];

let dir: string;
let provider: ScriptedProvider;
let proxy: StartedMeteringProxy;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'paddock-llm-proxy-'));
  provider = await startScriptedProvider({ fallback: { text: 'fallback answer', usage: USAGE } });
  proxy = await startMeteringProxy({
    socketPath: join(dir, 'llm-proxy.sock'),
    upstreams: parseUpstreams('PADDOCK_LLM_UPSTREAMS', `openai=${provider.url},anthropic=${provider.url},gemini=${provider.url}`),
    llmKey,
    runs: { byKeyHash: async (hash) => runs.get(hash) },
    budgets: { blockingBudget: async (run) => blocked.get(run.projectId) },
    usage: {
      publish: async (usage) => {
        published.push(usage);
        publishWaiters.splice(0).forEach((wake) => wake());
      },
    },
    log,
  });
});

after(async () => {
  await proxy?.close();
  await provider?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** A live run with the given provider keys; returns its run key. */
function newRun(keys: Partial<Record<keyof typeof REAL, string>> = REAL, overrides: Partial<RunAccount> = {}): { key: string; run: RunAccount } {
  const key = `plk_${randomBytes(24).toString('base64url')}`;
  const executionId = randomUUID();
  const sealed = Object.keys(keys).length === 0 ? Buffer.alloc(0) : llmKey.seal(Buffer.from(LlmCredentials.encode({ keys }).finish()).toString('base64'), executionId);
  const run: RunAccount = { executionId, ownerId: 'u1', projectId: `p-${executionId}`, teamId: 't1', workflowId: '', ended: false, sealedCredentials: sealed, ...overrides };
  runs.set(createHash('sha256').update(key).digest('hex'), run);
  return { key, run };
}

/** The usage event of `executionId`, once the proxy has published it. */
async function usageOf(executionId: string, timeoutMs = 5_000): Promise<LlmUsage> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = published.find((u) => u.executionId === executionId);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no usage published for ${executionId}`);
    await new Promise<void>((resolve) => {
      publishWaiters.push(resolve);
      setTimeout(resolve, 100);
    });
  }
}

interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
}

/** One HTTP/1.1 request over the proxy's unix socket. */
function call(method: string, path: string, headers: Record<string, string>, body?: unknown): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const req = request({ socketPath: proxy.socketPath, method, path, headers: { ...(payload !== undefined ? { 'content-type': 'application/json' } : {}), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

function sseData(text: string): string[] {
  return text
    .split(/\r?\n\r?\n/)
    .map((block) => block.split(/\r?\n/).find((l) => l.startsWith('data: '))?.slice(6))
    .filter((d): d is string => d !== undefined);
}

/** The stand-in's requests after the first `from`. */
function sentSince(from: number) {
  return provider.requests.slice(from);
}

/** The real key, and never the run key, reached the provider. */
function assertKeysSwapped(from: number, runKey: string, realKey: string): void {
  const sent = sentSince(from);
  assert.ok(sent.length > 0, 'the call reached the provider');
  for (const r of sent) {
    assert.equal(r.key, realKey);
    assert.ok(!JSON.stringify(r.headers).includes(runKey), 'no header carries the run key');
    assert.ok(!r.url.includes(runKey), 'the URL does not carry the run key');
  }
}

/** The tokens the proxy published for a call, in StepUsage's terms: exactly what the stand-in reported. */
function assertTokens(usage: LlmUsage, from: number): void {
  const reported = sentSince(from).at(-1)?.usage;
  assert.ok(reported, 'the provider reported usage');
  assert.deepEqual(
    { inputTokens: usage.inputTokens, outputTokens: usage.outputTokens, cacheReadTokens: usage.cacheReadTokens, cacheWriteTokens: usage.cacheWriteTokens },
    reported,
  );
}

const scripted = (step: Partial<Step> = {}): Step => ({ text: 'hello from the provider', usage: USAGE, ...step });

test('OpenAI chat completions, not streamed: the real key goes up, the tokens come back as reported (cached tokens apart from the input)', async () => {
  const { key, run } = newRun();
  const from = provider.requests.length;
  const answer = await call('POST', '/openai/v1/chat/completions', { authorization: `Bearer ${key}`, 'openai-beta': 'assistants=v2' }, { model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(answer.status, 200, answer.text);
  assert.equal(JSON.parse(answer.text).choices[0].message.content, 'fallback answer');
  assertKeysSwapped(from, key, REAL.openai);
  assert.equal(sentSince(from)[0]?.headers['openai-beta'], 'assistants=v2', "the provider's own headers pass");
  const usage = await usageOf(run.executionId);
  assertTokens(usage, from);
  assert.deepEqual([usage.inputTokens, usage.cacheReadTokens, usage.cacheWriteTokens], [321 + 200, 1024, 0], 'OpenAI reports no cache writes: they are input');
  assert.equal(usage.provider, 'openai');
  assert.equal(usage.api, 'chat.completions');
  assert.equal(usage.model, 'gpt-4.1');
  assert.equal(usage.streamed, false);
  assert.equal(usage.status, 200);
  assert.match(usage.eventId, new RegExp(`^${run.executionId}\\.llm\\.[0-9a-f-]{36}$`));
});

test('OpenAI chat completions, streamed: the proxy asks for the usage chunk, counts it, and keeps it from a client that did not ask', async () => {
  const { key, run } = newRun();
  const from = provider.requests.length;
  const answer = await call('POST', '/openai/v1/chat/completions', { authorization: `Bearer ${key}` }, { model: 'gpt-4.1', stream: true, stream_options: { include_obfuscation: false }, messages: [] });
  assert.equal(answer.status, 200);
  assert.match(String(answer.headers['content-type']), /text\/event-stream/);
  assert.deepEqual(sentSince(from)[0]?.body.stream_options, { include_obfuscation: false, include_usage: true });
  const data = sseData(answer.text);
  assert.equal(data.at(-1), '[DONE]');
  assert.ok(data.slice(0, -1).every((d) => JSON.parse(d).choices.length > 0), 'no usage-only chunk reaches a client that did not ask for it');
  const usage = await usageOf(run.executionId);
  assertTokens(usage, from);
  assert.equal(usage.streamed, true);

  const asked = newRun();
  const from2 = provider.requests.length;
  const withUsage = await call('POST', '/openai/v1/chat/completions', { authorization: `Bearer ${asked.key}` }, { model: 'gpt-4.1', stream: true, stream_options: { include_usage: true }, messages: [] });
  const chunks = sseData(withUsage.text).slice(0, -1).map((d) => JSON.parse(d));
  assert.equal(chunks.at(-1).usage.completion_tokens, 45, 'a client that asked gets its usage chunk');
  assertTokens(await usageOf(asked.run.executionId), from2);
});

test('OpenAI Responses, streamed and not: response.completed usage, cached input tokens as cache reads', async () => {
  for (const stream of [false, true]) {
    const { key, run } = newRun();
    const from = provider.requests.length;
    const answer = await call('POST', '/openai/v1/responses', { authorization: `Bearer ${key}` }, { model: 'gpt-5', input: 'hi', stream });
    assert.equal(answer.status, 200, answer.text);
    assertKeysSwapped(from, key, REAL.openai);
    const usage = await usageOf(run.executionId);
    assertTokens(usage, from);
    assert.equal(usage.cacheReadTokens, 1024);
    assert.equal(usage.api, 'responses');
    assert.equal(usage.streamed, stream);
    assert.equal(usage.model, 'gpt-5');
  }
});

test('Anthropic messages, streamed and not: input, cache reads and cache writes apart, the output of message_delta', async () => {
  for (const stream of [false, true]) {
    const { key, run } = newRun();
    const from = provider.requests.length;
    const answer = await call(
      'POST',
      '/anthropic/v1/messages?beta=true',
      { 'x-api-key': key, 'anthropic-version': '2023-06-01', 'anthropic-beta': 'prompt-caching-2024-07-31' },
      { model: 'claude-sonnet-4-5', max_tokens: 100, messages: [], stream },
    );
    assert.equal(answer.status, 200, answer.text);
    assertKeysSwapped(from, key, REAL.anthropic);
    const sent = sentSince(from)[0]!;
    assert.equal(sent.url, '/v1/messages?beta=true');
    assert.equal(sent.headers['anthropic-beta'], 'prompt-caching-2024-07-31');
    const usage = await usageOf(run.executionId);
    assertTokens(usage, from);
    assert.deepEqual([usage.inputTokens, usage.outputTokens, usage.cacheReadTokens, usage.cacheWriteTokens], [321, 45, 1024, 200]);
    assert.equal(usage.api, 'messages');
    assert.equal(usage.streamed, stream);
  }
  // Anthropic's SDKs may send the key as a bearer token too.
  const { key, run } = newRun();
  const answer = await call('POST', '/anthropic/v1/messages', { authorization: `Bearer ${key}`, 'anthropic-version': '2023-06-01' }, { model: 'm', max_tokens: 1, messages: [] });
  assert.equal(answer.status, 200);
  assert.equal((await usageOf(run.executionId)).outputTokens, 45);
});

test('Gemini: generateContent, streamGenerateContent as SSE and as a JSON array, the key from x-goog-api-key or ?key= (never sent on)', async () => {
  const cases = [
    { path: '/gemini/v1beta/models/gemini-2.5-pro:generateContent', api: 'generateContent', streamed: false, viaQuery: false },
    { path: '/gemini/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse', api: 'streamGenerateContent', streamed: true, viaQuery: true },
    { path: '/gemini/v1beta/models/gemini-2.5-pro:streamGenerateContent', api: 'streamGenerateContent', streamed: true, viaQuery: false },
  ];
  for (const c of cases) {
    const { key, run } = newRun();
    const from = provider.requests.length;
    const path = c.viaQuery ? `${c.path}${c.path.includes('?') ? '&' : '?'}key=${encodeURIComponent(key)}` : c.path;
    const answer = await call('POST', path, c.viaQuery ? {} : { 'x-goog-api-key': key }, { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] });
    assert.equal(answer.status, 200, answer.text);
    assertKeysSwapped(from, key, REAL.gemini);
    const sent = sentSince(from)[0]!;
    assert.equal(sent.headers['x-goog-api-key'], REAL.gemini);
    assert.ok(!sent.url.includes('key='), `the key leaves the query: ${sent.url}`);
    if (c.path.includes('alt=sse')) assert.match(sent.url, /alt=sse/);
    const usage = await usageOf(run.executionId);
    assertTokens(usage, from);
    assert.deepEqual([usage.inputTokens, usage.outputTokens, usage.cacheReadTokens], [321 + 200, 45, 1024], 'thoughts are output, cached content is a cache read');
    assert.equal(usage.api, c.api);
    assert.equal(usage.streamed, c.streamed);
    assert.equal(usage.model, 'gemini-2.5-pro');
  }
});

test('model lists and token counts pass through with the real key and are not metered', async () => {
  const { key, run } = newRun();
  const from = provider.requests.length;
  const models = await call('GET', '/openai/v1/models', { authorization: `Bearer ${key}` });
  assert.equal(models.status, 200);
  assert.ok(JSON.parse(models.text).data.length > 0);
  const counted = await call('POST', '/anthropic/v1/messages/count_tokens', { 'x-api-key': key, 'anthropic-version': '2023-06-01' }, { model: 'm', messages: [] });
  assert.equal(counted.status, 200);
  assert.ok(JSON.parse(counted.text).input_tokens > 0);
  assert.deepEqual(sentSince(from).map((r) => r.key), [REAL.openai, REAL.anthropic]);
  assert.ok(!JSON.stringify(sentSince(from).map((r) => r.headers)).includes(key));
  // A metered call after them: the first usage of this run is that call's.
  await call('POST', '/anthropic/v1/messages', { 'x-api-key': key, 'anthropic-version': '2023-06-01' }, { model: 'm', max_tokens: 1, messages: [] });
  assert.equal((await usageOf(run.executionId)).api, 'messages');
  assert.equal(published.filter((u) => u.executionId === run.executionId).length, 1);
});

test('refusals come in each provider\'s own error shape, with a message that says what to do', async () => {
  const anthropicHeaders = (key: string) => ({ 'x-api-key': key, 'anthropic-version': '2023-06-01' });
  const noKey = await call('POST', '/openai/v1/chat/completions', {}, { model: 'm', messages: [] });
  assert.equal(noKey.status, 401);
  assert.equal(JSON.parse(noKey.text).error.code, 'invalid_api_key');
  assert.match(JSON.parse(noKey.text).error.message, /OPENAI_API_KEY/);

  const unknown = await call('POST', '/anthropic/v1/messages', anthropicHeaders('plk_unknown'), { model: 'm', max_tokens: 1, messages: [] });
  assert.equal(unknown.status, 401);
  assert.deepEqual(Object.keys(JSON.parse(unknown.text)), ['type', 'error']);
  assert.equal(JSON.parse(unknown.text).error.type, 'authentication_error');
  assert.match(JSON.parse(unknown.text).error.message, /not the key of a live Paddock run/);

  const ended = newRun(REAL, { ended: true });
  const gone = await call('POST', '/gemini/v1beta/models/g:generateContent', { 'x-goog-api-key': ended.key }, { contents: [] });
  assert.equal(gone.status, 401);
  assert.equal(JSON.parse(gone.text).error.status, 'UNAUTHENTICATED');
  assert.match(JSON.parse(gone.text).error.message, new RegExp(`execution ${ended.run.executionId} has ended`));

  const onlyAnthropic = newRun({ anthropic: REAL.anthropic });
  const noOpenAi = await call('POST', '/openai/v1/responses', { authorization: `Bearer ${onlyAnthropic.key}` }, { model: 'm', input: 'x' });
  assert.equal(noOpenAi.status, 401);
  assert.equal(JSON.parse(noOpenAi.text).error.message, 'this run has no OpenAI key: store OPENAI_API_KEY as a user or project secret');
  const none = newRun({});
  const noGemini = await call('POST', '/gemini/v1beta/models/g:generateContent', { 'x-goog-api-key': none.key }, { contents: [] });
  assert.match(JSON.parse(noGemini.text).error.message, /store GEMINI_API_KEY as a user or project secret/);

  const spent = newRun();
  blocked.set(spent.run.projectId, { budgetId: 'b-42', name: 'team-monthly', message: 'the hard budget "team-monthly" (b-42) of project p is spent: $10.00 of $10.00 this month' });
  const over = await call('POST', '/anthropic/v1/messages', anthropicHeaders(spent.key), { model: 'm', max_tokens: 1, messages: [] });
  assert.equal(over.status, 429);
  assert.equal(JSON.parse(over.text).error.type, 'rate_limit_error');
  assert.match(JSON.parse(over.text).error.message, /stopped this run's LLM calls: the hard budget "team-monthly" \(b-42\)/);
  const overOpenAi = await call('POST', '/openai/v1/chat/completions', { authorization: `Bearer ${spent.key}` }, { model: 'm', messages: [] });
  assert.equal(overOpenAi.status, 429);
  assert.equal(JSON.parse(overOpenAi.text).error.code, 'insufficient_quota');
  const overGemini = await call('POST', '/gemini/v1beta/models/g:generateContent', { 'x-goog-api-key': spent.key }, { contents: [] });
  assert.equal(JSON.parse(overGemini.text).error.status, 'RESOURCE_EXHAUSTED');
  // A free call is not stopped by a budget.
  assert.equal((await call('POST', '/anthropic/v1/messages/count_tokens', anthropicHeaders(spent.key), { model: 'm', messages: [] })).status, 200);

  const notServed = await call('POST', '/openai/v1/embeddings', { authorization: `Bearer ${newRun().key}` }, { model: 'm', input: 'x' });
  assert.equal(notServed.status, 404);
  assert.match(JSON.parse(notServed.text).error.message, /does not serve POST \/openai\/v1\/embeddings/);
  assert.equal((await call('GET', '/elsewhere', {})).status, 404);

  for (const r of [noKey, unknown, gone, noOpenAi, noGemini, over, overOpenAi, overGemini, notServed]) assert.equal(r.headers['content-type'], 'application/json');
  assert.deepEqual(
    published.filter((u) => [ended, onlyAnthropic, none, spent].some((r) => r.run.executionId === u.executionId)),
    [],
    'a refused call reaches no provider and is not metered',
  );
});

test('a body over the limit is refused with 413 before it reaches the provider', async () => {
  const { key } = newRun();
  const from = provider.requests.length;
  const big = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x'.repeat(MAX_REQUEST_BYTES) }] });
  const answer = await call('POST', '/openai/v1/chat/completions', { authorization: `Bearer ${key}` }, big);
  assert.equal(answer.status, 413);
  assert.equal(JSON.parse(answer.text).error.code, 'request_too_large');
  assert.equal(provider.requests.length, from);
});

test('a client that goes away mid-stream ends the provider call, and the tokens seen so far are published', async () => {
  const slow = await startScriptedProvider({ anthropic: [scripted({ pauseMs: 300, text: 'a slow answer' })] });
  const slowProxy = await startMeteringProxy({
    socketPath: join(dir, 'slow.sock'),
    upstreams: parseUpstreams('PADDOCK_LLM_UPSTREAMS', `anthropic=${slow.url}`),
    llmKey,
    runs: { byKeyHash: async (hash) => runs.get(hash) },
    budgets: { blockingBudget: async () => undefined },
    usage: { publish: async (u) => void published.push(u) },
    log,
  });
  try {
    const { key, run } = newRun();
    const answer = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request({ socketPath: slowProxy.socketPath, method: 'POST', path: '/anthropic/v1/messages', headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' } }, resolve);
      req.on('error', reject);
      req.end(JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 100, messages: [], stream: true }));
    });
    const first = await new Promise<string>((resolve) => answer.once('data', (c: Buffer) => resolve(c.toString('utf8'))));
    assert.match(first, /message_start/);
    answer.destroy();
    const usage = await usageOf(run.executionId);
    assert.deepEqual([usage.inputTokens, usage.cacheReadTokens, usage.cacheWriteTokens], [321, 1024, 200], 'message_start was seen');
    assert.equal(usage.outputTokens, 1, 'the final output count never came');
    assert.equal(usage.streamed, true);
    assert.equal(usage.model, 'claude-haiku-4-5');
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(slow.requests[0]?.answered, false, 'the provider call was ended before its answer was');
    assert.deepEqual(
      { inputTokens: usage.inputTokens, outputTokens: usage.outputTokens, cacheReadTokens: usage.cacheReadTokens, cacheWriteTokens: usage.cacheWriteTokens },
      slow.requests[0]?.usage,
      'exactly what the provider had reported before the cut',
    );
  } finally {
    await slowProxy.close();
    await slow.stop();
  }
});

test('close lets a call in flight finish, publishes its usage, then stops taking calls', async () => {
  const paced = await startScriptedProvider({ anthropic: [scripted({ pauseMs: 100 })] });
  const closing = await startMeteringProxy({
    socketPath: join(dir, 'closing.sock'),
    upstreams: parseUpstreams('PADDOCK_LLM_UPSTREAMS', `anthropic=${paced.url}`),
    llmKey,
    runs: { byKeyHash: async (hash) => runs.get(hash) },
    budgets: { blockingBudget: async () => undefined },
    usage: { publish: async (u) => void published.push(u) },
    log,
  });
  try {
    const { key, run } = newRun();
    const answer = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request({ socketPath: closing.socketPath, method: 'POST', path: '/anthropic/v1/messages', headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' } }, resolve);
      req.on('error', reject);
      req.end(JSON.stringify({ model: 'm', max_tokens: 100, messages: [], stream: true }));
    });
    let text = '';
    answer.on('data', (c: Buffer) => (text += c.toString('utf8')));
    const ended = new Promise((resolve) => answer.on('end', resolve));
    await closing.close();
    await ended;
    assert.match(text, /message_stop/, 'the call in flight ended whole');
    assert.equal(published.find((u) => u.executionId === run.executionId)?.outputTokens, 45, 'its usage was published before close() resolved');
    await assert.rejects(stat(closing.socketPath), /ENOENT/);
  } finally {
    await closing.close();
    await paced.stop();
  }
});

test('a provider that cannot be reached is a 502 in its shape, naming it', async () => {
  const down = await startMeteringProxy({
    socketPath: join(dir, 'down.sock'),
    upstreams: parseUpstreams('PADDOCK_LLM_UPSTREAMS', 'gemini=http://127.0.0.1:1'),
    llmKey,
    runs: { byKeyHash: async (hash) => runs.get(hash) },
    budgets: { blockingBudget: async () => undefined },
    usage: { publish: async (u) => void published.push(u) },
    log,
  });
  try {
    const { key, run } = newRun();
    const answer = await new Promise<Answer>((resolve, reject) => {
      const req = request({ socketPath: down.socketPath, method: 'POST', path: '/gemini/v1beta/models/g:generateContent', headers: { 'x-goog-api-key': key } }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString())).on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      });
      req.on('error', reject);
      req.end('{"contents":[]}');
    });
    assert.equal(answer.status, 502);
    assert.equal(JSON.parse(answer.text).error.status, 'UNAVAILABLE');
    assert.match(JSON.parse(answer.text).error.message, /cannot reach the Gemini API at http:\/\/127\.0\.0\.1:1/);
    assert.equal(published.some((u) => u.executionId === run.executionId), false);
  } finally {
    await down.close();
  }
});

test('a streamed answer passes as it comes: the client reads the first events before the provider has finished', async () => {
  const paced = await startScriptedProvider({ openai: [scripted({ pauseMs: 150 })] });
  const pacedProxy = await startMeteringProxy({
    socketPath: join(dir, 'paced.sock'),
    upstreams: parseUpstreams('PADDOCK_LLM_UPSTREAMS', `openai=${paced.url}`),
    llmKey,
    runs: { byKeyHash: async (hash) => runs.get(hash) },
    budgets: { blockingBudget: async () => undefined },
    usage: { publish: async (u) => void published.push(u) },
    log,
  });
  try {
    const { key, run } = newRun();
    const answer = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request({ socketPath: pacedProxy.socketPath, method: 'POST', path: '/openai/v1/responses', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' } }, resolve);
      req.on('error', reject);
      req.end(JSON.stringify({ model: 'gpt-5', input: 'x', stream: true }));
    });
    const first = await new Promise<string>((resolve) => answer.once('data', (c: Buffer) => resolve(c.toString('utf8'))));
    assert.match(first, /response\.created/);
    assert.equal(paced.requests[0]?.answered, false, 'the first event came through while the provider was still answering');
    let rest = '';
    for await (const chunk of answer) rest += (chunk as Buffer).toString('utf8');
    assert.match(rest, /response\.completed/);
    assert.equal(paced.requests[0]?.answered, true);
    assert.equal((await usageOf(run.executionId)).outputTokens, 45);
  } finally {
    await pacedProxy.close();
    await paced.stop();
  }
});

test('the socket: mode 0660, a stale one replaced, a live one or a file left alone, removed at close', async () => {
  const start = (socketPath: string) =>
    startMeteringProxy({ socketPath, upstreams: parseUpstreams('PADDOCK_LLM_UPSTREAMS', ''), llmKey, runs: { byKeyHash: async () => undefined }, budgets: { blockingBudget: async () => undefined }, usage: { publish: async () => {} }, log });
  assert.equal((await stat(proxy.socketPath)).mode & 0o777, 0o660);

  const livePath = join(dir, 'live.sock');
  const live = createNetServer();
  await new Promise<void>((resolve) => live.listen(livePath, resolve));
  try {
    await assert.rejects(start(livePath), (err: unknown) => err instanceof ProxySocketError && /served by another running process/.test(err.message));
  } finally {
    live.close();
  }

  // A process that dies without closing its server leaves the socket file behind.
  const stalePath = join(dir, 'stale.sock');
  spawnSync(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(stalePath)}, () => process.exit(0))`]);
  assert.ok((await stat(stalePath)).isSocket());
  const replaced = await start(stalePath);
  const answer = await new Promise<number>((resolve, reject) => {
    request({ socketPath: stalePath, path: '/openai/v1/models' }, (res) => resolve(res.resume().statusCode ?? 0)).on('error', reject).end();
  });
  assert.equal(answer, 401, 'the new proxy answers on it');
  await replaced.close();
  await replaced.close();
  await assert.rejects(stat(stalePath), /ENOENT/);

  const filePath = join(dir, 'not-a-socket');
  await writeFile(filePath, 'keep me');
  await assert.rejects(start(filePath), ProxySocketError);
  assert.ok((await stat(filePath)).isFile());
});
