import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { ProviderName } from './upstreams.js';

/** Why the proxy answers a call itself: each is a status, and a type in each provider's own terms. */
export type Refusal = 'bad_request' | 'unauthenticated' | 'not_found' | 'too_large' | 'budget' | 'internal' | 'upstream' | 'unavailable';

const STATUS: Readonly<Record<Refusal, number>> = {
  bad_request: 400,
  unauthenticated: 401,
  not_found: 404,
  too_large: 413,
  budget: 429,
  internal: 500,
  upstream: 502,
  unavailable: 503,
};

/** How one provider's API carries its key and says what went wrong, so that its SDKs and agents read the proxy's answers as its own. */
export interface Provider {
  readonly name: ProviderName;
  /** For messages: "OpenAI". */
  readonly label: string;
  /** The secret a user or project stores for the proxy to call this provider with. */
  readonly secret: string;
  /** The key a client sent, where this provider's SDKs put it. */
  runKeyOf(headers: IncomingHttpHeaders, query: URLSearchParams): string | undefined;
  /** Puts the real key where this provider reads it (the client's credentials are already gone). */
  authorize(headers: OutgoingHttpHeaders, key: string): void;
  /** The status and body of a refusal, in this provider's error shape. */
  refusal(why: Refusal, message: string): { status: number; body: unknown };
}

/** Every header any of the providers reads a credential from: none of a client's reaches an upstream. */
export const CREDENTIAL_HEADERS: readonly string[] = Object.freeze(['authorization', 'x-api-key', 'x-goog-api-key']);

function bearer(headers: IncomingHttpHeaders): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(headers.authorization ?? '')?.[1];
}

function single(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
}

const OPENAI_TYPES: Readonly<Record<Refusal, { type: string; code: string | null }>> = {
  bad_request: { type: 'invalid_request_error', code: null },
  unauthenticated: { type: 'invalid_request_error', code: 'invalid_api_key' },
  not_found: { type: 'invalid_request_error', code: 'unknown_url' },
  too_large: { type: 'invalid_request_error', code: 'request_too_large' },
  // OpenAI's own word for spent money: clients such as Codex stop on it rather than retry.
  budget: { type: 'insufficient_quota', code: 'insufficient_quota' },
  internal: { type: 'server_error', code: null },
  upstream: { type: 'server_error', code: null },
  unavailable: { type: 'server_error', code: null },
};

const ANTHROPIC_TYPES: Readonly<Record<Refusal, string>> = {
  bad_request: 'invalid_request_error',
  unauthenticated: 'authentication_error',
  not_found: 'not_found_error',
  too_large: 'request_too_large',
  budget: 'rate_limit_error',
  internal: 'api_error',
  upstream: 'api_error',
  unavailable: 'api_error',
};

const GEMINI_STATUSES: Readonly<Record<Refusal, string>> = {
  bad_request: 'INVALID_ARGUMENT',
  unauthenticated: 'UNAUTHENTICATED',
  not_found: 'NOT_FOUND',
  too_large: 'INVALID_ARGUMENT',
  budget: 'RESOURCE_EXHAUSTED',
  internal: 'INTERNAL',
  upstream: 'UNAVAILABLE',
  unavailable: 'UNAVAILABLE',
};

export const PROVIDERS: Readonly<Record<ProviderName, Provider>> = Object.freeze({
  openai: {
    name: 'openai',
    label: 'OpenAI',
    secret: 'OPENAI_API_KEY',
    runKeyOf: (headers) => bearer(headers),
    authorize: (headers, key) => {
      headers['authorization'] = `Bearer ${key}`;
    },
    refusal: (why, message) => ({ status: STATUS[why], body: { error: { message, type: OPENAI_TYPES[why].type, param: null, code: OPENAI_TYPES[why].code } } }),
  },
  anthropic: {
    name: 'anthropic',
    label: 'Anthropic',
    secret: 'ANTHROPIC_API_KEY',
    runKeyOf: (headers) => single(headers, 'x-api-key') ?? bearer(headers),
    authorize: (headers, key) => {
      headers['x-api-key'] = key;
    },
    refusal: (why, message) => ({ status: STATUS[why], body: { type: 'error', error: { type: ANTHROPIC_TYPES[why], message } } }),
  },
  gemini: {
    name: 'gemini',
    label: 'Gemini',
    secret: 'GEMINI_API_KEY',
    runKeyOf: (headers, query) => single(headers, 'x-goog-api-key') ?? (query.get('key') || undefined) ?? bearer(headers),
    authorize: (headers, key) => {
      headers['x-goog-api-key'] = key;
    },
    refusal: (why, message) => ({ status: STATUS[why], body: { error: { code: STATUS[why], message, status: GEMINI_STATUSES[why] } } }),
  },
});
