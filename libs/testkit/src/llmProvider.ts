import { randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A local LLM provider for tests, since real ones cannot be reached: it speaks the OpenAI Chat Completions
 * and Responses APIs, the Anthropic Messages API and the Gemini API (paths, auth headers, request and
 * response bodies, each one's streaming form and usage fields) and answers each request with the next step
 * of a script. Listens on loopback only: agents in containers reach it through billing's metering proxy.
 */
export interface ScriptedProvider {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly port: number;
  readonly requests: readonly RecordedRequest[];
  stop(): Promise<void>;
}

/** Which API a request spoke: OpenAI's Chat Completions ('openai') or Responses, Anthropic's Messages, Gemini's. */
export type ProviderApi = 'openai' | 'openai-responses' | 'anthropic' | 'gemini';

export interface RecordedRequest {
  readonly api: ProviderApi;
  readonly method: string;
  /** The path and query as sent. */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  /** The credential where this API reads it (bearer token, x-api-key, x-goog-api-key or ?key=). */
  readonly key: string | undefined;
  /** The JSON as sent (undefined for a GET); `any` so that a test reads whatever field it asserts on. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
  readonly body: any;
  /**
   * The tokens the answer reported, as the provider bills them: for a stream, what its events had reported
   * by the last one written (a stream cut short reports less; a chat stream not asked for its usage, none:
   * zeros). Undefined for calls that generate nothing (model lists, token counts).
   */
  readonly usage: ReportedUsage | undefined;
  /** True once the whole answer was written; false while it streams, or when the caller went away first. */
  readonly answered: boolean;
}

/**
 * A step's token figures, in one form for every provider: `inputTokens` are the prompt tokens read neither
 * from nor into a cache. Each API reports them its own way: OpenAI and Gemini count cached tokens inside the
 * prompt and report no cache writes (those are plain input to them), Anthropic reports the three apart;
 * `reasoningTokens` are part of `outputTokens` (Gemini reports them apart, as thoughts).
 */
export interface StepUsage {
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly cacheReadTokens?: number;
  readonly cacheWriteTokens?: number;
  readonly reasoningTokens?: number;
}

/** What an answer reported, in StepUsage's terms, after the provider's own rules (see StepUsage). */
export interface ReportedUsage {
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly cacheReadTokens: number;
  readonly cacheWriteTokens: number;
}

/**
 * One scripted answer: a text, and the tools to call (none ends the conversation); `usage` is what the answer
 * reports (DEFAULT_USAGE otherwise); a streamed answer waits `pauseMs` between its events, so that a test can
 * act while it streams.
 */
export interface Step {
  readonly text?: string;
  readonly toolCalls?: readonly { name: string; args: Record<string, unknown> }[];
  readonly usage?: StepUsage;
  readonly pauseMs?: number;
}

export const DEFAULT_USAGE: StepUsage = Object.freeze({ inputTokens: 100, outputTokens: 20, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 });

/** One script per provider: OpenAI's Chat Completions and Responses requests take their steps from the same one. */
export interface Script {
  readonly openai?: readonly Step[];
  readonly anthropic?: readonly Step[];
  readonly gemini?: readonly Step[];
  /** The model every answer names (else the one asked for). */
  readonly model?: string;
  /** Answers every request once the script of its provider is used up (agent CLIs make side calls, a title or a quota check, besides the conversation). */
  readonly fallback?: Step;
  /**
   * Where to listen on loopback (0: any free port). A test that runs agents picks it first, to name it in
   * billing's PADDOCK_LLM_UPSTREAMS before Paddock starts.
   */
  readonly port?: number;
}

type Provider = 'openai' | 'anthropic' | 'gemini';
interface Problem {
  readonly status: number;
  readonly type: string;
  readonly message: string;
}
/** Stream events: the SSE event name (if any), the data, and the usage a reader has seen once it is read. */
type Events = readonly (readonly [event: string | null, data: unknown, reports?: ReportedUsage])[];

/** A request with `stream: true` (Gemini: `:streamGenerateContent`) is answered as each provider streams. */
export async function startScriptedProvider(script: Script): Promise<ScriptedProvider> {
  const queues: Record<Provider, Step[]> = { openai: [...(script.openai ?? [])], anthropic: [...(script.anthropic ?? [])], gemini: [...(script.gemini ?? [])] };
  const requests: RecordedRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://provider');
      const route = routeOf(req.method ?? '', url.pathname);
      if (!route) return sendError(res, 'openai', { status: 404, type: 'not_found_error', message: `no route ${req.method} ${url.pathname}` });
      let body: Json | undefined;
      if (req.method === 'POST') {
        try {
          body = jsonObject(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        } catch {
          return sendError(res, route.provider, { status: 400, type: 'invalid_request_error', message: 'body is not a JSON object' });
        }
      }
      const key = keyOf(route.provider, req.headers, url);
      const answered = { done: false };
      const recorded = { api: route.api, method: req.method ?? '', url: req.url ?? '', headers: req.headers, key, body, usage: undefined as ReportedUsage | undefined, get answered() { return answered.done; } };
      requests.push(recorded);
      res.on('finish', () => (answered.done = true));
      const problem = checkAuth(route.provider, req.headers, key) ?? (route.kind === 'generate' ? checkBody(route.api, body ?? {}) : undefined);
      if (problem) return sendError(res, route.provider, problem);
      const model = script.model ?? route.model ?? String(body?.['model'] ?? 'model');
      if (route.kind === 'models') return send(res, 200, { object: 'list', data: [{ id: model, object: 'model', created: nowS(), owned_by: 'paddock-stand-in' }] });
      if (route.kind === 'count') return send(res, 200, route.provider === 'gemini' ? { totalTokens: estimateTokens(body) } : { input_tokens: estimateTokens(body) });
      const step = queues[route.provider].shift() ?? script.fallback;
      if (!step) return sendError(res, route.provider, { status: 500, type: 'api_error', message: `the ${route.provider} script has no step left` });
      const usage = step.usage ?? DEFAULT_USAGE;
      const full = reported(route.provider, usage);
      const answer = answerOf(route.api, step, model, usage);
      if (!(route.api === 'gemini' ? route.stream === true : body?.['stream'] === true)) {
        recorded.usage = full;
        return send(res, 200, answer);
      }
      // Nothing reported yet: a stream cut before its first usage event reported no tokens.
      recorded.usage = { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0 };
      // A chat stream carries its usage only when asked to.
      const withUsage = route.api !== 'openai' || body?.['stream_options']?.['include_usage'] === true;
      const events: Events =
        route.api === 'openai'
          ? openAiEvents(answer, withUsage ? full : undefined)
          : route.api === 'openai-responses'
            ? responsesEvents(answer, full)
            : route.api === 'anthropic'
              ? anthropicEvents(answer, full)
              : geminiChunks(answer, full);
      const gemini = route.api === 'gemini' ? (url.searchParams.get('alt') === 'sse' ? 'sse' : 'array') : undefined;
      void streamOut(res, events, { pauseMs: step.pauseMs ?? 0, gemini, reported: (u) => (recorded.usage = u) });
    });
  });
  await new Promise<void>((resolve) => server.listen(script.port ?? 0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- request bodies are whatever the client sent
type Json = Record<string, any>;

interface Route {
  readonly provider: Provider;
  readonly api: ProviderApi;
  /** generate: a call that answers with tokens; models, count: the free side calls. */
  readonly kind: 'generate' | 'models' | 'count';
  /** Gemini names the model in the path, and streams by method. */
  readonly model?: string;
  readonly stream?: boolean;
}

function routeOf(method: string, path: string): Route | undefined {
  if (method === 'GET' && path === '/v1/models') return { provider: 'openai', api: 'openai', kind: 'models' };
  if (method !== 'POST') return undefined;
  if (path === '/v1/chat/completions') return { provider: 'openai', api: 'openai', kind: 'generate' };
  if (path === '/v1/responses') return { provider: 'openai', api: 'openai-responses', kind: 'generate' };
  if (path === '/v1/messages') return { provider: 'anthropic', api: 'anthropic', kind: 'generate' };
  if (path === '/v1/messages/count_tokens') return { provider: 'anthropic', api: 'anthropic', kind: 'count' };
  const gemini = /^\/v1beta\/models\/([^/:]+):(generateContent|streamGenerateContent|countTokens)$/.exec(path);
  if (!gemini) return undefined;
  const model = decodeURIComponent(gemini[1]!);
  if (gemini[2] === 'countTokens') return { provider: 'gemini', api: 'gemini', kind: 'count', model };
  return { provider: 'gemini', api: 'gemini', kind: 'generate', model, stream: gemini[2] === 'streamGenerateContent' };
}

function jsonObject(json: unknown): Json {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new TypeError('not a JSON object');
  return json as Json;
}

function keyOf(provider: Provider, headers: IncomingHttpHeaders, url: URL): string | undefined {
  if (provider === 'openai') return /^Bearer (\S+)$/.exec(headers.authorization ?? '')?.[1];
  if (provider === 'anthropic') return header(headers, 'x-api-key');
  return header(headers, 'x-goog-api-key') ?? url.searchParams.get('key') ?? undefined;
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function checkAuth(provider: Provider, headers: IncomingHttpHeaders, key: string | undefined): Problem | undefined {
  if (key !== undefined) {
    return provider === 'anthropic' && !headers['anthropic-version'] ? { status: 400, type: 'invalid_request_error', message: 'anthropic-version header is required' } : undefined;
  }
  if (provider === 'openai') return { status: 401, type: 'invalid_request_error', message: 'missing bearer token' };
  if (provider === 'anthropic') return { status: 401, type: 'authentication_error', message: 'x-api-key header is required' };
  return { status: 403, type: 'PERMISSION_DENIED', message: 'Method doesn\'t allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.' };
}

function checkBody(api: ProviderApi, body: Json): Problem | undefined {
  const invalid = (message: string): Problem => ({ status: 400, type: api === 'gemini' ? 'INVALID_ARGUMENT' : 'invalid_request_error', message });
  if (api === 'openai') return typeof body['model'] === 'string' && Array.isArray(body['messages']) ? undefined : invalid('model and messages are required');
  if (api === 'openai-responses') {
    return typeof body['model'] === 'string' && (typeof body['input'] === 'string' || Array.isArray(body['input'])) ? undefined : invalid('model and input are required');
  }
  if (api === 'anthropic') {
    return typeof body['model'] === 'string' && Array.isArray(body['messages']) && typeof body['max_tokens'] === 'number' ? undefined : invalid('model, messages and max_tokens are required');
  }
  return Array.isArray(body['contents']) ? undefined : invalid('* GenerateContentRequest.contents: contents is not specified');
}

/** Each provider's own error body. */
function sendError(res: ServerResponse, provider: Provider, problem: Problem): void {
  if (provider === 'anthropic') return send(res, problem.status, { type: 'error', error: { type: problem.type, message: problem.message } });
  if (provider === 'gemini') return send(res, problem.status, { error: { code: problem.status, message: problem.message, status: problem.type } });
  send(res, problem.status, { error: { message: problem.message, type: problem.type, param: null, code: null } });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

const nowS = () => Math.floor(Date.now() / 1000);

/** A text as a stream delivers it: word by word (each with the spaces after it). */
function pieces(text: string): string[] {
  return text.match(/\s*\S+\s*/g) ?? (text === '' ? [] : [text]);
}

/** Roughly what a tokenizer would say: four characters a token. */
function estimateTokens(body: unknown): number {
  return Math.max(1, Math.ceil(JSON.stringify(body ?? '').length / 4));
}

function reported(provider: Provider, usage: StepUsage): ReportedUsage {
  const cacheRead = usage.cacheReadTokens ?? 0;
  const cacheWrite = usage.cacheWriteTokens ?? 0;
  if (provider === 'anthropic') return { inputTokens: usage.inputTokens, outputTokens: usage.outputTokens, cacheReadTokens: cacheRead, cacheWriteTokens: cacheWrite };
  return { inputTokens: usage.inputTokens + cacheWrite, outputTokens: usage.outputTokens, cacheReadTokens: cacheRead, cacheWriteTokens: 0 };
}

function answerOf(api: ProviderApi, step: Step, model: string, usage: StepUsage): Json {
  if (api === 'openai') return openAiAnswer(step, model, usage);
  if (api === 'openai-responses') return responsesAnswer(step, model, usage);
  if (api === 'anthropic') return anthropicAnswer(step, model, usage);
  return geminiAnswer(step, model, usage);
}

/** Writes `events` as the API streams them (Gemini: SSE, or a JSON array without ?alt=sse), and stops when the caller goes away. */
async function streamOut(res: ServerResponse, events: Events, opts: { pauseMs: number; gemini: 'sse' | 'array' | undefined; reported: (usage: ReportedUsage) => void }): Promise<void> {
  const { pauseMs, gemini } = opts;
  const gone = () => res.destroyed || res.writableEnded;
  res.writeHead(200, { 'content-type': gemini === 'array' ? 'application/json' : 'text/event-stream', 'cache-control': 'no-cache' });
  if (gemini === 'array') res.write('[');
  for (const [i, [event, data, reports]] of events.entries()) {
    if (i > 0 && pauseMs > 0) await sleep(pauseMs);
    if (gone()) return;
    const text = typeof data === 'string' ? data : JSON.stringify(data);
    if (gemini === 'array') res.write(`${i > 0 ? ',\r\n' : ''}${text}`);
    else if (gemini === 'sse') res.write(`data: ${text}\r\n\r\n`);
    else res.write(`${event ? `event: ${event}\n` : ''}data: ${text}\n\n`);
    if (reports) opts.reported(reports);
  }
  res.end(gemini === 'array' ? ']' : undefined);
}

// --- OpenAI Chat Completions ---------------------------------------------------------------------------

function openAiUsage(usage: StepUsage) {
  const cached = usage.cacheReadTokens ?? 0;
  const prompt = usage.inputTokens + cached + (usage.cacheWriteTokens ?? 0);
  return {
    prompt_tokens: prompt,
    completion_tokens: usage.outputTokens,
    total_tokens: prompt + usage.outputTokens,
    prompt_tokens_details: { cached_tokens: cached, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: usage.reasoningTokens ?? 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
}

function openAiAnswer(step: Step, model: string, usage: StepUsage): Json {
  const calls = (step.toolCalls ?? []).map((c) => ({ id: `call_${randomUUID().slice(0, 8)}`, type: 'function', function: { name: c.name, arguments: JSON.stringify(c.args) } }));
  return {
    id: `chatcmpl-${randomUUID()}`,
    object: 'chat.completion',
    created: nowS(),
    model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: step.text ?? null, ...(calls.length > 0 ? { tool_calls: calls } : {}) },
        finish_reason: calls.length > 0 ? 'tool_calls' : 'stop',
      },
    ],
    usage: openAiUsage(usage),
  };
}

/**
 * An OpenAI answer as chat.completion.chunk events, then [DONE]. The usage rides in a last chunk with no
 * choices, as OpenAI sends it when the request asked for `stream_options.include_usage` (and only then).
 */
function openAiEvents(answer: Json, usage: ReportedUsage | undefined): Events {
  const choice = answer['choices'][0];
  const base = { id: answer['id'], object: 'chat.completion.chunk', created: answer['created'], model: answer['model'] };
  const calls: Json[] = choice.message.tool_calls ?? [];
  const words = pieces(choice.message.content ?? '');
  return [
    [null, { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: words[0] ?? '' }, finish_reason: null }] }],
    ...words.slice(1).map((content) => [null, { ...base, choices: [{ index: 0, delta: { content }, finish_reason: null }] }] as const),
    ...calls.map((c, index) => [null, { ...base, choices: [{ index: 0, delta: { tool_calls: [{ index, ...c }] }, finish_reason: null }] }] as const),
    [null, { ...base, choices: [{ index: 0, delta: {}, finish_reason: choice.finish_reason }] }],
    ...(usage ? [[null, { ...base, choices: [], usage: answer['usage'] }, usage] as const] : []),
    [null, '[DONE]'],
  ];
}

