// The NDJSON of POST /api/v1/instances/{id}/exec: output comes in chunks cut anywhere, and a multibyte
// character cut in two must still arrive whole, on one line.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ExecLines } from '../src/instances/execLines.js';

const TEXT = 'héllo wörld ✓ 日本語 🚀 done\n';

function parse(ndjson: string): { stream?: string; data?: string; exitCode?: number }[] {
  return ndjson.trim().split('\n').map((line) => JSON.parse(line) as { stream?: string; data?: string; exitCode?: number });
}

test('a UTF-8 string cut into chunks at every byte arrives intact, with no half character on any line', () => {
  const bytes = Buffer.from(TEXT, 'utf8');
  for (const size of [1, 2, 3, 5, 7]) {
    const lines = new ExecLines('utf8');
    let out = '';
    // Interleaved with stderr, also cut mid-character: each stream keeps its own pieces.
    for (let i = 0; i < bytes.length; i += size) {
      out += lines.output('stdout', bytes.subarray(i, i + size));
      out += lines.output('stderr', bytes.subarray(i, i + size));
    }
    out += lines.end(0);
    const parsed = parse(out);
    for (const line of parsed) assert.ok(!line.data?.includes('\uFFFD'), `chunks of ${size}: ${JSON.stringify(line)}`);
    assert.equal(parsed.filter((l) => l.stream === 'stdout').map((l) => l.data).join(''), TEXT, `stdout in chunks of ${size}`);
    assert.equal(parsed.filter((l) => l.stream === 'stderr').map((l) => l.data).join(''), TEXT, `stderr in chunks of ${size}`);
    assert.deepEqual(parsed.at(-1), { exitCode: 0 });
  }
});

test('an incomplete character at the very end is not dropped silently, and base64 carries any bytes exactly', () => {
  const cut = Buffer.from('ok ✓', 'utf8').subarray(0, -1);
  const text = new ExecLines('utf8');
  const out = text.output('stdout', cut) + text.end(1);
  assert.deepEqual(parse(out), [{ stream: 'stdout', data: 'ok ' }, { stream: 'stdout', data: '\uFFFD' }, { exitCode: 1 }]);

  const binary = Buffer.from([0xff, 0x00, 0xe2, 0x9c, 0x93, 0x80]);
  const b64 = new ExecLines('base64');
  const lines = parse(b64.output('stdout', binary.subarray(0, 3)) + b64.output('stdout', binary.subarray(3)) + b64.end(0));
  assert.deepEqual(Buffer.concat(lines.filter((l) => l.stream).map((l) => Buffer.from(l.data!, 'base64'))), binary);
});
