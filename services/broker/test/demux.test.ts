import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { OutputStream } from '@paddock/proto';
import { skipPublished } from '../src/output.js';
import { demuxFrames, DockerDemuxer } from '../src/providers/docker/demux.js';

function frame(type: 1 | 2, payload: string | Buffer): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const header = Buffer.alloc(8);
  header[0] = type;
  header.writeUInt32BE(data.length, 4);
  return Buffer.concat([header, data]);
}

function decode(chunks: Buffer[]): Array<[OutputStream, string]> {
  const got: Array<[OutputStream, Buffer]> = [];
  const demux = new DockerDemuxer((s, d) => got.push([s, Buffer.from(d)]));
  for (const c of chunks) demux.push(c);
  return got.map(([s, d]) => [s, d.toString('utf8')]);
}

const frames = [frame(1, 'out one\n'), frame(2, 'err one\n'), frame(1, ''), frame(1, 'ünïcödé\n'), frame(2, 'x'.repeat(70_000))];
const whole = Buffer.concat(frames);
const expected: Array<[OutputStream, string]> = [
  [OutputStream.OUTPUT_STREAM_STDOUT, 'out one\n'],
  [OutputStream.OUTPUT_STREAM_STDERR, 'err one\n'],
  [OutputStream.OUTPUT_STREAM_STDOUT, ''],
  [OutputStream.OUTPUT_STREAM_STDOUT, 'ünïcödé\n'],
  [OutputStream.OUTPUT_STREAM_STDERR, 'x'.repeat(70_000)],
];

test('whole frames in one read are split into stdout and stderr', () => {
  assert.deepEqual(decode([whole]), expected);
});

test('frames split at any byte, inside headers and payloads, decode the same', () => {
  const small = Buffer.concat(frames.slice(0, 4));
  for (let at = 1; at < small.length; at++) {
    assert.deepEqual(decode([small.subarray(0, at), small.subarray(at)]), expected.slice(0, 4), `split at ${at}`);
  }
});

test('a stream fed one byte at a time decodes the same', () => {
  const small = Buffer.concat(frames.slice(0, 4));
  assert.deepEqual(decode([...small].map((b) => Buffer.from([b]))), expected.slice(0, 4));
});

test('random chunking of a large stream decodes the same, and a reader reusing its buffer does not corrupt it', () => {
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let round = 0; round < 20; round++) {
    const got: Array<[OutputStream, Buffer]> = [];
    const demux = new DockerDemuxer((s, d) => got.push([s, Buffer.from(d)]));
    const scratch = Buffer.alloc(whole.length);
    for (let at = 0; at < whole.length; ) {
      const n = Math.max(1, Math.floor(rand() * 9000));
      const len = whole.copy(scratch, 0, at, at + n);
      demux.push(scratch.subarray(0, len));
      at += len;
    }
    assert.deepEqual(got.map(([s, d]) => [s, d.toString('utf8')]), expected, `round ${round}`);
  }
});

test('nothing is emitted for an incomplete frame until the rest arrives', () => {
  const got: string[] = [];
  const demux = new DockerDemuxer((_s, d) => got.push(d.toString()));
  const f = frame(1, 'hello');
  demux.push(f.subarray(0, 10));
  assert.deepEqual(got, []);
  demux.push(f.subarray(10));
  assert.deepEqual(got, ['hello']);
});

test('a log read from the start skips, per stream, exactly the bytes published before', async () => {
  const got: string[] = [];
  const log = Buffer.concat([frame(1, 'line-1\n'), frame(2, 'e-1\n'), frame(1, 'line-2\n'), frame(2, 'e-2\n'), frame(1, 'line-3\n')]);
  // Split across reads at awkward places, as a socket delivers it.
  const reads = [log.subarray(0, 5), log.subarray(5, 21), log.subarray(21)];
  for await (const f of skipPublished({ stdout: 8, stderr: 4 }, demuxFrames(Readable.from(reads)))) {
    got.push(`${f.stream === OutputStream.OUTPUT_STREAM_STDERR ? 'err' : 'out'}:${f.data.toString()}`);
  }
  // stdout: 'line-1\n' (7) is skipped whole, then 1 byte of 'line-2\n'; stderr: 'e-1\n' (4) whole.
  assert.deepEqual(got, ['out:ine-2\n', 'err:e-2\n', 'out:line-3\n']);
});

test('frames keep their bytes: a multibyte character split across reads arrives whole once the frames are joined', async () => {
  const text = '€uro – ünïcödé ✓ '.repeat(500);
  const log = frame(1, Buffer.from(text, 'utf8'));
  const reads: Buffer[] = [];
  // Reads of 7 bytes cut most characters in half.
  for (let i = 0; i < log.length; i += 7) reads.push(log.subarray(i, i + 7));
  const parts: Buffer[] = [];
  for await (const f of demuxFrames(Readable.from(reads))) parts.push(f.data);
  assert.equal(Buffer.concat(parts).toString('utf8'), text);
});