// --- OpenAI Responses ----------------------------------------------------------------------------------

function responsesAnswer(step: Step, model: string, usage: StepUsage): Json {
  const cached = usage.cacheReadTokens ?? 0;
  const input = usage.inputTokens + cached + (usage.cacheWriteTokens ?? 0);
  const output = [
    ...(step.text ? [{ type: 'message', id: `msg_${randomUUID().replaceAll('-', '')}`, status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: step.text, annotations: [] }] }] : []),
    ...(step.toolCalls ?? []).map((c) => ({
      type: 'function_call',
      id: `fc_${randomUUID().replaceAll('-', '')}`,
      call_id: `call_${randomUUID().slice(0, 8)}`,
      name: c.name,
      arguments: JSON.stringify(c.args),
      status: 'completed',
    })),
  ];
  return {
    id: `resp_${randomUUID().replaceAll('-', '')}`,
    object: 'response',
    created_at: nowS(),
    status: 'completed',
    error: null,
    incomplete_details: null,
    model,
    output,
    parallel_tool_calls: true,
    tool_choice: 'auto',
    tools: [],
    usage: {
      input_tokens: input,
      input_tokens_details: { cached_tokens: cached },
      output_tokens: usage.outputTokens,
      output_tokens_details: { reasoning_tokens: usage.reasoningTokens ?? 0 },
      total_tokens: input + usage.outputTokens,
    },
  };
}

