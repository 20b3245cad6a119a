// The generated code is never edited by hand: regenerating it from the .proto files changes nothing.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const PROTO_DIR = fileURLToPath(new URL('../../', import.meta.url));

async function files(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile()).map((e) => relative(dir, join(e.parentPath, e.name))).sort();
}

test('proto/src/gen is exactly what generate.sh makes from the .proto files', async () => {
  const out = await mkdtemp(join(tmpdir(), 'paddock-proto-'));
  try {
    execFileSync('bash', [join(PROTO_DIR, 'generate.sh'), out], { stdio: 'pipe' });
    const committed = join(PROTO_DIR, 'src', 'gen');
    assert.deepEqual(await files(out), await files(committed));
    for (const file of await files(out)) {
      assert.equal(await readFile(join(out, file), 'utf8'), await readFile(join(committed, file), 'utf8'), `${file} differs: run npm run proto`);
    }
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
