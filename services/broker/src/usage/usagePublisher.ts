import { setTimeout as sleep } from 'node:timers/promises';
import { topics, type Bus } from '@paddock/bus';
import { PermanentError } from '@paddock/errors';
import type { ComputeUsage } from '@paddock/proto';
import type { Logger } from '@paddock/telemetry';
import { BrokerStoppingError } from '../lifecycle/untilDone.js';

/** How long one publish retries inside the bus (same message id) before this publisher looks for newer totals. */
const PUBLISH_RETRY_MS = 5_000;
const PAUSE_MS = 200;
const PAUSE_MAX_MS = 5_000;

/** Totals not numbered yet: the publisher gives each its seq when it first sends it. */
export type UsageTotals = Omit<ComputeUsage, 'seq'>;

/**
 * Publishes one execution's compute totals (`topics.usageCompute`, message id `<id>.compute.<seq>`),
 * the latest only: each event carries totals, so totals offered while one is on its way replace each other,
 * and while NATS is away only the latest waits. A seq is given to a message when it is first sent and stays
 * with it through every retry, so one seq never carries two sets of figures; a message that could not be
 * confirmed and has been overtaken by newer totals may leave its seq unused.
 */
export class UsagePublisher {
  private next: UsageTotals | null = null;
  private sending: ComputeUsage | null = null;
  private draining: Promise<void> | null = null;

  constructor(
    private readonly bus: Bus,
    private readonly executionId: string,
    /** The last seq used for the execution (0 before its first event). */
    private seq: number,
    private readonly log: Logger,
    /** Aborted when the broker stops: what is unpublished then is left to the next broker process. */
    private readonly signal: AbortSignal,
  ) {}

  /** Sends these totals as soon as NATS takes them, replacing any not sent yet. */
  offer(totals: UsageTotals): void {
    this.next = totals;
    this.draining ??= this.drain().finally(() => (this.draining = null));
  }

  /** Resolves once everything offered is stored; rejects with BrokerStoppingError when the broker stops first. */
  async flushed(): Promise<void> {
    while (this.draining) await this.draining;
    if (this.sending || this.next) throw new BrokerStoppingError(`publishing the compute usage of ${this.executionId}`);
  }

  private async drain(): Promise<void> {
    for (let failures = 0; !this.signal.aborted; ) {
      if (this.next) {
        this.sending = { ...this.next, seq: ++this.seq };
        this.next = null;
      }
      const message = this.sending;
      if (!message) return;
      try {
        await this.bus.publish(topics.usageCompute, this.executionId, message, { msgId: `${this.executionId}.compute.${message.seq}`, retryForMs: PUBLISH_RETRY_MS });
        if (failures > 0) this.log.info({ executionId: this.executionId, seq: message.seq, failures }, 'compute usage published again after NATS was away');
        this.sending = null;
        failures = 0;
      } catch (err) {
        if (err instanceof PermanentError) {
          // NATS can never take it (refused by its permissions): trying again would fail the same way.
          this.log.error({ err, executionId: this.executionId, seq: message.seq }, 'the compute usage cannot be published');
          this.sending = null;
          continue;
        }
        failures++;
        if (failures === 1) this.log.warn({ err: (err as Error).message, executionId: this.executionId, seq: message.seq }, 'publishing the compute usage failed; the latest totals wait for NATS');
        // Cut short when the broker stops, which ends the loop.
        await sleep(Math.min(PAUSE_MAX_MS, PAUSE_MS * 2 ** Math.min(failures - 1, 10)), undefined, { signal: this.signal }).catch(() => {});
      }
    }
  }
}
