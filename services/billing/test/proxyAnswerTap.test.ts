// How the metering proxy reads usage from answers as they pass: however the bytes are cut, whatever the line
// ends, compressed or not, the bytes reach the client unchanged (or without the one event dropped).
import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { AnswerTap, type AnswerFormat } from '../src/proxy/answerTap.js';
import { usageMeter, type MeterReading } from '../src/proxy/usageMeter.js';
import type { LlmApi } from '../src/proxy/route.js';

/** Passes `chunks` through a tap; returns what came out and what the meter read. */
async function tap(api: LlmApi, format: AnswerFormat, chunks: readonly (string | Buffer)[], opts: { encoding?: string; drop?: (data: string) => boolean } = {}): Promise<{ out: Buffer; reading: MeterReading }> {
  const meter = usageMeter(api);
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c, 'utf8') : c))),
    new AnswerTap({ format, meter, contentEncoding: opts.encoding, drop: opts.drop }),
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        out.push(chunk);
        done();
      },
    }),
  );
  return { out: Buffer.concat(out), reading: meter.reading() };
}

/** `text` cut into pieces of `size` bytes, so that events, lines and multi-byte characters are split. */
function cut(text: string | Buffer, size: number): Buffer[] {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  const pieces: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) pieces.push(bytes.subarray(i, i + size));
  return pieces;
}

const ANTHROPIC_STREAM = [
  'event: message_start',
  'data: {"type":"message_start","message":{"model":"claude-sonnet-4-5","usage":{"input_tokens":12,"cache_creation_input_tokens":30,"cache_read_input_tokens":4000,"output_tokens":1}}}',
  '',
  ': a comment line, then a ping',
  'event: ping',
  'data: {"type":"ping"}',
  '',
  'event: content_block_delta',
  'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"é \\"usage\\": {\\"output_tokens\\": 999} ✓"}}',
  '',
  'event: message_delta',
  'data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":77}}',
  '',
  'event: message_stop',
  'data: {"type":"message_stop"}',
  '',
  '',
].join('\n');

test('an SSE stream cut anywhere, with LF or CRLF line ends, passes unchanged and is read the same', async () => {
  for (const text of [ANTHROPIC_STREAM, ANTHROPIC_STREAM.replaceAll('\n', '\r\n')]) {
    for (const size of [1, 7, 64, text.length]) {
      const { out, reading } = await tap('messages', 'sse', cut(text, size));
      assert.equal(out.toString('utf8'), text);
      assert.deepEqual(reading, { model: 'claude-sonnet-4-5', tokens: { input: 12, output: 77, cacheRead: 4000, cacheWrite: 30 } }, `pieces of ${size}`);
    }
  }
});

test('a stream cut before its end counts what it had reported', async () => {
  const half = ANTHROPIC_STREAM.slice(0, ANTHROPIC_STREAM.indexOf('event: message_delta'));
  const { reading } = await tap('messages', 'sse', [half]);
  assert.deepEqual(reading.tokens, { input: 12, output: 1, cacheRead: 4000, cacheWrite: 30 });
});

test('a chat stream: the usage-only chunk is dropped when asked, everything else passes as it came', async () => {
  const chunk = (o: object) => `data: ${JSON.stringify(o)}\n\n`;
  const text =
    chunk({ model: 'gpt-4.1-2025-04-14', choices: [{ index: 0, delta: { content: 'hi' } }], usage: null }) +
    chunk({ model: 'gpt-4.1-2025-04-14', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], usage: null }) +
    chunk({ model: 'gpt-4.1-2025-04-14', choices: [], usage: { prompt_tokens: 5000, completion_tokens: 9, prompt_tokens_details: { cached_tokens: 4096 } } }) +
    'data: [DONE]\n\n';
  const expected = { model: 'gpt-4.1-2025-04-14', tokens: { input: 904, output: 9, cacheRead: 4096, cacheWrite: 0 } };
  const dropUsage = (data: string) => data.includes('"choices":[]');
  for (const size of [3, 50, text.length]) {
    const kept = await tap('chat.completions', 'sse', cut(text, size), { drop: dropUsage });
    assert.equal(kept.out.toString('utf8'), text.replace(/data: \{[^\n]*"choices":\[\][^\n]*\n\n/, ''));
    assert.deepEqual(kept.reading, expected);
    const all = await tap('chat.completions', 'sse', cut(text, size));
    assert.equal(all.out.toString('utf8'), text);
  }
});

