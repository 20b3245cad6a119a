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
  readonly body: any;
}

/** One scripted answer: a text, and the tools to call (none ends the conversation). */
export interface Step {
  readonly text?: string;
  readonly toolCalls?: readonly { name: string; args: Record<string, unknown> }[];
}

export async function startScriptedProvider(script: { openai?: Step[]; anthropic?: Step[]; model?: string }): Promise<ScriptedProvider> {
  const queues = { openai: [...(script.openai ?? [])], anthropic: [...(script.anthropic ?? [])] };
  const requests: RecordedRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const send = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      const api = req.method === 'POST' && req.url === '/v1/chat/completions' ? 'openai' : req.method === 'POST' && req.url === '/v1/messages' ? 'anthropic' : undefined;
      if (api === undefined) return send(404, { error: { type: 'not_found_error', message: `no route ${req.method} ${req.url}` } });
      let body: any;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return send(400, { error: { type: 'invalid_request_error', message: 'body is not JSON' } });
      }
      requests.push({ api, headers: req.headers, body });
      const problem = api === 'openai' ? checkOpenAi(req.headers, body) : checkAnthropic(req.headers, body);
      if (problem) return send(problem.status, { error: { type: problem.type, message: problem.message } });
      const step = queues[api].shift();
      if (!step) return send(500, { error: { type: 'api_error', message: `the ${api} script has no step left` } });
      const model = script.model ?? body.model;
      return send(200, api === 'openai' ? openAiAnswer(step, model) : anthropicAnswer(step, model));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
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

function checkOpenAi(headers: IncomingHttpHeaders, body: any): { status: number; type: string; message: string } | undefined {
  if (!/^Bearer \S+/.test(headers.authorization ?? '')) return { status: 401, type: 'invalid_request_error', message: 'missing bearer token' };
  if (typeof body.model !== 'string' || !Array.isArray(body.messages)) return { status: 400, type: 'invalid_request_error', message: 'model and messages are required' };
  return undefined;
}

function checkAnthropic(headers: IncomingHttpHeaders, body: any): { status: number; type: string; message: string } | undefined {
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
