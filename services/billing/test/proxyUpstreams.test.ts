// PADDOCK_LLM_UPSTREAMS: where the metering proxy sends each provider's calls.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from '@paddock/errors';
import { parseUpstreams } from '../src/proxy/upstreams.js';

test('empty means the providers themselves; an entry replaces its provider only, a base path kept', () => {
  const real = parseUpstreams('PADDOCK_LLM_UPSTREAMS', '');
  assert.deepEqual([real.openai.href, real.anthropic.href, real.gemini.href], ['https://api.openai.com/', 'https://api.anthropic.com/', 'https://generativelanguage.googleapis.com/']);
  const some = parseUpstreams('PADDOCK_LLM_UPSTREAMS', ' openai=http://127.0.0.1:8080 , gemini=https://gw.example.com/google/ ');
  assert.equal(some.openai.href, 'http://127.0.0.1:8080/');
  assert.equal(some.anthropic.href, 'https://api.anthropic.com/');
  assert.equal(some.gemini.pathname, '/google', 'a trailing slash is dropped: API paths are appended');
});

test('a malformed entry is a ConfigError naming the setting and the entry', () => {
  for (const [value, message] of [
    ['mistral=https://api.mistral.ai', /"mistral=https:\/\/api\.mistral\.ai" is not provider=url/],
    ['https://api.openai.com', /is not provider=url/],
    ['openai=not a url', /openai=not a url: not a URL/],
    ['openai=ftp://example.com', /only http and https/],
    ['openai=https://user:pw@example.com', /no credentials/],
    ['gemini=https://example.com/?key=x', /no query or fragment/],
    ['openai=http://a,openai=http://b', /openai is given twice/],
  ] as const) {
    assert.throws(
      () => parseUpstreams('PADDOCK_LLM_UPSTREAMS', value),
      (err: unknown) => err instanceof ConfigError && err.setting === 'PADDOCK_LLM_UPSTREAMS' && message.test(err.message),
      value,
    );
  }
});