/** A Responses answer as its stream: created, in_progress, each output item added, its deltas and done, then completed with the usage. */
function responsesEvents(answer: Json, usage: ReportedUsage): Events {
  const started = { ...answer, status: 'in_progress', output: [], usage: null };
  const events: [string, Json][] = [
    ['response.created', { response: started }],
    ['response.in_progress', { response: started }],
  ];
  (answer['output'] as Json[]).forEach((item, output_index) => {
    if (item['type'] === 'message') {
      const part = item['content'][0];
      events.push(['response.output_item.added', { output_index, item: { ...item, status: 'in_progress', content: [] } }]);
      events.push(['response.content_part.added', { item_id: item['id'], output_index, content_index: 0, part: { ...part, text: '' } }]);
      for (const delta of pieces(part.text)) events.push(['response.output_text.delta', { item_id: item['id'], output_index, content_index: 0, delta, logprobs: [] }]);
      events.push(['response.output_text.done', { item_id: item['id'], output_index, content_index: 0, text: part.text, logprobs: [] }]);
      events.push(['response.content_part.done', { item_id: item['id'], output_index, content_index: 0, part }]);
    } else {
      events.push(['response.output_item.added', { output_index, item: { ...item, status: 'in_progress', arguments: '' } }]);
      events.push(['response.function_call_arguments.delta', { item_id: item['id'], output_index, delta: item['arguments'] }]);
      events.push(['response.function_call_arguments.done', { item_id: item['id'], output_index, arguments: item['arguments'] }]);
    }
    events.push(['response.output_item.done', { output_index, item }]);
  });
  events.push(['response.completed', { response: answer }]);
  return events.map(([type, data], sequence_number) => [type, { type, sequence_number, ...data }, type === 'response.completed' ? usage : undefined] as const);
}

