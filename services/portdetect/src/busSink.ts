import { topics, type Bus } from '@paddock/bus';
import type { PortChanged } from '@paddock/proto';
import type { Logger } from '@paddock/telemetry';
import type { PortChange, PortEventSink } from './portDetector.js';

const RETRY_FOR_MS = 10_000;

/**
 * Port events on JetStream (`topics.portOpened` / `topics.portClosed`), each with the message id
 * `<instance-id>.<seq>`, so a publish retried after a lost acknowledgement is stored once.
 */
export class BusSink implements PortEventSink {
  #stopped = false;

  constructor(
    private readonly bus: Bus,
    private readonly log: Logger,
  ) {}

  async last(instanceId: string): Promise<PortChanged | null> {
    const [opened, closed] = await Promise.all([this.bus.lastStored(topics.portOpened, instanceId), this.bus.lastStored(topics.portClosed, instanceId)]);
    const found = [opened, closed].filter((s) => s !== null).sort((a, b) => b.message.seq - a.message.seq)[0];
    return found?.message ?? null;
  }

  async publish(change: PortChange, event: PortChanged): Promise<void> {
    const topic = change === 'opened' ? topics.portOpened : topics.portClosed;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.bus.publish(topic, event.instanceId, event, { msgId: `${event.instanceId}.${event.seq}`, retryForMs: RETRY_FOR_MS });
        return;
      } catch (err) {
        if (this.#stopped || this.bus.nc.isClosed()) throw err;
        // NATS is away for longer: keep the order and keep trying; the next events of this instance wait.
        if (attempt === 1 || attempt % 10 === 0) this.log.warn({ err, instanceId: event.instanceId, seq: event.seq, attempt }, 'port event not stored yet; trying again');
      }
    }
  }

  /** Publishes in progress give up at their next failure. */
  stop(): void {
    this.#stopped = true;
  }
}

