import { ConfigError } from '@paddock/errors';

/** Where the metering proxy sends each provider's calls: the base its API paths (`/v1/...`, `/v1beta/...`) go under. */
export interface Upstreams {
  readonly openai: URL;
  readonly anthropic: URL;
  readonly gemini: URL;
}

export type ProviderName = keyof Upstreams;

export const PROVIDER_NAMES: readonly ProviderName[] = Object.freeze(['openai', 'anthropic', 'gemini']);

const REAL: Readonly<Record<ProviderName, string>> = Object.freeze({
  openai: 'https://api.openai.com',
  anthropic: 'https://api.anthropic.com',
  gemini: 'https://generativelanguage.googleapis.com',
});

/**
 * The upstreams from a setting such as `PADDOCK_LLM_UPSTREAMS`: `provider=url` entries separated by commas,
 * each replacing that provider's real API (a provider not named keeps it; '' keeps all three). A URL is
 * http(s), with an optional base path (a gateway in front of the provider) and no credentials, query or
 * fragment. Rejected with a ConfigError that names the entry.
 */
export function parseUpstreams(setting: string, value: string): Upstreams {
  const chosen: Partial<Record<ProviderName, URL>> = {};
  for (const entry of value.split(',').map((e) => e.trim()).filter((e) => e !== '')) {
    const eq = entry.indexOf('=');
    const name = eq > 0 ? entry.slice(0, eq).trim() : '';
    if (!isProvider(name)) throw new ConfigError(setting, `"${entry}" is not provider=url with a provider among ${PROVIDER_NAMES.join(', ')}`);
    if (chosen[name]) throw new ConfigError(setting, `${name} is given twice`);
    chosen[name] = upstreamUrl(setting, name, entry.slice(eq + 1).trim());
  }
  return Object.freeze({
    openai: chosen.openai ?? new URL(REAL.openai),
    anthropic: chosen.anthropic ?? new URL(REAL.anthropic),
    gemini: chosen.gemini ?? new URL(REAL.gemini),
  });
}

function isProvider(name: string): name is ProviderName {
  return (PROVIDER_NAMES as readonly string[]).includes(name);
}

function upstreamUrl(setting: string, name: ProviderName, raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(setting, `${name}=${raw}: not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ConfigError(setting, `${name}=${raw}: only http and https upstreams are supported`);
  if (url.username !== '' || url.password !== '') throw new ConfigError(setting, `${name}=${raw}: an upstream URL holds no credentials (the proxy sends the run's provider key)`);
  if (url.search !== '' || url.hash !== '') throw new ConfigError(setting, `${name}=${raw}: an upstream URL has no query or fragment`);
  // The API's own paths are appended to it.
  url.pathname = url.pathname.replace(/\/+$/, '');
  return url;
}
