import { setTimeout as sleep } from 'node:timers/promises';
import { FINAL_STATES, GaveUpError, RefusedError, type ChaosClient } from './client.js';
import { END, START, type Job } from './jobs.js';

/** What the client side of one job did. */
export type FlowResult =
  | {
      readonly accepted: true;
      readonly job: Job;
      readonly id: string;
      /** When the 201 came, ISO 8601. */
      readonly acceptedAt: string;
      readonly attempts: number;
      readonly ambiguousAttempts: number;
      /** Things the client saw on the way that the checks should know (a cancel answered 409, say). */
      readonly notes: readonly string[];
    }
  | { readonly accepted: false; readonly job: Job; readonly why: string };

const WATCH_POLL_MS = 500;

/**
 * One job as a client runs it under chaos: submits it (retrying while Paddock is down), then cancels it
 * when its kind says so, once its output shows the line it waits for. Waiting for the end is not done
 * here: the run polls all executions at once.
 */
export async function runFlow(client: ChaosClient, job: Job, submitAtMs: number, deadlineMs: number): Promise<FlowResult> {
  await sleep(Math.max(0, submitAtMs - Date.now()));
  let id: string;
  let acceptedAt: string;
  let attempts: number;
  let ambiguousAttempts: number;
  try {
    const submitted = await client.submit(job.request, deadlineMs);
    acceptedAt = new Date().toISOString();
    ({ id } = submitted.execution);
    ({ attempts, ambiguousAttempts } = submitted);
  } catch (err) {
    if (err instanceof GaveUpError || err instanceof RefusedError) return { accepted: false, job, why: err.message };
    throw err;
  }
  const notes: string[] = [];
  try {
    if (job.kind === 'cancelQueued') {
      await cancel(client, id, deadlineMs, notes);
    } else if (job.kind === 'cancelRunning' || job.kind === 'service') {
      const line = job.kind === 'cancelRunning' ? `${START} ${job.nonce} ` : `${END} ${job.nonce}`;
      const seen = await waitForLine(client, id, line, deadlineMs);
      if (seen === 'shown') {
        await sleep(job.cancelDelayMs);
        await cancel(client, id, deadlineMs, notes);
      } else {
        notes.push(`the client did not cancel it: ${seen === 'ended' ? 'it ended' : 'the deadline passed'} before "${line.trim()}" showed in its output`);
      }
    }
  } catch (err) {
    if (!(err instanceof GaveUpError || err instanceof RefusedError)) throw err;
    notes.push(`the client gave up: ${err.message}`);
  }
  return { accepted: true, job, id, acceptedAt, attempts, ambiguousAttempts, notes };
}

async function cancel(client: ChaosClient, id: string, deadlineMs: number, notes: string[]): Promise<void> {
  const answer = await client.cancel(id, deadlineMs);
  if (answer.status === 409) notes.push(`cancel answered 409 (${JSON.stringify(answer.body)})`);
}

async function waitForLine(client: ChaosClient, id: string, line: string, deadlineMs: number): Promise<'shown' | 'ended' | 'deadline'> {
  for (let i = 0; Date.now() < deadlineMs; i++) {
    if ((await client.logs(id, deadlineMs)).includes(line)) return 'shown';
    if (i % 4 === 3) {
      const view = await client.get(id, deadlineMs);
      if (view === null || FINAL_STATES.includes(view.state)) return 'ended';
    }
    await sleep(WATCH_POLL_MS);
  }
  return 'deadline';
}