test("Gemini's JSON-array stream: elements found across cuts, braces inside strings ignored, the last usage counts", async () => {
  const elements = [
    { candidates: [{ content: { parts: [{ text: 'a { tricky ] "text" \\ }' }] } }], usageMetadata: { promptTokenCount: 900, totalTokenCount: 900 }, modelVersion: 'gemini-2.5-flash' },
    { candidates: [{ content: { parts: [{ functionCall: { name: 'f', args: { nested: [{ deep: '}' }] } } }] } }], usageMetadata: { promptTokenCount: 900, totalTokenCount: 900 } },
    { candidates: [{ finishReason: 'STOP' }], usageMetadata: { promptTokenCount: 900, cachedContentTokenCount: 512, candidatesTokenCount: 40, thoughtsTokenCount: 60, toolUsePromptTokenCount: 8 } },
  ];
  const text = `[${elements.map((e) => JSON.stringify(e)).join(',\r\n')}]`;
  for (const size of [1, 5, 100, text.length]) {
    const { out, reading } = await tap('streamGenerateContent', 'json-array', cut(text, size));
    assert.equal(out.toString('utf8'), text);
    assert.deepEqual(reading, { model: 'gemini-2.5-flash', tokens: { input: 396, output: 100, cacheRead: 512, cacheWrite: 0 } }, `pieces of ${size}`);
  }
});

test('one JSON answer is read whole; a compressed one passes compressed and is read decoded', async () => {
  const answer = JSON.stringify({ object: 'response', model: 'gpt-5', usage: { input_tokens: 2000, input_tokens_details: { cached_tokens: 1500 }, output_tokens: 33, output_tokens_details: { reasoning_tokens: 20 } } });
  const expected = { model: 'gpt-5', tokens: { input: 500, output: 33, cacheRead: 1500, cacheWrite: 0 } };
  const plain = await tap('responses', 'json', cut(answer, 11));
  assert.equal(plain.out.toString('utf8'), answer);
  assert.deepEqual(plain.reading, expected);
  const gzipped = gzipSync(answer);
  const compressed = await tap('responses', 'json', cut(gzipped, 9), { encoding: 'gzip' });
  assert.deepEqual(compressed.out, gzipped);
  assert.deepEqual(compressed.reading, expected);
  const notJson = await tap('responses', 'json', ['<html>Bad gateway</html>']);
  assert.deepEqual(notJson.reading, { model: undefined, tokens: { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 } });
});

test('Responses events: the usage of response.completed, or of response.incomplete for an answer cut by max_output_tokens', async () => {
  for (const last of ['response.completed', 'response.incomplete']) {
    const text = [
      `event: response.created\ndata: {"type":"response.created","response":{"model":"o4-mini","usage":null}}\n\n`,
      `event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"the \\"response\\": x"}\n\n`,
      `event: ${last}\ndata: {"type":"${last}","response":{"model":"o4-mini-2025-04-16","usage":{"input_tokens":70,"input_tokens_details":{"cached_tokens":0},"output_tokens":300}}}\n\n`,
    ].join('');
    const { reading } = await tap('responses', 'sse', cut(text, 13));
    assert.deepEqual(reading, { model: 'o4-mini-2025-04-16', tokens: { input: 70, output: 300, cacheRead: 0, cacheWrite: 0 } });
  }
});
