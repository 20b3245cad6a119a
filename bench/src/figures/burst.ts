import { setTimeout as sleep } from 'node:timers/promises';
import type { ApiClient, Execution } from '@paddock/testkit';
import { runJob } from '../rawDocker.js';
import { ms, since, type BenchContext, type Figure, type Section } from '../section.js';
import { describeRss, readRss, rssFigures, type RssReading } from './memory.js';

const FINAL = new Set(['completed', 'failed', 'cancelled']);
/**
 * Polling the list of executions is how the bench sees the end of a burst. Every 100 ms is fine-grained
 * enough for a burst that takes seconds, while polling every 10 ms would take CPU from the jobs measured.
 */
const BURST_POLL_MS = 100;
/** The list endpoint's largest page. */
const PAGE = 500;
/** Logs fetched at once when checking the output of a finished burst. */
const CHECK_CONCURRENCY = 8;

interface BurstResult {
  readonly elapsedMs: number;
  readonly failures: string[];
}

const command = (i: number): string[] => ['/bin/sh', '-c', `echo ${i}`];

/** Runs `work(0..jobs-1)` with at most `concurrency` at once. */
async function pool(jobs: number, concurrency: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs) await work(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, jobs) }, worker));
}

/** `jobs` containers through dockerode, `capacity` at once, each created, attached, started, waited for and removed. */
async function rawBurst(ctx: BenchContext, jobs: number): Promise<BurstResult> {
  const failures: string[] = [];
  const t0 = performance.now();
  await pool(jobs, ctx.options.capacity, async (i) => {
    try {
      await runJob(ctx.docker, ctx.options.image, command(i), `${i}\n`, ctx.labels);
    } catch (err) {
      failures.push(`raw job ${i}: ${(err as Error).message}`);
    }
  });
  return { elapsedMs: since(t0), failures };
}

/** The executions with these ids as the list endpoint shows them (newest first: a burst is on the first pages). */
async function listed(api: ApiClient, ids: ReadonlySet<string>): Promise<Map<string, Execution>> {
  const found = new Map<string, Execution>();
  let cursor: string | null = null;
  do {
    const r = await api.request('GET', `/api/v1/executions?limit=${PAGE}${cursor ? `&cursor=${cursor}` : ''}`);
    if (r.status !== 200) throw new Error(`listing executions answered ${r.status}: ${JSON.stringify(r.body)}`);
    const page = r.body as { items: Execution[]; nextCursor: string | null };
    for (const ex of page.items) if (ids.has(ex.id)) found.set(ex.id, ex);
    cursor = page.nextCursor;
  } while (cursor !== null && found.size < ids.size);
  return found;
}

/**
 * `jobs` executions POSTed at once; ms from just before the first POST until a poll of the list shows every
 * one of them final. Then, untimed, each is checked: `completed`, exit code 0, and its output `N\n`.
 */
async function paddockBurst(ctx: BenchContext, jobs: number): Promise<BurstResult & { rss: RssReading }> {
  const api = ctx.paddock.admin;
  const failures: string[] = [];
  const t0 = performance.now();
  const submitted = await Promise.allSettled(Array.from({ length: jobs }, (_, i) => api.submit({ kind: 'shell', command: `echo ${i}` })));
  const numberOf = new Map<string, number>();
  submitted.forEach((s, i) => {
    if (s.status === 'fulfilled') numberOf.set(s.value.id, i);
    else failures.push(`job ${i} was not accepted: ${(s.reason as Error).message}`);
  });
  const ids = new Set(numberOf.keys());
  const deadline = Date.now() + 120_000 + 1_000 * jobs;
  let seen = new Map<string, Execution>();
  for (;;) {
    seen = await listed(api, ids);
    if (seen.size === ids.size && [...seen.values()].every((ex) => FINAL.has(ex.state))) break;
    if (Date.now() > deadline) break;
    await sleep(BURST_POLL_MS);
  }
  const elapsedMs = since(t0);
  const rss = await readRss(ctx.paddock);

  const finished: Execution[] = [];
  for (const id of ids) {
    const ex = seen.get(id);
    if (!ex) failures.push(`job ${numberOf.get(id)} (${id}) is missing from the list`);
    else if (!FINAL.has(ex.state)) failures.push(`job ${numberOf.get(id)} (${id}) still ${ex.state} at the deadline`);
    else if (ex.state !== 'completed' || ex.exitCode !== 0) failures.push(`job ${numberOf.get(id)} (${id}) ended ${ex.state}, exit code ${ex.exitCode}: ${ex.error}`);
    else finished.push(ex);
  }
  await pool(finished.length, CHECK_CONCURRENCY, async (k) => {
    const ex = finished[k]!;
    const expected = `${numberOf.get(ex.id)}\n`;
    try {
      const output = await api.logs(ex.id);
      if (output !== expected) failures.push(`job ${numberOf.get(ex.id)} (${ex.id}) wrote ${JSON.stringify(output)}, not ${JSON.stringify(expected)}`);
    } catch (err) {
      failures.push(`job ${numberOf.get(ex.id)} (${ex.id}): ${(err as Error).message}`);
    }
  });
  return { elapsedMs, failures, rss };
}

function report(ctx: BenchContext, what: string, jobs: number, result: BurstResult): void {
  ctx.progress(`${what}: ${jobs} jobs in ${ms(result.elapsedMs)} (${(jobs / (result.elapsedMs / 1000)).toFixed(1)} jobs/s)${result.failures.length ? `, ${result.failures.length} failed` : ''}`);
  for (const f of result.failures) ctx.fail(`${what}: ${f}`);
}

/**
 * Many short jobs at once: Paddock (all POSTed together, its broker running `capacity` at a time) against
 * dockerode doing the same containers with the same concurrency.
 */
export const burst: Section = {
  name: 'burst',
  async run(ctx) {
    const { burstJobs: jobs, burstRounds: rounds, capacity } = ctx.options;
    const warmJobs = Math.min(jobs, capacity);
    report(ctx, `raw_burst warm-up (not counted)`, warmJobs, await rawBurst(ctx, warmJobs));
    report(ctx, `burst warm-up (not counted)`, warmJobs, await paddockBurst(ctx, warmJobs));

    const raw: number[] = [];
    const paddock: number[] = [];
    const readings: RssReading[] = [];
    for (let round = 1; round <= rounds; round++) {
      const r = await rawBurst(ctx, jobs);
      report(ctx, `raw_burst ${round}/${rounds}`, jobs, r);
      raw.push(r.elapsedMs);
      const p = await paddockBurst(ctx, jobs);
      report(ctx, `burst ${round}/${rounds}`, jobs, p);
      ctx.progress(`rss_*_burst ${round}/${rounds}: ${describeRss(p.rss)}`);
      paddock.push(p.elapsedMs);
      readings.push(p.rss);
    }
    const perSecond = (elapsed: number[]): number[] => elapsed.map((e) => jobs / (e / 1000));
    const figures: Figure[] = [
      { name: 'raw_burst', unit: 'ms', samples: raw },
      { name: 'raw_burst_jobs_per_s', unit: 'jobs/s', samples: perSecond(raw) },
      { name: 'burst', unit: 'ms', samples: paddock, baseline: 'raw_burst' },
      { name: 'burst_jobs_per_s', unit: 'jobs/s', samples: perSecond(paddock), baseline: 'raw_burst_jobs_per_s' },
      ...rssFigures('burst', readings),
    ];
    return figures;
  },
};
