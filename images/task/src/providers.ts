import type { Tool } from './tools.js';

export interface ToolCall {
  readonly id: string;
  readonly name: string;
  readonly args: Record<string, unknown>;
}

/** One answer of the model: its text and the tools it wants run. */
export interface Turn {
  readonly text: string;
  readonly toolCalls: readonly ToolCall[];
  readonly model: string;
  readonly inputTokens: number;
  readonly outputTokens: number;
}

export interface ToolResult {
  readonly call: ToolCall;
  readonly content: string;
  readonly isError: boolean;
}

/** A conversation with one provider, in its own wire format. */
export interface Conversation {
  next(): Promise<Turn>;
  addToolResults(results: readonly ToolResult[]): void;
}

export class ProviderError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'ProviderError';
  }
}

export interface ProviderOptions {
  readonly baseUrl: string;
  readonly apiKey: string;
  readonly model: string;
  readonly system: string;
  readonly prompt: string;
  readonly tools: readonly Tool[];
  readonly maxTokens: number;
  readonly requestTimeoutMs: number;
}

const RETRIES = 4;

/** POSTs JSON; retries 429, 5xx and network failures with backoff, then gives up with what the server said. */
async function postJson(url: string, headers: Record<string, string>, body: unknown, timeoutMs: number): Promise<unknown> {
  let lastError: ProviderError | undefined;
  for (let attempt = 0; attempt <= RETRIES; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(500 * 2 ** attempt, 8_000)));
    let response: Response;
    try {
      response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      lastError = new ProviderError(`cannot reach ${url}: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`);
      continue;
    }
    const text = await response.text();
    if (response.ok) {
      try {
        return JSON.parse(text);
      } catch {
        throw new ProviderError(`${url} answered with something that is not JSON: ${text.slice(0, 200)}`);
      }
    }
    lastError = new ProviderError(`${url} answered ${response.status}: ${text.slice(0, 500)}`, response.status);
    if (response.status !== 429 && response.status < 500) break;
  }
  throw lastError ?? new ProviderError(`no answer from ${url}`);
}

function parseArguments(raw: unknown): Record<string, unknown> {
  if (raw !== null && typeof raw === 'object') return raw as Record<string, unknown>;
  if (typeof raw !== 'string' || raw.trim() === '') return {};
  try {
    const parsed: unknown = JSON.parse(raw);
    return parsed !== null && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : { value: parsed };
  } catch {
    return { _unparsed: raw };
  }
}

// --- OpenAI Chat Completions ---------------------------------------------------------------------------

interface OpenAiToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}
interface OpenAiMessage {
  role: 'system' | 'user' | 'assistant' | 'tool';
  content: string | null;
  tool_calls?: OpenAiToolCall[];
  tool_call_id?: string;
}
interface OpenAiResponse {
  model?: string;
  choices?: { message?: OpenAiMessage; finish_reason?: string }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number };
}

/** The OpenAI Chat Completions API with function tools (also spoken by many gateways and local servers). */
export class OpenAiConversation implements Conversation {
  readonly #messages: OpenAiMessage[];

  constructor(private readonly opts: ProviderOptions) {
    this.#messages = [
      { role: 'system', content: opts.system },
      { role: 'user', content: opts.prompt },
    ];
  }

  async next(): Promise<Turn> {
    const body = {
      model: this.opts.model,
      messages: this.#messages,
      tools: this.opts.tools.map((t) => ({ type: 'function', function: { name: t.name, description: t.description, parameters: t.parameters } })),
      tool_choice: 'auto',
      max_tokens: this.opts.maxTokens,
    };
    const url = `${this.opts.baseUrl.replace(/\/+$/, '')}/chat/completions`;
    const response = (await postJson(url, { authorization: `Bearer ${this.opts.apiKey}` }, body, this.opts.requestTimeoutMs)) as OpenAiResponse;
    const message = response.choices?.[0]?.message;
    if (!message) throw new ProviderError(`${url} answered without choices[0].message`);
    this.#messages.push({ role: 'assistant', content: message.content ?? null, ...(message.tool_calls?.length ? { tool_calls: message.tool_calls } : {}) });
    return {
      text: message.content ?? '',
      toolCalls: (message.tool_calls ?? []).map((c) => ({ id: c.id, name: c.function.name, args: parseArguments(c.function.arguments) })),
      model: response.model ?? this.opts.model,
      inputTokens: response.usage?.prompt_tokens ?? 0,
      outputTokens: response.usage?.completion_tokens ?? 0,
    };
  }

  addToolResults(results: readonly ToolResult[]): void {
    for (const r of results) this.#messages.push({ role: 'tool', tool_call_id: r.call.id, content: r.isError ? `error: ${r.content}` : r.content });
  }
}

// --- Anthropic Messages --------------------------------------------------------------------------------

type AnthropicBlock =
  | { type: 'text'; text: string }
  | { type: 'tool_use'; id: string; name: string; input: unknown }
  | { type: 'tool_result'; tool_use_id: string; content: string; is_error?: boolean };
interface AnthropicMessage {
  role: 'user' | 'assistant';
  content: string | AnthropicBlock[];
}
interface AnthropicResponse {
  model?: string;
  content?: AnthropicBlock[];
  stop_reason?: string;
  usage?: { input_tokens?: number; output_tokens?: number };
}

export const ANTHROPIC_VERSION = '2023-06-01';

/** The Anthropic Messages API with tool use. */
export class AnthropicConversation implements Conversation {
  readonly #messages: AnthropicMessage[];

  constructor(private readonly opts: ProviderOptions) {
    this.#messages = [{ role: 'user', content: opts.prompt }];
  }

  async next(): Promise<Turn> {
    const body = {
      model: this.opts.model,
      max_tokens: this.opts.maxTokens,
      system: this.opts.system,
      tools: this.opts.tools.map((t) => ({ name: t.name, description: t.description, input_schema: t.parameters })),
      messages: this.#messages,
    };
    const url = `${this.opts.baseUrl.replace(/\/+$/, '')}/v1/messages`;
    const headers = { 'x-api-key': this.opts.apiKey, 'anthropic-version': ANTHROPIC_VERSION };
    const response = (await postJson(url, headers, body, this.opts.requestTimeoutMs)) as AnthropicResponse;
    if (!Array.isArray(response.content)) throw new ProviderError(`${url} answered without content`);
    this.#messages.push({ role: 'assistant', content: response.content });
    const text = response.content.flatMap((b) => (b.type === 'text' ? [b.text] : [])).join('\n');
    const toolCalls = response.content.flatMap((b) => (b.type === 'tool_use' ? [{ id: b.id, name: b.name, args: parseArguments(b.input) }] : []));
    return {
      text,
      toolCalls,
      model: response.model ?? this.opts.model,
      inputTokens: response.usage?.input_tokens ?? 0,
      outputTokens: response.usage?.output_tokens ?? 0,
    };
  }

  addToolResults(results: readonly ToolResult[]): void {
    if (results.length === 0) return;
    this.#messages.push({
      role: 'user',
      content: results.map((r) => ({ type: 'tool_result', tool_use_id: r.call.id, content: r.content, ...(r.isError ? { is_error: true } : {}) })),
    });
  }
}
