import { setTimeout as sleep } from 'node:timers/promises';
import type { ApiClient, Execution } from '@paddock/testkit';
import { ms, sampled, since, type BenchContext, type Section } from '../section.js';

const FINAL = new Set(['completed', 'failed', 'cancelled']);
const JOB = { kind: 'shell', command: 'echo hi' } as const;
const EXPECTED = 'hi\n';
const TIMEOUT_MS = 60_000;

/** Polls an execution every `pollMs` until it is final; the answer that showed it final. */
export async function pollFinal(api: ApiClient, id: string, pollMs: number, timeoutMs = TIMEOUT_MS): Promise<Execution> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ex = await api.get(id);
    if (FINAL.has(ex.state)) return ex;
    if (Date.now() > deadline) throw new Error(`execution ${id} still ${ex.state} after ${timeoutMs} ms`);
    await sleep(pollMs);
  }
}

async function expectCompleted(api: ApiClient, ex: Execution): Promise<void> {
  if (ex.state !== 'completed') throw new Error(`execution ${ex.id} ended ${ex.state}: ${ex.error}`);
  const output = await api.logs(ex.id);
  if (output !== EXPECTED) throw new Error(`execution ${ex.id} wrote ${JSON.stringify(output)}, not ${JSON.stringify(EXPECTED)}`);
}

/**
 * POST, then at once the live log stream: ms from just before the POST to the first body byte of the
 * stream. The stream is read to its end and the execution waited for (untimed), so the next sample starts
 * on a quiet machine.
 */
async function firstOutput(ctx: BenchContext): Promise<number> {
  const api = ctx.paddock.admin;
  const t0 = performance.now();
  const { id } = await api.submit(JOB);
  const res = await fetch(`${api.url}/api/v1/executions/${id}/logs?follow=true`, { headers: { authorization: `Bearer ${api.token}` } });
  if (res.status !== 200 || !res.body) throw new Error(`following the output of ${id} answered ${res.status}: ${await res.text()}`);
  let first: number | undefined;
  const chunks: Buffer[] = [];
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (value.length === 0) continue;
    first ??= since(t0);
    chunks.push(Buffer.from(value));
  }
  const streamed = Buffer.concat(chunks).toString('utf8');
  if (first === undefined || streamed !== EXPECTED) throw new Error(`the live output of ${id} was ${JSON.stringify(streamed)}, not ${JSON.stringify(EXPECTED)}`);
  await expectCompleted(api, await pollFinal(api, id, 50));
  return first;
}

/** POST, then GET every `pollMs`: ms from just before the POST to the answer that says `completed`. */
async function completed(ctx: BenchContext): Promise<number> {
  const api = ctx.paddock.admin;
  const t0 = performance.now();
  const { id } = await api.submit(JOB);
  const final = await pollFinal(api, id, ctx.options.pollMs);
  const elapsed = since(t0);
  await expectCompleted(api, final);
  return elapsed;
}

/** One `echo` through the whole of Paddock, against a fresh container each time. */
export const cold: Section = {
  name: 'cold',
  async run(ctx) {
    const samples = await sampled(
      ctx,
      'cold_first_output, cold_completed',
      async () => ({ firstOutputMs: await firstOutput(ctx), completedMs: await completed(ctx) }),
      (s) => `${ms(s.firstOutputMs)} to first byte, ${ms(s.completedMs)} to completed`,
    );
    return [
      { name: 'cold_first_output', unit: 'ms', samples: samples.map((s) => s.firstOutputMs), baseline: 'raw_cold' },
      { name: 'cold_completed', unit: 'ms', samples: samples.map((s) => s.completedMs), baseline: 'raw_cold_completed' },
    ];
  },
};
