import { context, ROOT_CONTEXT } from '@opentelemetry/api';
import type { ServiceError } from '@grpc/grpc-js';
import { ExecutionKind } from '@paddock/proto';
import type { Logger, PaddockMetrics } from '@paddock/telemetry';
import { BrokerUnknownError, isRetryable, type BrokerRegistry } from './brokers.js';
import type { SchedulerConfig } from './config.js';
import { errorKind } from './errorKind.js';
import { unreadableReason, type Job, type JobStore } from './jobStore.js';
import type { Lifecycle } from './lifecycle.js';
import { traceContextOf } from './traceContext.js';

const LAUNCH_TIMEOUT_MS = 60_000;
const AGENT_LAUNCH_TIMEOUT_MS = 20 * 60_000;

/**
 * Admission and placement: takes queued executions in request order, within each owner's limit, onto the
 * brokers with free capacity, and launches them. One round at a time; a kick during a round runs another.
 */
export class Dispatcher {
  private busy = false;
  private again = false;
  private stopped = false;
  private readonly retries = new Map<string, NodeJS.Timeout>();
  private readonly launching = new Set<string>();

  constructor(
    private readonly store: JobStore,
    private readonly lifecycle: Lifecycle,
    private readonly brokers: BrokerRegistry,
    private readonly config: SchedulerConfig,
    private readonly log: Logger,
    private readonly metrics: PaddockMetrics,
  ) {}

  kick(): void {
    if (this.stopped) return;
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    // A round serves many executions: it must not run inside the trace of whichever one kicked it.
    void context.with(ROOT_CONTEXT, () => this.loop());
  }

  private async loop(): Promise<void> {
    try {
      do {
        this.again = false;
        await this.round();
      } while (this.again && !this.stopped);
    } catch (err) {
      this.metrics.errorOccurred(errorKind(err));
      this.log.error({ err }, 'dispatch round failed; retrying');
      setTimeout(() => this.kick(), 1000).unref();
    } finally {
      this.busy = false;
    }
  }

  private async round(): Promise<void> {
    const brokers = this.brokers.available();
    if (brokers.length === 0) return;
    const active = await this.store.activeByBroker();
    // What a broker holds and what the scheduler placed there overlap, and either may know of executions
    // the other does not yet (a launch in flight; an instance still ending): count their union.
    const free = new Map(
      brokers.map((b) => {
        const taken = new Set([...b.executionIds, ...(active.get(b.brokerId) ?? [])]);
        return [b.brokerId, b.capacity - taken.size];
      }),
    );
    const slots = [...free.values()].reduce((a, n) => a + Math.max(0, n), 0);
    if (slots <= 0) return;
    const place = (): string | null => {
      let best: string | null = null;
      let bestFree = 0;
      for (const [id, n] of free) if (n > bestFree) [best, bestFree] = [id, n];
      if (best) free.set(best, bestFree - 1);
      return best;
    };
    const claim = await this.store.claim(slots, this.config.maxRunningPerOwner, place);
    this.lifecycle.claimed(claim);
    const { claimed, overLimit, unreadable } = claim;
    for (const job of unreadable) {
      this.log.error({ executionId: job.executionId, specError: job.specError }, 'stored spec cannot be decoded; execution failed');
      await this.lifecycle.publish(job);
    }
    if (this.config.overLimit === 'reject') {
      for (const job of overLimit) {
        await this.lifecycle.move(job.executionId, 'failed', {
          reason: `rejected: its owner already has ${this.config.maxRunningPerOwner} executions running`,
          finishedAtMs: Date.now(),
        });
      }
    }
    await Promise.all(claimed.map((job) => this.lifecycle.publish(job)));
    for (const job of claimed) void this.launch(job).catch((err: unknown) => this.log.warn({ err, executionId: job.executionId }, 'launch failed; the reconciler tries again'));
    if (claimed.length === slots || unreadable.length > 0) this.again = true;
  }

  /** True while a launch of the execution is in flight here or a retry of it is waiting. */
  pending(executionId: string): boolean {
    return this.launching.has(executionId) || this.retries.has(executionId);
  }

  /** Launches again what is still provisioning on a broker that has just (re)appeared. */
  async brokerReturned(brokerId: string): Promise<void> {
    for (const job of await this.store.provisioningOn(brokerId)) {
      if (this.pending(job.executionId)) continue;
      void this.launch(job).catch((err: unknown) => this.log.warn({ err, executionId: job.executionId }, 'launch failed; the reconciler tries again'));
    }
  }

  /** Launches the job again if it still waits for its launch (the broker's Launch is idempotent). */
  async relaunch(executionId: string): Promise<void> {
    const job = await this.store.get(executionId);
    if (job?.state === 'provisioning') await this.launch(job);
  }

  /** Launches (or re-launches: the broker is idempotent) a job claimed for a broker. */
  async launch(job: Job): Promise<void> {
    if (this.launching.has(job.executionId) || this.stopped) return;
    const { executionId } = job;
    if (job.cancelRequested) {
      await this.lifecycle.move(executionId, 'cancelled', { reason: 'cancelled before it started', finishedAtMs: Date.now() });
      return;
    }
    if (job.specError !== null) {
      await this.lifecycle.move(executionId, 'failed', { reason: unreadableReason(job), finishedAtMs: Date.now() });
      return;
    }
    this.launching.add(executionId);
    try {
      // An agent's image may be built on its first use, which takes minutes; a launch answers once the container runs.
      const timeoutMs = job.spec.kind === ExecutionKind.EXECUTION_KIND_AGENT ? AGENT_LAUNCH_TIMEOUT_MS : LAUNCH_TIMEOUT_MS;
      const reply = await this.brokers.launch(job.brokerId!, { executionId, ownerId: job.ownerId, spec: job.spec }, traceContextOf(job), timeoutMs);
      if (reply.startedAtMs > 0) await this.lifecycle.move(executionId, 'executing', { startedAtMs: reply.startedAtMs });
    } catch (err) {
      if (err instanceof BrokerUnknownError) {
        // After a restart, before the broker's first heartbeat: its heartbeat launches this (brokerReturned).
        this.log.info({ executionId, broker: job.brokerId }, 'launch waits for its broker to be heard');
        return;
      }
      this.metrics.errorOccurred(errorKind(err));
      const details = (err as ServiceError).details || (err as Error).message;
      const firstAttemptMs = job.claimedAtMs ?? job.requestedAtMs;
      if (isRetryable(err) && Date.now() - firstAttemptMs < this.config.launchRetryForMs && !this.stopped) {
        const delayMs = Math.min(10_000, 250 * 2 ** Math.min(job.launchAttempts, 6));
        this.log.warn({ executionId, broker: job.brokerId, details, delayMs }, 'launch failed; retrying');
        await this.store.launchFailed(executionId, Date.now() + delayMs);
        const retry = setTimeout(() => {
          this.retries.delete(executionId);
          void this.relaunch(executionId).catch((e: unknown) => this.log.warn({ err: e, executionId }, 'relaunch failed; the reconciler tries again'));
        }, delayMs);
        retry.unref();
        this.retries.set(executionId, retry);
        return;
      }
      const givenUp = isRetryable(err) ? ` (gave up after ${Math.round(this.config.launchRetryForMs / 1000)}s of retries)` : '';
      // The lifecycle's final hook tells the broker to stop whatever this launch may still start there.
      await this.lifecycle.move(executionId, 'failed', { reason: `could not start: ${details}${givenUp}`, finishedAtMs: Date.now() });
    } finally {
      this.launching.delete(executionId);
    }
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.retries.values()) clearTimeout(t);
    this.retries.clear();
  }
}
