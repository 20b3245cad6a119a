// Building a missing runtime image on demand: which images have a recipe, progress, one build at a time.
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ImageBuilder } from '../src/providers/docker/imageBuilder.js';

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'paddock-images-'));
  // Stand-in recipes: they record each run and print progress the way the real ones do (with colour).
  for (const [name, body] of <[string, string][]>[
    ['base', 'echo base'],
    ['task', `echo run >> "${dir}/task.runs"; printf '\\033[1m[image task]\\033[0m step one\\n'; sleep 0.3; echo done >&2`],
    ['codex', 'echo "npm install failed" >&2; exit 1'],
  ]) {
    await mkdir(join(dir, name));
    await writeFile(join(dir, name, 'build.sh'), `#!/usr/bin/env bash\n${body}\n`);
    await chmod(join(dir, name, 'build.sh'), 0o755);
  }
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test("only Paddock's own images have a recipe, and only when its build.sh is there", () => {
  const images = new ImageBuilder(dir);
  assert.equal(images.recipeFor('paddock/task:latest'), 'task');
  assert.equal(images.recipeFor('paddock/task'), 'task');
  assert.equal(images.recipeFor('paddock/base:latest'), 'base');
  assert.equal(images.recipeFor('paddock/claude-code:latest'), undefined, 'a runtime without build.sh here');
  assert.equal(images.recipeFor('paddock/task:v2'), undefined);
  assert.equal(images.recipeFor('ubuntu:24.04'), undefined);
});

test('a build streams its lines without colour; builds of one image at once share one run', async () => {
  const images = new ImageBuilder(dir);
  const first: string[] = [];
  const second: string[] = [];
  await Promise.all([images.build('task', (l) => first.push(l)), images.build('task', (l) => second.push(l))]);
  assert.deepEqual(first.sort(), ['[image task] step one', 'done'].sort());
  assert.deepEqual(second, ['another execution is building this image; waiting for it']);
  assert.equal((await readFile(join(dir, 'task.runs'), 'utf8')).trim().split('\n').length, 1);
  await images.build('task', () => {});
  assert.equal((await readFile(join(dir, 'task.runs'), 'utf8')).trim().split('\n').length, 2, 'a later build runs again');
});

test('a failed build rejects with the end of its output', async () => {
  const images = new ImageBuilder(dir);
  await assert.rejects(images.build('codex', () => {}), /building image codex failed \(exit status 1\): npm install failed/);
});
