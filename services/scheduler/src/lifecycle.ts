import { context, ROOT_CONTEXT } from '@opentelemetry/api';
import { topics, type Bus } from '@paddock/bus';
import { unrecordedMetrics, type Logger, type PaddockMetrics } from '@paddock/telemetry';
import type { Claim, Job, JobStore, TransitionFields } from './jobStore.js';
import { isFinal, protoState, type JobState } from './states.js';
import { traceContextOf } from './traceContext.js';

/** Who decided that an execution is over. */
export type FinalCause = 'instance-exit' | 'scheduler';

/**
 * The lifecycle state machine: each transition is stored, then published on
 * paddock.v1.execution.<id>.state. A publish that fails is retried by `republish` (the row remembers what
 * was published), so no transition is lost to a NATS restart.
 */
export class Lifecycle {
  constructor(
    private readonly store: JobStore,
    private readonly bus: Bus,
    private readonly log: Logger,
    private readonly onFinal: (job: Job, cause: FinalCause) => void,
    private readonly metrics: PaddockMetrics = unrecordedMetrics(),
  ) {}

  /**
   * Moves an execution to `to` if the lifecycle allows it. `cause` says who decided a final state: the
   * broker reporting the instance's end, or the scheduler itself (whose decision the broker must then be told).
   */
  async move(executionId: string, to: JobState, fields: TransitionFields = {}, cause: FinalCause = 'scheduler'): Promise<Job | null> {
    const moved = await this.store.transition(executionId, to, fields);
    const { job, changed } = moved;
    if (!job) return null;
    if (moved.changed) this.counted(moved.job, moved.from);
    // A redelivered event finds the transition done: publish again in case the first publish was lost.
    if (changed || (job.state === to && job.publishedVersion < job.version)) await this.publish(job);
    if (changed) {
      this.log.info({ executionId, state: to, reason: job.reason || undefined, exitCode: job.exitCode ?? undefined }, 'execution state');
      if (isFinal(to)) this.onFinal(job, cause);
    }
    return job;
  }

  /**
   * Counts a transition that really changed the row (a redelivered event that finds it done counts
   * nothing), whichever code stored it: a move above, a request queued or refused, a claim.
   */
  counted(job: Job, from: JobState | null): void {
    this.metrics.executionTransitioned(job.state, from);
    // The start as the broker stamped it, from the first claim: relaunches after a restart count in.
    if (job.state === 'executing' && job.startedAtMs !== null && job.claimedAtMs !== null) {
      this.metrics.startPhaseTook('provisioning_to_executing', job.startedAtMs - job.claimedAtMs);
    }
  }

  /** Counts what a claim did: each job placed, how long it waited in the queue, and what was failed. */
  claimed(claim: Claim, nowMs = Date.now()): void {
    for (const job of claim.claimed) {
      this.counted(job, 'queued');
      // In the scheduler's queue (from the row being stored), and from the request the gateway accepted:
      // the difference is the time the request took to reach the scheduler (outbox, bus).
      this.metrics.queueWaited(claim.queuedForMs.get(job.executionId) ?? 0);
      this.metrics.startPhaseTook('queued_to_provisioning', nowMs - job.requestedAtMs);
    }
    for (const job of claim.unreadable) this.counted(job, 'queued');
  }

  async publish(job: Job): Promise<void> {
    try {
      // Each state event joins its own execution's trace, whatever work happens to publish it.
      const trace = traceContextOf(job) ?? ROOT_CONTEXT;
      await context.with(trace, () => this.bus.publish(
        topics.executionState,
        job.executionId,
        {
          executionId: job.executionId,
          ownerId: job.ownerId,
          state: protoState(job.state),
          version: job.version,
          atMs: Date.now(),
          ...(job.exitCode === null ? {} : { exitCode: job.exitCode }),
          reason: job.reason,
          brokerId: job.brokerId ?? '',
          startedAtMs: job.startedAtMs ?? 0,
          finishedAtMs: job.finishedAtMs ?? 0,
        },
        { msgId: `${job.executionId}.v${job.version}` },
      ));
      await this.store.markPublished(job.executionId, job.version);
    } catch (err) {
      this.log.warn({ err, executionId: job.executionId }, 'state not published yet; will retry');
    }
  }

  /** Publishes the current state of every job whose last transition did not reach the bus. */
  async republish(): Promise<void> {
    for (const job of await this.store.unpublished()) await this.publish(job);
  }
}
