import type { LlmApi } from './route.js';

/**
 * One call's tokens as billing stores them, the same for every provider: `input` never includes the
 * tokens read from or written to a cache, so that each kind is priced once at its own rate. OpenAI and
 * Gemini count cached tokens inside the prompt (their input is the prompt less the cached part); Anthropic
 * reports the three apart. Reasoning ("thinking") tokens are output.
 */
export interface Tokens {
  readonly input: number;
  readonly output: number;
  readonly cacheRead: number;
  readonly cacheWrite: number;
}

export interface MeterReading {
  /** As the answer named it; undefined when it named none (an error, or a stream cut before it said). */
  readonly model: string | undefined;
  readonly tokens: Tokens;
}

/**
 * Reads one answer's usage fields as they go by: each server-sent event of a stream (its name, if any, and
 * its data), or each JSON document (a whole answer, or an element of Gemini's JSON-array stream). Reading
 * is what was seen so far, so a stream cut short counts what it had reported.
 */
export interface UsageMeter {
  event(name: string | undefined, data: string): void;
  json(value: unknown): void;
  reading(): MeterReading;
}

const NONE: Tokens = Object.freeze({ input: 0, output: 0, cacheRead: 0, cacheWrite: 0 });

export function usageMeter(api: LlmApi): UsageMeter {
  if (api === 'chat.completions') return new ChatCompletionsMeter();
  if (api === 'responses') return new ResponsesMeter();
  if (api === 'messages') return new MessagesMeter();
  return new GeminiMeter();
}

type Obj = Readonly<Record<string, unknown>>;

function obj(value: unknown): Obj | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Obj) : undefined;
}

/** A count as reported: a non-negative integer, else 0. */
function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.floor(value) : 0;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function parse(data: string): Obj | undefined {
  try {
    return obj(JSON.parse(data));
  } catch {
    return undefined;
  }
}

/** Inside a JSON string every `"` is escaped, so a quoted key found in the raw text is a key: only such events are parsed. */
const mentions = (data: string, key: string) => data.includes(`"${key}"`);

/** OpenAI's prompt and Gemini's prompt both include their cached part. */
function splitPrompt(prompt: number, cached: number): { input: number; cacheRead: number } {
  const cacheRead = Math.min(cached, prompt);
  return { input: prompt - cacheRead, cacheRead };
}

abstract class BaseMeter implements UsageMeter {
  protected model: string | undefined;
  protected tokens: Tokens = NONE;

  abstract event(name: string | undefined, data: string): void;
  abstract json(value: unknown): void;

  reading(): MeterReading {
    return { model: this.model, tokens: this.tokens };
  }
}

/** Chat Completions: `usage` in the answer, or in the stream's last chunk (stream_options.include_usage). */
class ChatCompletionsMeter extends BaseMeter {
  event(_name: string | undefined, data: string): void {
    if (data === '[DONE]' || (this.model !== undefined && !mentions(data, 'usage'))) return;
    const chunk = parse(data);
    if (chunk) this.json(chunk);
  }

  json(value: unknown): void {
    const answer = obj(value);
    this.model ??= text(answer?.['model']);
    const usage = obj(answer?.['usage']);
    if (!usage) return;
    const prompt = splitPrompt(count(usage['prompt_tokens']), count(obj(usage['prompt_tokens_details'])?.['cached_tokens']));
    this.tokens = { ...prompt, output: count(usage['completion_tokens']), cacheWrite: 0 };
  }
}

/** Responses: the response object's `usage`, which a stream carries in response.completed (or .incomplete, .failed). */
class ResponsesMeter extends BaseMeter {
  event(_name: string | undefined, data: string): void {
    if (!mentions(data, 'response')) return;
    const event = parse(data);
    const response = obj(event?.['response']);
    if (response) this.json(response);
  }

  json(value: unknown): void {
    const response = obj(value);
    this.model = text(response?.['model']) ?? this.model;
    const usage = obj(response?.['usage']);
    if (!usage) return;
    const prompt = splitPrompt(count(usage['input_tokens']), count(obj(usage['input_tokens_details'])?.['cached_tokens']));
    this.tokens = { ...prompt, output: count(usage['output_tokens']), cacheWrite: 0 };
  }
}

/**
 * Messages: the answer's `usage`; a stream reports the input and cache figures in message_start and the
 * output so far in each message_delta (cumulative, so the last one counts).
 */
class MessagesMeter extends BaseMeter {
  event(name: string | undefined, data: string): void {
    if (name !== undefined && name !== 'message_start' && name !== 'message_delta') return;
    if (!mentions(data, 'usage')) return;
    const event = parse(data);
    if (event?.['type'] === 'message_start') this.json(event['message']);
    else if (event?.['type'] === 'message_delta') this.#add(obj(event['usage']));
  }

  json(value: unknown): void {
    const message = obj(value);
    this.model = text(message?.['model']) ?? this.model;
    this.#add(obj(message?.['usage']));
  }

  /** Only the fields present replace the ones seen: message_delta usually carries output_tokens alone. */
  #add(usage: Obj | undefined): void {
    if (!usage) return;
    const pick = (field: string, seen: number) => (usage[field] === undefined || usage[field] === null ? seen : count(usage[field]));
    this.tokens = {
      input: pick('input_tokens', this.tokens.input),
      output: pick('output_tokens', this.tokens.output),
      cacheRead: pick('cache_read_input_tokens', this.tokens.cacheRead),
      cacheWrite: pick('cache_creation_input_tokens', this.tokens.cacheWrite),
    };
  }
}

/** Gemini: `usageMetadata` in the answer, or in each chunk of a stream (the last one holds the whole call's). */
class GeminiMeter extends BaseMeter {
  event(_name: string | undefined, data: string): void {
    if (this.model !== undefined && !mentions(data, 'usageMetadata')) return;
    const chunk = parse(data);
    if (chunk) this.json(chunk);
  }

  json(value: unknown): void {
    const answer = obj(value);
    this.model = text(answer?.['modelVersion']) ?? this.model;
    const usage = obj(answer?.['usageMetadata']);
    if (!usage) return;
    // Tokens of the tools' own prompts (search results) are prompt tokens too.
    const prompt = splitPrompt(count(usage['promptTokenCount']) + count(usage['toolUsePromptTokenCount']), count(usage['cachedContentTokenCount']));
    this.tokens = { ...prompt, output: count(usage['candidatesTokenCount']) + count(usage['thoughtsTokenCount']), cacheWrite: 0 };
  }
}
