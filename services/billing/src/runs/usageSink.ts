import { topics, type Bus } from '@paddock/bus';
import type { LlmUsage } from '@paddock/proto';

/**
 * Where the metering proxy reports each call: `topics.usageLlm` on JetStream, with the
 * event id as message id, so that a publish retried after a lost ack is stored once; the ledger, reading
 * it through its durable, stores it once too.
 */
export class BusUsageSink {
  constructor(
    private readonly bus: Bus,
    private readonly retryForMs = 30_000,
  ) {}

  async publish(usage: LlmUsage): Promise<void> {
    await this.bus.publish(topics.usageLlm, usage.executionId, usage, { msgId: usage.eventId, retryForMs: this.retryForMs });
  }
}
