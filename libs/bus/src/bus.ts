import { context, type Context } from '@opentelemetry/api';
import {
  AckPolicy,
  connect,
  DeliverPolicy,
  headers as natsHeaders,
  nanos,
  RetentionPolicy,
  StorageType,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type MsgHdrs,
  type NatsConnection,
  type PubAck,
} from 'nats';
import { extractContext, injectContext, withSpan, type Carrier, type Logger } from '@paddock/telemetry';
import { streamOf, streams, subjectId, type Topic } from './subjects.js';

export interface BusOptions {
  readonly url: string;
  /** Shown by `nats-server` for this connection, e.g. "paddock-broker". */
  readonly name: string;
  readonly log: Logger;
}

export interface Delivery<T> {
  readonly id: string;
  readonly message: T;
  readonly subject: string;
  readonly redelivered: boolean;
  readonly seq: number;
}

export interface ConsumeOptions {
  /** Durable consumer name: work survives a crash of this process and of NATS. */
  readonly durable: string;
  /** Messages handled at once; those of one id are always handled one after another, in order. */
  readonly concurrency?: number;
  /** How long a message may be handled before NATS gives it to someone else. */
  readonly ackWaitMs?: number;
}

export interface Subscription {
  stop(): Promise<void>;
}

function carrierOf(h: MsgHdrs): Carrier {
  return {
    get: (key) => (h.has(key) ? h.get(key) : undefined),
    set: (key, value) => h.set(key, value),
  };
}

/**
 * Paddock's connection to NATS: typed publish and consume over the subject registry, trace context in the
 * headers, and JetStream streams ensured at connect.
 */
export class Bus {
  private readonly consumers = new Set<ConsumerMessages>();
  /** Run after a reconnect: each durable consumer makes sure it still exists. */
  private readonly onReconnect = new Set<() => Promise<void>>();

  private constructor(
    readonly nc: NatsConnection,
    readonly js: JetStreamClient,
    readonly jsm: JetStreamManager,
    private readonly log: Logger,
  ) {}

