// The real benchmark, tiny: a real Paddock, real containers, so that the bench cannot rot between runs.
// Nothing here asserts a time; only that every figure is there and makes sense.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import type { Report } from '../src/report.js';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));
const N = 2;
const BURST = 10;
/** The terminal section types 5 keys per --n and runs its throughput command --n times (at most 5). */
const KEYS = 5 * N;
const FLOODS = Math.min(N, 5);
/** The ingress section makes 5 small GETs per --n and path. */
const GETS = 5 * N;
/** The metering proxy section makes 50 calls per --n, each way. */
const LLM_CALLS = 50 * N;

/**
 * Every figure and how many samples it has at --n 2 (a burst figure has one per round, an echo figure one
 * per keystroke, a latency figure of the ingress one per GET).
 */
const EXPECTED: Record<string, { n: number; unit: string; baseline?: string }> = {
  raw_cold: { n: N, unit: 'ms' },
  raw_cold_completed: { n: N, unit: 'ms' },
  raw_exec: { n: N, unit: 'ms' },
  cold_first_output: { n: N, unit: 'ms', baseline: 'raw_cold' },
  cold_completed: { n: N, unit: 'ms', baseline: 'raw_cold_completed' },
  rss_gateway_idle: { n: N, unit: 'MB' },
  rss_scheduler_idle: { n: N, unit: 'MB' },
  rss_broker_idle: { n: N, unit: 'MB' },
  raw_ssh_echo: { n: KEYS, unit: 'ms' },
  terminal_echo: { n: KEYS, unit: 'ms', baseline: 'raw_ssh_echo' },
  raw_ssh_throughput: { n: FLOODS, unit: 'MB/s' },
  terminal_throughput: { n: FLOODS, unit: 'MB/s', baseline: 'raw_ssh_throughput' },
  port_detected: { n: N, unit: 'ms' },
  port_routed: { n: N, unit: 'ms' },
  portdetect_idle_cpu: { n: 3, unit: '%' },
  relay_latency: { n: GETS, unit: 'ms' },
  ingress_latency: { n: GETS, unit: 'ms', baseline: 'relay_latency' },
  relay_throughput: { n: N, unit: 'MB/s' },
  ingress_throughput: { n: N, unit: 'MB/s', baseline: 'relay_throughput' },
  xds_push_ack: { n: N, unit: 'ms' },
  xds_route_config_mb: { n: N, unit: 'MB' },
  billing_ingest: { n: N, unit: 'events/s' },
  billing_rollup_project: { n: N, unit: 'ms' },
  billing_rollup_execution: { n: N, unit: 'ms' },
  llm_direct: { n: LLM_CALLS, unit: 'ms' },
  llm_proxied: { n: LLM_CALLS, unit: 'ms', baseline: 'llm_direct' },
  llm_proxy_added: { n: LLM_CALLS, unit: 'ms' },
  raw_burst: { n: 1, unit: 'ms' },
  raw_burst_jobs_per_s: { n: 1, unit: 'jobs/s' },
  burst: { n: 1, unit: 'ms', baseline: 'raw_burst' },
  burst_jobs_per_s: { n: 1, unit: 'jobs/s', baseline: 'raw_burst_jobs_per_s' },
  rss_gateway_burst: { n: 1, unit: 'MB' },
  rss_scheduler_burst: { n: 1, unit: 'MB' },
  rss_broker_burst: { n: 1, unit: 'MB' },
};

function run(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stderr }));
  });
}

test(`the bench at --n ${N} --burst ${BURST} writes every figure, with baselines and ratios`, async () => {
  const out = await mkdtemp(join(tmpdir(), 'paddock-bench-'));
  try {
    const { code, stderr } = await run(['--n', String(N), '--burst', String(BURST), '--burst-rounds', '1', '--idle-instances', '10', '--download-mb', '5', '--ledger-events', '20000', '--out', out]);
    assert.equal(code, 0, stderr);
    assert.match(stderr, new RegExp(`raw_cold, raw_cold_completed ${N}/${N}:`), 'progress says which figure and i/n');
    assert.match(stderr, /burst 1\/1: 10 jobs in/);
    assert.match(stderr, new RegExp(`terminal_echo ${KEYS}/${KEYS}: [0-9.]+ ms`));
    assert.match(stderr, new RegExp(`terminal_throughput ${FLOODS}/${FLOODS}: [0-9.]+ MB/s`));
    assert.match(stderr, new RegExp(`relay_latency/ingress_latency ${GETS}/${GETS}: relay [0-9.]+ ms, ingress [0-9.]+ ms`));
    assert.match(stderr, /ingress: 1 tunnel\(s\) and 1 ingress connection\(s\) carried every GET/, 'one keep-alive connection per path');
    assert.match(stderr, new RegExp(`xds_push_ack ${N}/${N}: [0-9.]+ ms \\(route configuration [0-9.]+ MB\\)`));

    const report = JSON.parse(await readFile(join(out, 'latest.json'), 'utf8')) as Report;
    const { machine } = report;
    assert.ok(machine.cpus > 0 && machine.memoryGb > 0);
    for (const key of ['cpuModel', 'kernel', 'node', 'docker', 'date'] as const) assert.ok(machine[key].length > 0, key);
    assert.ok(!Number.isNaN(Date.parse(machine.date)));
    assert.equal(report.failures, undefined);

    assert.deepEqual(Object.keys(report.figures).sort(), Object.keys(EXPECTED).sort());
    for (const [name, want] of Object.entries(EXPECTED)) {
      const f = report.figures[name]!;
      assert.equal(f.n, want.n, `${name}.n`);
      assert.equal(f.unit, want.unit, `${name}.unit`);
      // A difference of two timings (what the proxy adds) can come out below zero for one pair: only finite.
      const positive = !name.endsWith('_added');
      for (const v of [f.min, f.median, f.p95]) assert.ok(Number.isFinite(v) && (!positive || v > 0), `${name}: ${v}`);
      assert.ok(f.min <= f.median && f.median <= f.p95, `${name}: min ${f.min}, median ${f.median}, p95 ${f.p95}`);
      assert.equal(f.baseline, want.baseline, `${name}.baseline`);
      if (want.baseline === undefined) {
        assert.equal(f.ratio, undefined, `${name} has no ratio`);
      } else {
        const base = report.figures[want.baseline]!;
        assert.ok(f.ratio !== undefined && Number.isFinite(f.ratio) && f.ratio > 0, `${name}.ratio ${f.ratio}`);
        // The medians are reported to 0.01 and the ratio to 0.001: a sub-millisecond baseline makes that
        // rounding matter, so the ratio must lie within what the rounded medians allow.
        const [lo, hi] = [(f.median - 0.005) / (base.median + 0.005) - 0.0005, (f.median + 0.005) / (base.median - 0.005) + 0.0005];
        assert.ok(lo <= f.ratio && f.ratio <= hi, `${name}.ratio ${f.ratio} is median / baseline median (${f.median} / ${base.median})`);
      }
    }

    const markdown = await readFile(join(out, 'latest.md'), 'utf8');
    for (const name of Object.keys(EXPECTED)) assert.match(markdown, new RegExp(`^\\| ${name} \\|`, 'm'), name);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

test('a bad option is refused with the usage, before anything starts', async () => {
  const { code, stderr } = await run(['--n', '0']);
  assert.equal(code, 2);
  assert.match(stderr, /--n takes a whole number/);
  assert.match(stderr, /Usage:/);
});