// --- Anthropic Messages --------------------------------------------------------------------------------

function anthropicAnswer(step: Step, model: string, usage: StepUsage): Json {
  const content = [
    ...(step.text ? [{ type: 'text', text: step.text }] : []),
    ...(step.toolCalls ?? []).map((c) => ({ type: 'tool_use', id: `toolu_${randomUUID().slice(0, 8)}`, name: c.name, input: c.args })),
  ];
  return {
    id: `msg_${randomUUID()}`,
    type: 'message',
    role: 'assistant',
    model,
    content,
    stop_reason: (step.toolCalls ?? []).length > 0 ? 'tool_use' : 'end_turn',
    stop_sequence: null,
    usage: {
      input_tokens: usage.inputTokens,
      cache_creation_input_tokens: usage.cacheWriteTokens ?? 0,
      cache_read_input_tokens: usage.cacheReadTokens ?? 0,
      output_tokens: usage.outputTokens,
      service_tier: 'standard',
    },
  };
}

/**
 * An Anthropic answer as the Messages API's stream: message_start (with the input and cache figures and a
 * first output count), one block at a time, message_delta (with the final output count), message_stop.
 */
function anthropicEvents(answer: Json, reported: ReportedUsage): Events {
  const usage = answer['usage'];
  const events: [string, Json, ReportedUsage?][] = [
    ['message_start', { type: 'message_start', message: { ...answer, content: [], stop_reason: null, usage: { ...usage, output_tokens: 1 } } }, { ...reported, outputTokens: 1 }],
  ];
  (answer['content'] as Json[]).forEach((block, index) => {
    if (block['type'] === 'text') {
      events.push(['content_block_start', { type: 'content_block_start', index, content_block: { type: 'text', text: '' } }]);
      for (const text of pieces(block['text'])) events.push(['content_block_delta', { type: 'content_block_delta', index, delta: { type: 'text_delta', text } }]);
    } else {
      events.push(['content_block_start', { type: 'content_block_start', index, content_block: { type: 'tool_use', id: block['id'], name: block['name'], input: {} } }]);
      events.push(['content_block_delta', { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: JSON.stringify(block['input']) } }]);
    }
    events.push(['content_block_stop', { type: 'content_block_stop', index }]);
  });
  events.push(['message_delta', { type: 'message_delta', delta: { stop_reason: answer['stop_reason'], stop_sequence: null }, usage: { output_tokens: usage.output_tokens } }, reported]);
  events.push(['message_stop', { type: 'message_stop' }]);
  return events;
}

