// A small round of the chaos run, for real: a Paddock of its own, 20 mixed executions, one SIGKILL of each
// part (gateway, scheduler, broker, nats-server, PostgreSQL). Nothing may be lost, duplicated, wrong or
// left behind; every killed part must come back.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import type { ChaosReport } from '../src/chaos/chaosReport.js';
import { PARTS } from '../src/chaos/parts.js';

const MAIN = fileURLToPath(new URL('../src/chaos/main.js', import.meta.url));
const EXECUTIONS = 20;
const KILLS = PARTS.length;

function run(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stderr }));
  });
}

test(`a small chaos round: ${EXECUTIONS} executions, one kill -9 of each part, nothing lost, duplicated, wrong or orphaned`, { timeout: 300_000 }, async () => {
  const out = await mkdtemp(join(tmpdir(), 'paddock-chaos-test-'));
  try {
    const { code, stderr } = await run([
      '--executions', String(EXECUTIONS),
      '--kills', String(KILLS),
      '--kill-every-ms', '3000',
      '--back-within-ms', '20000',
      '--settle-timeout-ms', '60000',
      '--out', out,
    ]);
    const report = JSON.parse(await readFile(join(out, 'chaos.json'), 'utf8').catch(() => 'null')) as ChaosReport | null;
    assert.ok(report, `no chaos.json was written:\n${stderr}`);
    const bad = [
      `seed ${report.settings.seed}; logs kept in ${report.logsKeptIn ?? '(none)'}`,
      ...report.bad.map((b) => `${b.id} (${b.kind}): ${b.problems.map((p) => `${p.category}: ${p.why}`).join('; ')}`),
    ].join('\n');

    assert.equal(report.kills.total, KILLS, stderr);
    for (const part of PARTS) assert.equal(report.kills.byPart[part].kills, 1, `${part} is killed once in a round of ${KILLS}`);
    assert.deepEqual(report.notBack, [], 'every killed part is running again');
    assert.deepEqual(report.executions.unaccepted, [], 'every submission is accepted, retried while Paddock was down');
    assert.equal(report.executions.accepted, EXECUTIONS);
    assert.deepEqual(report.runProblems, []);
    assert.deepEqual(report.counts, { lost: 0, duplicated: 0, wrong: 0, orphaned: 0 }, bad);
    assert.equal(report.passed, true);
    assert.equal(code, 0, stderr);

    const markdown = await readFile(join(out, 'chaos.md'), 'utf8');
    assert.match(markdown, /\*\*Passed\*\*: lost 0, duplicated 0, wrong 0, orphaned 0/);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

test('a bad option is refused with the usage, before anything starts', async () => {
  const { code, stderr } = await run(['--kills', 'many']);
  assert.equal(code, 2);
  assert.match(stderr, /--kills takes a whole number/);
  assert.match(stderr, /Usage:/);
});
