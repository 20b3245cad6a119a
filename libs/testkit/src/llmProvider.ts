import { randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A local LLM provider for tests, since real ones cannot be reached: it speaks the OpenAI Chat Completions
 * and Anthropic Messages wire formats (paths, auth headers, request and response bodies) and answers each
 * request with the next step of a script. Listens on every interface so containers reach it too.
 */
export interface ScriptedProvider {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly port: number;
  /** What an agent inside a container sets OPENAI_BASE_URL to (through host.docker.internal). */
  readonly openaiBaseUrlForContainers: string;
  readonly anthropicBaseUrlForContainers: string;
  readonly requests: readonly RecordedRequest[];
  stop(): Promise<void>;
}

export interface RecordedRequest {
  readonly api: 'openai' | 'anthropic';
  readonly headers: IncomingHttpHeaders;
  /** The JSON as sent; `any` so that a test reads whatever field it asserts on. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
  readonly body: any;
}

/** One scripted answer: a text, and the tools to call (none ends the conversation). */
export interface Step {
  readonly text?: string;
  readonly toolCalls?: readonly { name: string; args: Record<string, unknown> }[];
}

/**
 * `fallback` answers every request once the script of its API is used up (agent CLIs make side calls, a
 * title or a quota check, besides the conversation). A request with `stream: true` is answered as
 * server-sent events, as each provider streams.
 */
/**
 * `port`: where to listen (0: any free port). Containers reach it as host.docker.internal only when the
 * broker opens that port to them (PADDOCK_INSTANCE_HOST_PORTS), so a test that runs agents picks it first.
 */
export async function startScriptedProvider(script: { openai?: Step[]; anthropic?: Step[]; model?: string; fallback?: Step; port?: number }): Promise<ScriptedProvider> {
  const queues = { openai: [...(script.openai ?? [])], anthropic: [...(script.anthropic ?? [])] };
  const requests: RecordedRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const send = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      const path = (req.url ?? '').split('?')[0];
      const api = req.method === 'POST' && path === '/v1/chat/completions' ? 'openai' : req.method === 'POST' && path === '/v1/messages' ? 'anthropic' : undefined;
      if (api === undefined) return send(404, { error: { type: 'not_found_error', message: `no route ${req.method} ${req.url}` } });
      let body: ChatRequest;
      try {
        body = chatRequest(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        return send(400, { error: { type: 'invalid_request_error', message: 'body is not a JSON object' } });
      }
      requests.push({ api, headers: req.headers, body });
      const problem = api === 'openai' ? checkOpenAi(req.headers, body) : checkAnthropic(req.headers, body);
      if (problem) return send(problem.status, { error: { type: problem.type, message: problem.message } });
      const step = queues[api].shift() ?? script.fallback;
      if (!step) return send(500, { error: { type: 'api_error', message: `the ${api} script has no step left` } });
      // checkOpenAi / checkAnthropic refused a request whose model is not a string.
      const model = script.model ?? String(body.model);
      if (body.stream !== true) return send(200, api === 'openai' ? openAiAnswer(step, model) : anthropicAnswer(step, model));
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      const events = api === 'openai' ? openAiEvents(openAiAnswer(step, model)) : anthropicEvents(anthropicAnswer(step, model));
      for (const [event, data] of events) {
        res.write(`${event ? `event: ${event}\n` : ''}data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
      }
      return res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(script.port ?? 0, '0.0.0.0', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    openaiBaseUrlForContainers: `http://host.docker.internal:${port}/v1`,
    anthropicBaseUrlForContainers: `http://host.docker.internal:${port}`,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The fields of a chat request this provider reads; the rest is recorded as sent. */
interface ChatRequest {
  readonly model?: unknown;
  readonly messages?: unknown;
  readonly max_tokens?: unknown;
  readonly stream?: unknown;
}

function chatRequest(json: unknown): ChatRequest {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new TypeError('not a JSON object');
  return json;
}

function checkOpenAi(headers: IncomingHttpHeaders, body: ChatRequest): { status: number; type: string; message: string } | undefined {
  if (!/^Bearer \S+/.test(headers.authorization ?? '')) return { status: 401, type: 'invalid_request_error', message: 'missing bearer token' };
  if (typeof body.model !== 'string' || !Array.isArray(body.messages)) return { status: 400, type: 'invalid_request_error', message: 'model and messages are required' };
  return undefined;
}

function checkAnthropic(headers: IncomingHttpHeaders, body: ChatRequest): { status: number; type: string; message: string } | undefined {
  if (!headers['x-api-key']) return { status: 401, type: 'authentication_error', message: 'x-api-key header is required' };
  if (!headers['anthropic-version']) return { status: 400, type: 'invalid_request_error', message: 'anthropic-version header is required' };
  if (typeof body.model !== 'string' || !Array.isArray(body.messages) || typeof body.max_tokens !== 'number') {
    return { status: 400, type: 'invalid_request_error', message: 'model, messages and max_tokens are required' };
  }
  return undefined;
}

function openAiAnswer(step: Step, model: string) {
  const calls = (step.toolCalls ?? []).map((c) => ({ id: `call_${randomUUID().slice(0, 8)}`, type: 'function', function: { name: c.name, arguments: JSON.stringify(c.args) } }));
  return {
    id: `chatcmpl-${randomUUID()}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: step.text ?? null, ...(calls.length > 0 ? { tool_calls: calls } : {}) },
        finish_reason: calls.length > 0 ? 'tool_calls' : 'stop',
      },
    ],
    usage: { prompt_tokens: 100, completion_tokens: 20, total_tokens: 120 },
  };
}

function anthropicAnswer(step: Step, model: string) {
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
    usage: { input_tokens: 100, output_tokens: 20 },
  };
}

/** An OpenAI answer as chat.completion.chunk events, then [DONE]. */
function openAiEvents(answer: ReturnType<typeof openAiAnswer>): [string | null, unknown][] {
  const choice = answer.choices[0]!;
  const base = { id: answer.id, object: 'chat.completion.chunk', created: answer.created, model: answer.model };
  const calls = (choice.message as { tool_calls?: { id: string; type: string; function: { name: string; arguments: string } }[] }).tool_calls ?? [];
  return [
    [null, { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: choice.message.content ?? '' }, finish_reason: null }] }],
    ...calls.map((c, index): [null, unknown] => [null, { ...base, choices: [{ index: 0, delta: { tool_calls: [{ index, ...c }] }, finish_reason: null }] }]),
    [null, { ...base, choices: [{ index: 0, delta: {}, finish_reason: choice.finish_reason }], usage: answer.usage }],
    [null, '[DONE]'],
  ];
}

/** An Anthropic answer as the Messages API's stream: message_start, one block at a time, message_delta, message_stop. */
function anthropicEvents(answer: ReturnType<typeof anthropicAnswer>): [string, unknown][] {
  const events: [string, unknown][] = [
    ['message_start', { type: 'message_start', message: { ...answer, content: [], stop_reason: null, usage: { input_tokens: answer.usage.input_tokens, output_tokens: 1 } } }],
  ];
  answer.content.forEach((block, index) => {
    if (block.type === 'text') {
      events.push(['content_block_start', { type: 'content_block_start', index, content_block: { type: 'text', text: '' } }]);
      events.push(['content_block_delta', { type: 'content_block_delta', index, delta: { type: 'text_delta', text: (block as { text: string }).text } }]);
    } else {
      const use = block as { id: string; name: string; input: unknown };
      events.push(['content_block_start', { type: 'content_block_start', index, content_block: { type: 'tool_use', id: use.id, name: use.name, input: {} } }]);
      events.push(['content_block_delta', { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: JSON.stringify(use.input) } }]);
    }
    events.push(['content_block_stop', { type: 'content_block_stop', index }]);
  });
  events.push(['message_delta', { type: 'message_delta', delta: { stop_reason: answer.stop_reason, stop_sequence: null }, usage: { output_tokens: answer.usage.output_tokens } }]);
  events.push(['message_stop', { type: 'message_stop' }]);
  return events;
}
