import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MachineInfo } from '../src/machine.js';
import { buildReport, renderMarkdown } from '../src/report.js';
import type { BenchOptions } from '../src/section.js';

const machine: MachineInfo = { cpus: 2, cpuModel: 'Test CPU', memoryGb: 8, kernel: '6.1.0', node: 'v20.0.0', docker: '20.10.24', date: '2026-01-01T00:00:00.000Z' };
const settings: BenchOptions = { samples: 3, burstJobs: 10, burstRounds: 1, capacity: 16, pollMs: 10, idleInstances: 200, xdsInstances: 1000, downloadMb: 50, ledgerEvents: 1000, image: 'paddock/base:latest' };

test('a Paddock figure gets its baseline and the ratio of the medians; a raw figure gets neither', () => {
  const report = buildReport(machine, settings, [
    { name: 'raw_x', unit: 'ms', samples: [100, 200, 300] },
    { name: 'x', unit: 'ms', samples: [250, 150, 350], baseline: 'raw_x' },
  ]);
  assert.deepEqual(report.figures['raw_x'], { unit: 'ms', min: 100, median: 200, p95: 300, n: 3 });
  assert.deepEqual(report.figures['x'], { unit: 'ms', min: 150, median: 250, p95: 350, n: 3, baseline: 'raw_x', ratio: 1.25 });
  assert.equal(report.failures, undefined);
});

test('a baseline the run did not measure, or a figure measured twice, is an error', () => {
  assert.throws(() => buildReport(machine, settings, [{ name: 'x', unit: 'ms', samples: [1], baseline: 'raw_x' }]), /raw_x/);
  assert.throws(
    () => buildReport(machine, settings, [{ name: 'x', unit: 'ms', samples: [1] }, { name: 'x', unit: 'ms', samples: [2] }]),
    /twice/,
  );
});

test('the markdown has the machine, a row per figure with its ratio, and the failures', () => {
  const report = buildReport(
    machine,
    settings,
    [
      { name: 'raw_x', unit: 'jobs/s', samples: [10] },
      { name: 'x', unit: 'jobs/s', samples: [5], baseline: 'raw_x' },
    ],
    ['job 3 ended failed'],
  );
  const md = renderMarkdown(report);
  assert.match(md, /2 × Test CPU/);
  assert.match(md, /\| raw_x \| jobs\/s \| 1 \| 10\.0 \| 10\.0 \| 10\.0 \|  \|  \|/);
  assert.match(md, /\| x \| jobs\/s \| 1 \| 5\.0 \| 5\.0 \| 5\.0 \| raw_x \| 0\.50 \|/);
  assert.match(md, /## Failures \(1\)\n\n- job 3 ended failed/);
});
