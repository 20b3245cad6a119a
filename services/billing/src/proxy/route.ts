import type { ProviderName } from './upstreams.js';

/** The APIs whose calls are metered, named as LlmUsage.api names them. */
export type LlmApi = 'chat.completions' | 'responses' | 'messages' | 'generateContent' | 'streamGenerateContent';

export interface Route {
  readonly provider: ProviderName;
  /** The metered API; undefined for a call that costs nothing and is passed through (model lists, token counts). */
  readonly api: LlmApi | undefined;
  /** The path under the upstream's base URL. */
  readonly upstreamPath: string;
  /** The model the path names (Gemini's way); the others name it in the body. */
  readonly model: string | undefined;
}

/** What the proxy serves, for a 404 that says so. */
export const SERVED =
  'POST /openai/v1/chat/completions, POST /openai/v1/responses, GET /openai/v1/models, POST /anthropic/v1/messages, ' +
  'POST /anthropic/v1/messages/count_tokens, POST /gemini/v1beta/models/{model}:generateContent, :streamGenerateContent, :countTokens, GET /gemini/v1beta/models';

const PREFIX = /^\/(openai|anthropic|gemini)(\/.*)$/;
const OPENAI_MODEL = /^\/v1\/models(?:\/[A-Za-z0-9][A-Za-z0-9._:-]*)?$/;
const GEMINI_CALL = /^\/(v1|v1beta|v1alpha)\/models\/([A-Za-z0-9][A-Za-z0-9._-]*):(generateContent|streamGenerateContent|countTokens)$/;
const GEMINI_MODELS = /^\/(v1|v1beta|v1alpha)\/models(?:\/[A-Za-z0-9][A-Za-z0-9._-]*)?$/;

/**
 * The route of a request by its method and path (`/<provider>/<the provider's own path>`); for a path
 * that is not served, the provider it was meant for if the prefix names one (so that its 404 is in that
 * provider's shape). Only these shapes reach an upstream: the path forwarded is one of them.
 */
export function routeOf(method: string, pathname: string): Route | { readonly unknown: ProviderName | undefined } {
  const prefixed = PREFIX.exec(pathname);
  if (!prefixed) return { unknown: undefined };
  const provider = prefixed[1] as ProviderName;
  const path = prefixed[2]!;
  const route = (api: LlmApi | undefined, model?: string): Route => ({ provider, api, upstreamPath: path, model });
  if (provider === 'openai') {
    if (method === 'POST' && path === '/v1/chat/completions') return route('chat.completions');
    if (method === 'POST' && path === '/v1/responses') return route('responses');
    if (method === 'GET' && OPENAI_MODEL.test(path)) return route(undefined);
  } else if (provider === 'anthropic') {
    if (method === 'POST' && path === '/v1/messages') return route('messages');
    if (method === 'POST' && path === '/v1/messages/count_tokens') return route(undefined);
  } else {
    const call = GEMINI_CALL.exec(path);
    if (method === 'POST' && call) return route(call[3] === 'countTokens' ? undefined : (call[3] as LlmApi), call[2]);
    if (method === 'GET' && GEMINI_MODELS.test(path)) return route(undefined);
  }
  return { unknown: provider };
}
