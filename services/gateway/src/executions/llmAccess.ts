import { createHash, randomBytes } from 'node:crypto';
import { LlmCredentials } from '@paddock/proto';
import type { LlmKey } from '@paddock/secrets';

/**
 * The environment names of providers' keys, and the provider each is for. Gemini's CLI reads either of its
 * two; GEMINI_API_KEY wins when both are given.
 */
export const PROVIDER_KEY_ENV = {
  OPENAI_API_KEY: 'openai',
  ANTHROPIC_API_KEY: 'anthropic',
  GEMINI_API_KEY: 'gemini',
  GOOGLE_API_KEY: 'gemini',
} as const;
export type ProviderKeyName = keyof typeof PROVIDER_KEY_ENV;
export const PROVIDER_KEY_NAMES = Object.keys(PROVIDER_KEY_ENV) as ProviderKeyName[];

/** Where agents' clients look for their provider: Paddock points them at the metering proxy, no request may. */
const BASE_URL_ENV = ['OPENAI_BASE_URL', 'ANTHROPIC_BASE_URL', 'GOOGLE_GEMINI_BASE_URL'] as const;
const PADDOCK_LLM_PREFIX = 'PADDOCK_LLM_';

/** Whether an environment name is one the metering proxy's wiring sets, which no request may set itself. */
export function isLlmWiringName(name: string): boolean {
  return (BASE_URL_ENV as readonly string[]).includes(name) || name.startsWith(PADDOCK_LLM_PREFIX);
}

/** The key an execution's LLM clients send to the metering proxy: it names the run, never a provider account. */
export function newRunLlmKey(): string {
  // 24 bytes are 32 base64url characters.
  return `plk_${randomBytes(24).toString('base64url')}`;
}

/** What the account keeps of the run key: its SHA-256, lowercase hex. */
export function runLlmKeySha256(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/**
 * The real keys by provider, from environments in order of precedence (the first that has a name wins);
 * an empty value is no key.
 */
export function providerKeys(sources: readonly Readonly<Record<string, string>>[]): Record<string, string> {
  const pick = (name: ProviderKeyName) => sources.map((env) => env[name]).find((value) => value !== undefined && value !== '');
  const keys: Record<string, string> = {};
  for (const name of PROVIDER_KEY_NAMES) {
    const provider = PROVIDER_KEY_ENV[name];
    const value = pick(name);
    if (value !== undefined && keys[provider] === undefined) keys[provider] = value;
  }
  return keys;
}

/** An environment without the providers' keys: they never reach a container. */
export function withoutProviderKeys(env: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !(name in PROVIDER_KEY_ENV)));
}

/**
 * What an execution's environment gets instead of provider keys: for each provider it has a key of
 * (`providers`: openai, anthropic, gemini), the run key where that provider's clients look for a key and the
 * metering proxy (`proxyUrl`, as the instance reaches it) where they look for the provider; and, always, the
 * proxy and the run key under Paddock's own names. A provider it has no key of is left unset, so that an
 * agent that picks its provider by the keys it finds (the task runtime) picks one that works.
 */
export function llmEnv(runKey: string, proxyUrl: string, providers: readonly string[]): Record<string, string> {
  const has = (provider: string) => providers.includes(provider);
  return {
    ...(has('openai') ? { OPENAI_API_KEY: runKey, OPENAI_BASE_URL: `${proxyUrl}/openai/v1` } : {}),
    ...(has('anthropic') ? { ANTHROPIC_API_KEY: runKey, ANTHROPIC_BASE_URL: `${proxyUrl}/anthropic` } : {}),
    ...(has('gemini') ? { GEMINI_API_KEY: runKey, GOOGLE_GEMINI_BASE_URL: `${proxyUrl}/gemini` } : {}),
    PADDOCK_LLM_URL: proxyUrl,
    PADDOCK_LLM_KEY: runKey,
  };
}

/**
 * The provider keys as billing's proxy opens them: `LlmCredentials`, protobuf, base64, sealed with the LLM
 * key and bound to the execution id (the associated data). Empty when there is no key at all.
 */
export function sealLlmCredentials(keys: Record<string, string>, key: LlmKey, executionId: string): Buffer {
  if (Object.keys(keys).length === 0) return Buffer.alloc(0);
  const encoded = Buffer.from(LlmCredentials.encode({ keys }).finish()).toString('base64');
  return key.seal(encoded, executionId);
}
