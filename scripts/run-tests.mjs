#!/usr/bin/env node
// Runs every compiled test file of every workspace (…/dist/test/**/*.test.js) in one node:test run.
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const workspaces = ['libs', 'services'].flatMap((d) => readdirSync(join(root, d)).map((p) => join(d, p))).concat(['proto', 'images/task', 'cli', 'bench', 'test/e2e']);

function testFiles(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return testFiles(p);
    return name.endsWith('.test.js') ? [p] : [];
  });
}

const only = process.argv.slice(2);
const files = workspaces
  .flatMap((w) => testFiles(join(root, w, 'dist', 'test')))
  .filter((f) => only.length === 0 || only.some((o) => relative(root, f).includes(o)))
  .sort();
if (files.length === 0) {
  console.error('no test files found: was the build run?');
  process.exit(1);
}
console.error(`running ${files.length} test files`);
const concurrency = process.env.PADDOCK_TEST_CONCURRENCY ?? '2';
const r = spawnSync(process.execPath, ['--test', `--test-concurrency=${concurrency}`, '--test-timeout=600000', ...files], {
  stdio: 'inherit',
  cwd: root,
});
process.exit(r.status ?? 1);