  static async connect(opts: BusOptions): Promise<Bus> {
    const nc = await connect({
      servers: opts.url,
      name: opts.name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      waitOnFirstConnect: true,
      timeout: 5000,
    });
    const jsm = await nc.jetstreamManager({ timeout: 10_000 });
    const bus = new Bus(nc, nc.jetstream({ timeout: 10_000 }), jsm, opts.log);
    (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect' || s.type === 'reconnect') opts.log.warn({ nats: s.type, data: s.data }, 'nats connection');
        if (s.type === 'reconnect') void bus.recover();
      }
    })().catch(() => {});
    await bus.ensureStreams();
    return bus;
  }

  /**
   * After a reconnect: a NATS server that came back without its store has neither the streams nor the
   * durable consumers, so both are made again (a no-op when they survived).
   */
  private async recover(): Promise<void> {
    // JetStream may answer a moment after the connection is back: try for a minute.
    for (let attempt = 0; attempt < 60 && !this.nc.isClosed(); attempt++) {
      try {
        await this.ensureStreams();
        for (const hook of this.onReconnect) await hook();
        this.log.info({ attempt, consumers: this.onReconnect.size }, 'streams and consumers restored after a reconnect');
        return;
      } catch (err) {
        this.log.debug({ err, attempt }, 'restoring after a reconnect failed; trying again');
        if (attempt === 59) this.log.warn({ err }, 'could not restore the streams and consumers after a reconnect');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  private async ensureStreams(): Promise<void> {
    for (const s of streams) {
      const config = {
        name: s.name,
        subjects: [...s.subjects],
        storage: StorageType.File,
        retention: RetentionPolicy.Limits,
        max_age: nanos(s.maxAgeMs),
        duplicate_window: nanos(2 * 60_000),
      };
      try {
        await this.jsm.streams.info(s.name);
        await this.jsm.streams.update(s.name, config);
      } catch (err) {
        if (!isNotFound(err)) throw err;
        try {
          await this.jsm.streams.add(config);
        } catch (addErr) {
          // Another service created it between our two calls.
          if (!String(addErr).includes('already in use')) throw addErr;
        }
      }
    }
  }

  /**
   * Stores a message in its stream and resolves once NATS has it. `msgId` deduplicates retries of the same
   * event within two minutes; with `retryForMs`, failures (NATS restarting, JetStream not ready) are
   * retried for that long, which is only safe with a `msgId`. `timeoutMs` bounds each attempt's wait for
   * the stream's answer (10 s by default).
   */
  async publish<T>(topic: Topic<T>, id: string, message: T, opts: { msgId?: string; retryForMs?: number; timeoutMs?: number } = {}): Promise<PubAck> {
    const h = natsHeaders();
    injectContext(carrierOf(h));
    const data = topic.type.encode(message).finish();
    const subject = topic.subject(id);
    const deadline = Date.now() + (opts.retryForMs ?? 0);
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.js.publish(subject, data, {
          headers: h,
          ...(opts.msgId ? { msgID: opts.msgId } : {}),
          ...(opts.timeoutMs ? { timeout: opts.timeoutMs } : {}),
        });
      } catch (err) {
        if (Date.now() >= deadline || this.nc.isClosed()) throw err;
        await new Promise((r) => setTimeout(r, Math.min(1000, 100 * 2 ** attempt)));
      }
    }
  }

  /** The last message stored on `topic` for `id`, with its stream sequence; null when there is none. */
  async lastStored<T>(topic: Topic<T>, id: string): Promise<{ seq: number; message: T } | null> {
    try {
      const stored = await this.jsm.streams.getMessage(streamOf(topic), { last_by_subj: topic.subject(id) });
      return { seq: stored.seq, message: topic.type.decode(stored.data) };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  /** Fire-and-forget on core NATS (heartbeats); lost when nobody listens. */
  publishCore<T>(topic: Topic<T>, id: string, message: T): void {
    this.nc.publish(topic.subject(id), topic.type.encode(message).finish());
  }

  /** Listens on core NATS: live only, no replay. `id` may be '*'. */
  subscribe<T>(topic: Topic<T>, id: string, handler: (d: Delivery<T>) => void): Subscription {
    const sub = this.nc.subscribe(topic.subject(id), {
      callback: (err, msg) => {
        if (err) return;
        try {
          handler({ id: subjectId(msg.subject), message: topic.type.decode(msg.data), subject: msg.subject, redelivered: false, seq: 0 });
        } catch (e) {
          this.log.error({ err: e, subject: msg.subject }, 'subscriber failed');
        }
      },
    });
    return { stop: async () => sub.unsubscribe() };
  }

  /**
   * Handles every message of `topic` through a durable consumer with explicit acks: a message is acked
   * after `handler` resolves and redelivered (after a pause) when it throws, or when this process dies.
   * Handlers must therefore be idempotent.
   */
  async consume<T>(topic: Topic<T>, opts: ConsumeOptions, handler: (d: Delivery<T>) => Promise<void>): Promise<Subscription> {
    const stream = streamOf(topic);
    const filter = topic.subject('*');
    const config = {
      durable_name: opts.durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subject: filter,
      ack_wait: nanos(opts.ackWaitMs ?? 30_000),
      max_ack_pending: 10_000,
    };
    const ensureConsumer = async (): Promise<void> => {
      try {
        await this.jsm.consumers.info(stream, opts.durable);
        await this.jsm.consumers.update(stream, opts.durable, { ack_wait: config.ack_wait, max_ack_pending: config.max_ack_pending });
      } catch (err) {
        if (!isNotFound(err)) throw err;
        await this.jsm.consumers.add(stream, config);
      }
    };
    await ensureConsumer();

    const concurrency = opts.concurrency ?? 32;
    const running = new Map<string, Promise<void>>();
    let inFlight = 0;
    let wake: (() => void) | undefined;
    let stopped = false;
    let current: ConsumerMessages | undefined;

    const handle = async (m: JsMsg): Promise<void> => {
      const id = subjectId(m.subject);
      let message: T;
      try {
        message = topic.type.decode(m.data);
      } catch (err) {
        this.log.error({ err, subject: m.subject, seq: m.seq }, 'undecodable message dropped');
        m.term();
        return;
      }
      const parent: Context = m.headers ? extractContext(carrierOf(m.headers)) : context.active();
      try {
        await withSpan(`consume ${topic.name}`, { 'paddock.execution_id': id, 'messaging.consumer': opts.durable }, () =>
          handler({ id, message, subject: m.subject, redelivered: m.redelivered, seq: m.seq }), parent);
        m.ack();
      } catch (err) {
        this.log.error({ err, subject: m.subject, executionId: id }, `${opts.durable}: handler failed, will retry`);
        m.nak(1000);
      }
    };

    const loop = async (): Promise<void> => {
      while (!stopped) {
        try {
          const consumer = await this.js.consumers.get(stream, opts.durable);
          const messages = await consumer.consume({ max_messages: Math.max(concurrency * 2, 64) });
          current = messages;
          this.consumers.add(messages);
          for await (const m of messages) {
            while (inFlight >= concurrency) await new Promise<void>((r) => (wake = r));
            inFlight++;
            const id = subjectId(m.subject);
            const before = running.get(id) ?? Promise.resolve();
            const next = before.then(() => handle(m)).finally(() => {
              inFlight--;
              if (running.get(id) === next) running.delete(id);
              const w = wake;
              wake = undefined;
              w?.();
            });
            running.set(id, next);
          }
          this.consumers.delete(messages);
        } catch (err) {
          if (stopped) break;
          this.log.warn({ err, consumer: opts.durable }, 'consumer interrupted, resuming');
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    };
    const done = loop();
    const restore = async (): Promise<void> => {
      const exists = await this.jsm.consumers.info(stream, opts.durable).then(
        () => true,
        (err: unknown) => {
          if (isNotFound(err)) return false;
          throw err;
        },
      );
      if (exists) return;
      await ensureConsumer();
      // The pull in progress belongs to the consumer that is gone: the loop starts over on the new one.
      current?.stop();
    };
    this.onReconnect.add(restore);
    return {
      stop: async () => {
        stopped = true;
        this.onReconnect.delete(restore);
        current?.stop();
        await done;
        await Promise.allSettled([...running.values()]);
      },
    };
  }

  /** Orderly shutdown: flushes what is buffered, then closes. Resolves, never rejects. */
  async drain(): Promise<void> {
    for (const c of this.consumers) c.stop();
    if (this.nc.isClosed()) return;
    await this.nc.drain().catch(() => {});
  }
}

export function isNotFound(err: unknown): boolean {
  const e = err as { code?: string; api_error?: { err_code?: number; code?: number } };
  return e?.api_error?.code === 404 || e?.code === '404' || /not found/i.test(String((err as Error)?.message));
}