// --- Gemini --------------------------------------------------------------------------------------------

function geminiAnswer(step: Step, model: string, usage: StepUsage): Json {
  const cached = usage.cacheReadTokens ?? 0;
  const prompt = usage.inputTokens + cached + (usage.cacheWriteTokens ?? 0);
  const thoughts = usage.reasoningTokens ?? 0;
  const candidates = usage.outputTokens - thoughts;
  const parts = [...(step.text ? [{ text: step.text }] : []), ...(step.toolCalls ?? []).map((c) => ({ functionCall: { name: c.name, args: c.args } }))];
  return {
    candidates: [{ content: { role: 'model', parts }, finishReason: 'STOP', index: 0 }],
    usageMetadata: {
      promptTokenCount: prompt,
      candidatesTokenCount: candidates,
      totalTokenCount: prompt + usage.outputTokens,
      ...(cached > 0 ? { cachedContentTokenCount: cached } : {}),
      ...(thoughts > 0 ? { thoughtsTokenCount: thoughts } : {}),
      promptTokensDetails: [{ modality: 'TEXT', tokenCount: prompt }],
    },
    modelVersion: model,
    responseId: randomUUID().replaceAll('-', '').slice(0, 22),
  };
}

/**
 * A Gemini answer as its stream: a chunk per word of its text, then per function call, each with the usage
 * so far (the prompt and its cached part), the last one with the finish reason and the whole usage: a
 * reader takes the last chunk's.
 */
function geminiChunks(answer: Json, reported: ReportedUsage): Events {
  const candidate = answer['candidates'][0];
  const usage = answer['usageMetadata'];
  const soFar = { promptTokenCount: usage.promptTokenCount, totalTokenCount: usage.promptTokenCount, ...(usage.cachedContentTokenCount ? { cachedContentTokenCount: usage.cachedContentTokenCount } : {}) };
  const chunk = (parts: Json[], last: boolean) =>
    [
      null,
      {
        candidates: [{ content: { role: 'model', parts }, ...(last ? { finishReason: candidate.finishReason } : {}), index: 0 }],
        usageMetadata: last ? usage : soFar,
        modelVersion: answer['modelVersion'],
        responseId: answer['responseId'],
      },
      last ? reported : { ...reported, outputTokens: 0 },
    ] as const;
  const parts: Json[] = (candidate.content.parts as Json[]).flatMap((part) => (typeof part['text'] === 'string' ? pieces(part['text']).map((text) => ({ text })) : [part]));
  if (parts.length === 0) return [chunk([], true)];
  return parts.map((part, i) => chunk([part], i === parts.length - 1));
}
