import { context, type Context } from '@opentelemetry/api';
import {
  AckPolicy,
  connect,
  DeliverPolicy,
  DiscardPolicy,
  ErrorCode,
  headers as natsHeaders,
  nanos,
  NatsError,
  nkeyAuthenticator,
  RetentionPolicy,
  StorageType,
  type ConnectionOptions,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type MsgHdrs,
  type NatsConnection,
  type PubAck,
  type StreamConfig,
  type Subscription as NatsSubscription,
} from 'nats';
import { ConfigError, MessageTooLargeError, PermanentError, StreamStorageError } from '@paddock/errors';
import { extractContext, injectContext, withSpan, type Carrier, type Logger } from '@paddock/telemetry';
import { compileBusConfig, streamSetting, type BusConfig, type BusSettings } from './busConfig.js';
import { deadLetterHeaders, DeadLetterHeader, readDeadLetter, type DeadLetter, type DeadLetterFields } from './deadLetter.js';
import { isAuthorizationViolation, isPermissionsViolation, NatsAuthError, NatsPermissionError, withPermissionContext } from './natsErrors.js';
import { natsKeyOf, NatsIdentityError, readNatsKey, type NatsIdentity } from './natsIdentity.js';
import { inboxPrefix, isNatsUser, NATS_USERS } from './natsPermissions.js';
import { deadLetters, streamOf, streams, subjectId, type StreamName, type Topic } from './subjects.js';

/**
 * Told of what the bus retries and gives up on, as it happens. The method names match the service
 * metrics of @paddock/telemetry, so a service passes its metrics here as they are.
 */
export interface BusObserver {
  /** `consumer` got a message it had been given before. */
  busRedelivered(consumer: string): void;
  /** `consumer` gave up on a message and sent it to the dead-letter subject. */
  busDeadLettered(consumer: string): void;
  /** An error of `kind` (its class name) happened: a publish retried or given up, a handler that threw. */
  errorOccurred(kind: string): void;
}

export interface BusOptions extends BusSettings {
  readonly url: string;
  /** Shown by `nats-server` for this connection, e.g. "paddock-broker". */
  readonly name: string;
  readonly log: Logger;
  readonly observer?: BusObserver;
  /**
   * Who to connect as, when nats-server asks for credentials: the NATS user (a service's name) and its
   * nkey seed. Given here, or read from `nkeyFile` (busSettingsFromEnv's NATS_NKEY_FILE); not both.
   */
  readonly identity?: NatsIdentity;
}

export interface Delivery<T> {
  readonly id: string;
  readonly message: T;
  readonly subject: string;
  readonly redelivered: boolean;
  /** How many times this consumer has been given the message, this time included (1 the first time). */
  readonly deliveries: number;
  readonly seq: number;
}

export interface ConsumeOptions {
  /** Durable consumer name: work survives a crash of this process and of NATS. */
  readonly durable: string;
  /** Messages handled at once; those of one id are always handled one after another, in order. */
  readonly concurrency?: number;
  /**
   * How long NATS waits for an ack before it gives the message to someone else. It only runs out when
   * this process stops: while a message waits or is handled here, the bus tells NATS it is in progress.
   */
  readonly ackWaitMs?: number;
  /** Deliveries before the message is dead-lettered; the bus's `maxDeliver` (20) by default. */
  readonly maxDeliver?: number;
  /** The pause before the second delivery after a failure, doubling each time; the bus's setting by default. */
  readonly retryInitialDelayMs?: number;
  /** The longest pause between deliveries; the bus's setting by default. */
  readonly retryMaxDelayMs?: number;
}

export interface Subscription {
  stop(): Promise<void>;
}

/** What one durable consumer did since this bus connected. */
export interface ConsumerStats {
  /** Messages given to the handler (or found undecodable), redeliveries included. */
  delivered: number;
  acked: number;
  /** Deliveries of a message this consumer had been given before. */
  redeliveries: number;
  /** Handler failures that will be retried after a pause. */
  retried: number;
  deadLetters: number;
}

export interface BusStats {
  readonly consumers: Readonly<Record<string, Readonly<ConsumerStats>>>;
  /** Publish attempts that failed and were tried again. */
  readonly publishRetries: number;
  /** Publishes that failed for good: out of time, or a permanent error. */
  readonly publishFailures: number;
}

function carrierOf(h: MsgHdrs): Carrier {
  return {
    get: (key) => (h.has(key) ? h.get(key) : undefined),
    set: (key, value) => h.set(key, value),
  };
}

/** The pause before delivery (or attempt) `n + 1` after `n` failed: doubling from `initialMs`, capped. */
export function retryDelayMs(n: number, initialMs: number, maxMs: number): number {
  return Math.min(maxMs, initialMs * 2 ** Math.min(Math.max(n - 1, 0), 30));
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The bytes of `h` on the wire; nats.js's headers can encode themselves, though its interface omits it. */
function headerBytes(h: MsgHdrs): number {
  const encodable = h as MsgHdrs & { encode?: () => Uint8Array };
  return typeof encodable.encode === 'function' ? encodable.encode().length : 0;
}

/**
 * Acks, naks, terms and progress notes go out on the connection, which throws once it is closed (a drain
 * or a lost server). Nothing is lost then: NATS gives an unsettled message again after the ack wait.
 */
function settle(m: JsMsg, how: (m: JsMsg) => void): boolean {
  try {
    how(m);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The JetStream API's error number, when `err` is an answer of the JetStream API. */
function apiErrorCode(err: unknown): number | undefined {
  return (err as { api_error?: { err_code?: number } } | undefined)?.api_error?.err_code;
}

/** JetStream's "message size exceeds maximum allowed" (the stream's max_msg_size). */
const JS_MESSAGE_TOO_LARGE = 10054;
/** JetStream's "insufficient storage resources available": the streams' max_bytes do not fit. */
const JS_INSUFFICIENT_STORAGE = 10047;

/**
 * Paddock's connection to NATS: typed publish and consume over the subject registry, trace context in the
 * headers, JetStream streams (with their limits) ensured at connect, and dead letters for what a consumer
 * cannot handle.
 */
export class Bus {
  private readonly consumers = new Set<ConsumerMessages>();
  /** Run after a reconnect: each durable consumer makes sure it still exists. */
  private readonly onReconnect = new Set<() => Promise<void>>();
  private readonly consumerStats = new Map<string, ConsumerStats>();
  private publishRetries = 0;
  private publishFailures = 0;

  private constructor(
    readonly nc: NatsConnection,
    readonly js: JetStreamClient,
    readonly jsm: JetStreamManager,
    private readonly log: Logger,
    readonly config: BusConfig,
    private readonly observer: BusObserver | undefined,
    /** The NATS user this bus connected as; undefined without credentials. */
    readonly user: string | undefined,
  ) {}

  static async connect(opts: BusOptions): Promise<Bus> {
    // Settings are checked before anything connects: a contradiction is a ConfigError, not a NATS error.
    const config = compileBusConfig(opts);
    const identity = await identityOf(opts.identity, config);
    const key = identity ? natsKeyOf(identity.seed, `the seed of NATS user ${identity.user}`) : undefined;
    const options: ConnectionOptions = {
      servers: opts.url,
      name: opts.name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      timeout: 5000,
      // Keep trying after nats-server refused the key on a reconnect (a server started with an old config):
      // once it runs with the right one, the bus is back without a restart.
      ignoreAuthErrorAbort: true,
      ...(identity && key
        ? {
            authenticator: nkeyAuthenticator(new TextEncoder().encode(key.seed)),
            // Replies come to this prefix, the only one this user may subscribe to.
            inboxPrefix: inboxPrefix(identity.user),
          }
        : {}),
    };
    let nc: NatsConnection;
    // Waits for a nats-server that is not there yet, as nats.js's waitOnFirstConnect would; but a refused
    // key fails at once, which waitOnFirstConnect (with ignoreAuthErrorAbort) would retry for ever.
    for (;;) {
      try {
        nc = await connect(options);
        break;
      } catch (err) {
        if (isAuthorizationViolation(err)) throw new NatsAuthError(opts.url, identity?.user, key?.publicKey, { cause: err });
        if (!isBusUnavailable(err)) throw err;
        await sleep(250);
      }
    }
    const user = identity?.user;
    const publicKey = key?.publicKey;
    try {
      const jsm = await nc.jetstreamManager({ timeout: 10_000 });
      const bus = new Bus(nc, nc.jetstream({ timeout: 10_000 }), jsm, opts.log, config, opts.observer, user);
      (async () => {
        for await (const s of nc.status()) {
          if (s.type === 'disconnect' || s.type === 'reconnect') opts.log.warn({ nats: s.type, data: s.data }, 'nats connection');
          if (s.type === 'reconnect') void bus.recover();
          if (s.type === 'error') bus.serverError(opts.url, publicKey, s.data, s.permissionContext);
        }
      })().catch(() => {});
      await bus.ensureStreams();
      return bus;
    } catch (err) {
      await nc.close().catch(() => {});
      throw withPermissionContext(err, user, '$JS.API');
    }
  }

  /**
   * An error nats-server sent on the connection, logged at error whatever else reports it too. A
   * permissions violation is a bug or a deployment out of step with the subject registry, and the only
   * trace of a refused fire-and-forget publish; a refused key on a reconnect means nats-server runs with
   * a config that no longer lists this service, and the bus is deaf until it does.
   */
  private serverError(url: string, publicKey: string | undefined, code: unknown, permission: { operation: string; subject: string } | undefined): void {
    if (permission) {
      const err = new NatsPermissionError(this.user, permission.operation, permission.subject);
      this.observer?.errorOccurred(err.name);
      this.log.error({ err, natsUser: this.user, operation: permission.operation, subject: permission.subject }, err.message);
    } else if (code === ErrorCode.AuthorizationViolation) {
      const err = new NatsAuthError(url, this.user, publicKey);
      this.observer?.errorOccurred(err.name);
      this.log.error({ err, natsUser: this.user }, `${err.message}; reconnecting meanwhile`);
    } else {
      this.log.warn({ nats: 'error', code }, `nats-server reported an error on the connection: ${String(code)}`);
    }
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
        await sleep(1000);
      }
    }
  }

  private async ensureStreams(): Promise<void> {
    for (const s of streams) {
      const limits = this.config.streams[s.name];
      const config: Partial<StreamConfig> & { name: string } = {
        name: s.name,
        subjects: [...s.subjects],
        storage: StorageType.File,
        retention: RetentionPolicy.Limits,
        // Full means the oldest messages go: a stream that refused new work would stop Paddock instead.
        discard: DiscardPolicy.Old,
        max_age: nanos(limits.maxAgeMs),
        max_bytes: limits.maxBytes,
        max_msg_size: limits.maxMsgSizeBytes,
        duplicate_window: nanos(2 * 60_000),
      };
      try {
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
      } catch (err) {
        if (apiErrorCode(err) === JS_INSUFFICIENT_STORAGE) throw new StreamStorageError(s.name, limits.maxBytes, streamSetting(s.name, 'maxBytes'), { cause: err });
        throw err;
      }
    }
  }

  /** Counters since this bus connected, for a service's metrics and health. */
  stats(): BusStats {
    const consumers: Record<string, ConsumerStats> = {};
    for (const [name, c] of this.consumerStats) consumers[name] = { ...c };
    return { consumers, publishRetries: this.publishRetries, publishFailures: this.publishFailures };
  }

  private statsOf(durable: string): ConsumerStats {
    let s = this.consumerStats.get(durable);
    if (!s) this.consumerStats.set(durable, (s = { delivered: 0, acked: 0, redeliveries: 0, retried: 0, deadLetters: 0 }));
    return s;
  }

  /**
   * Stores a message in its stream and resolves once NATS has it. `msgId` deduplicates retries of the same
   * event within two minutes; with `retryForMs`, transient failures (NATS restarting, JetStream not ready)
   * are retried until that long after the first attempt, which is only safe with a `msgId`. A message that
   * can never be stored (larger than the server or the stream accepts) fails at once with a
   * MessageTooLargeError, a PermanentError. `timeoutMs` bounds each attempt's wait for the stream's answer
   * (10 s by default).
   */
  async publish<T>(topic: Topic<T>, id: string, message: T, opts: { msgId?: string; retryForMs?: number; timeoutMs?: number } = {}): Promise<PubAck> {
    const h = natsHeaders();
    injectContext(carrierOf(h));
    return this.publishBytes(topic.subject(id), streamOf(topic), topic.type.encode(message).finish(), h, opts);
  }

  private async publishBytes(
    subject: string,
    stream: StreamName,
    data: Uint8Array,
    h: MsgHdrs,
    opts: { msgId?: string; retryForMs?: number; timeoutMs?: number },
  ): Promise<PubAck> {
    const firstAttemptAtMs = Date.now();
    const deadline = firstAttemptAtMs + (opts.retryForMs ?? 0);
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.js.publish(subject, data, {
          headers: h,
          ...(opts.msgId ? { msgID: opts.msgId } : {}),
          ...(opts.timeoutMs ? { timeout: opts.timeoutMs } : {}),
        });
      } catch (err) {
        const permanent = this.permanentPublishError(subject, stream, data, h, err);
        const now = Date.now();
        if (permanent || now >= deadline || this.nc.isClosed()) {
          this.publishFailures++;
          const failure = permanent ?? err;
          this.observer?.errorOccurred(failure instanceof Error ? failure.name : 'Error');
          throw failure;
        }
        this.publishRetries++;
        this.observer?.errorOccurred(err instanceof Error ? err.name : 'Error');
        // Pauses grow with the attempts since the first one, and the last one ends at the deadline.
        await sleep(Math.min(retryDelayMs(attempt, 100, 1000), deadline - now));
      }
    }
  }

  /** The PermanentError for a publish that can never succeed, or undefined when trying again may help. */
  private permanentPublishError(subject: string, stream: StreamName, data: Uint8Array, h: MsgHdrs, err: unknown): PermanentError | undefined {
    // The size NATS counts: headers (trace context, message id) and payload.
    const sizeBytes = data.length + headerBytes(h);
    if (err instanceof NatsError && err.code === ErrorCode.MaxPayloadExceeded) {
      const limit = this.nc.info?.max_payload ?? 0;
      return new MessageTooLargeError(subject, sizeBytes, limit, "nats-server's max_payload", { cause: err });
    }
    if (isPermissionsViolation(err)) return withPermissionContext(err, this.user, subject) as NatsPermissionError;
    if (apiErrorCode(err) === JS_MESSAGE_TOO_LARGE) {
      const limit = this.config.streams[stream].maxMsgSizeBytes;
      return new MessageTooLargeError(subject, sizeBytes, limit, `stream ${stream} (${streamSetting(stream, 'maxMsgSizeBytes')})`, { cause: err });
    }
    return undefined;
  }

  /** The last message stored on `topic` for `id`, with its stream sequence; null when there is none. */
  async lastStored<T>(topic: Topic<T>, id: string): Promise<{ seq: number; message: T } | null> {
    try {
      const stored = await this.jsm.streams.getMessage(streamOf(topic), { last_by_subj: topic.subject(id) });
      return { seq: stored.seq, message: topic.type.decode(stored.data) };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw withPermissionContext(err, this.user, `$JS.API.STREAM.MSG.GET.${streamOf(topic)}`);
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
        // A refused subscription is logged when nats-server reports it (serverError).
        if (err) return;
        try {
          handler({ id: subjectId(msg.subject), message: topic.type.decode(msg.data), subject: msg.subject, redelivered: false, deliveries: 1, seq: 0 });
        } catch (e) {
          this.log.error({ err: e, subject: msg.subject }, 'subscriber failed');
        }
      },
    });
    return { stop: async () => sub.unsubscribe() };
  }

  /**
   * Stores a dead letter for `consumer` and resolves once NATS has it. The message id makes the two ways a
   * message dies (the handler gave up; NATS ran out of deliveries) and several processes sharing one
   * durable store it once.
   */
  private async storeDeadLetter(fields: DeadLetterFields, original: MsgHdrs | undefined, payload: Uint8Array, retryForMs: number): Promise<void> {
    const subject = deadLetters.subject(fields.consumer);
    const msgId = `${fields.originalStream}.${fields.originalSeq}.${fields.consumer}`;
    let ack: PubAck;
    try {
      ack = await this.publishBytes(subject, deadLetters.stream, payload, deadLetterHeaders(fields, original), { msgId, retryForMs });
    } catch (err) {
      if (!(err instanceof MessageTooLargeError)) throw err;
      // The headers pushed it over: the reason matters more, and the original stays in its stream.
      const h = deadLetterHeaders(fields, original);
      h.set(DeadLetterHeader.payloadOmitted, `${payload.length} bytes; read it from ${fields.originalStream} at sequence ${fields.originalSeq}`);
      ack = await this.publishBytes(subject, deadLetters.stream, new Uint8Array(0), h, { msgId, retryForMs });
    }
    // Another process sharing the durable stored it already: counted and logged there.
    if (ack.duplicate) return;
    this.statsOf(fields.consumer).deadLetters++;
    this.observer?.busDeadLettered(fields.consumer);
    this.log.error(
      { consumer: fields.consumer, subject: fields.originalSubject, stream: fields.originalStream, seq: fields.originalSeq, deliveries: fields.deliveries, reason: fields.reason },
      `${fields.consumer}: message dead-lettered on ${subject}: ${fields.reason}`,
    );
  }

  /** Dead letters stored for `consumer`, oldest first, from sequence `fromSeq` of PADDOCK_DEADLETTER on. */
  async deadLetters(consumer: string, opts: { fromSeq?: number; limit?: number } = {}): Promise<DeadLetter[]> {
    const subject = deadLetters.subject(consumer);
    const found: DeadLetter[] = [];
    for (let seq = opts.fromSeq ?? 1; found.length < (opts.limit ?? 100); ) {
      let stored;
      try {
        // nats-server answers `next_by_subj` since 2.9; nats.js types it only for direct gets.
        stored = await this.jsm.streams.getMessage(deadLetters.stream, { seq, next_by_subj: subject } as unknown as { seq: number });
      } catch (err) {
        if (isNotFound(err)) break;
        throw withPermissionContext(err, this.user, `$JS.API.STREAM.MSG.GET.${deadLetters.stream}`);
      }
      found.push(readDeadLetter(stored.seq, stored.header, stored.data));
      seq = stored.seq + 1;
    }
    return found;
  }

  /**
   * Handles every message of `topic` through a durable consumer with explicit acks: a message is acked
   * after `handler` resolves. When the handler throws, the message comes again after a pause that doubles
   * from one delivery to the next (counted by NATS from the first delivery, so a restart does not reset
   * it); after `maxDeliver` deliveries, or at once when the handler throws a PermanentError or the payload
   * cannot be decoded, it goes to the dead-letter subject `paddock.v1.deadletter.<durable>` with the
   * reason, and the consumer goes on with the next. A message whose process died `maxDeliver` times while
   * handling it is dead-lettered too. Handlers must be idempotent: a crash redelivers what was in flight.
   */
  async consume<T>(topic: Topic<T>, opts: ConsumeOptions, handler: (d: Delivery<T>) => Promise<void>): Promise<Subscription> {
    const stream = streamOf(topic);
    const filter = topic.subject('*');
    const ackWaitMs = opts.ackWaitMs ?? 30_000;
    const maxDeliver = opts.maxDeliver ?? this.config.maxDeliver;
    const retryInitialDelayMs = opts.retryInitialDelayMs ?? this.config.retryInitialDelayMs;
    const retryMaxDelayMs = opts.retryMaxDelayMs ?? this.config.retryMaxDelayMs;
    const stats = this.statsOf(opts.durable);
    const config = {
      durable_name: opts.durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subject: filter,
      ack_wait: nanos(ackWaitMs),
      max_ack_pending: 10_000,
      max_deliver: maxDeliver,
    };
    const ensureConsumer = async (): Promise<void> => {
      try {
        try {
          await this.jsm.consumers.info(stream, opts.durable);
          await this.jsm.consumers.update(stream, opts.durable, { ack_wait: config.ack_wait, max_ack_pending: config.max_ack_pending, max_deliver: maxDeliver });
        } catch (err) {
          if (!isNotFound(err)) throw err;
          await this.jsm.consumers.add(stream, config);
        }
      } catch (err) {
        throw withPermissionContext(err, this.user, `$JS.API.CONSUMER.INFO.${stream}.${opts.durable}`);
      }
    };
    await ensureConsumer();

    /**
     * Messages this process holds, waiting for their turn or being handled. NATS hears they are in progress
     * so that it does not count a wait as a failed delivery; when the process dies the ack wait runs out and
     * NATS gives them to another.
     */
    const held = new Set<JsMsg>();
    const progress = setInterval(() => {
      for (const m of held) settle(m, (x) => x.working());
    }, Math.max(200, Math.floor(ackWaitMs / 3)));
    progress.unref();

    const giveUp = async (m: JsMsg, reason: string, err: unknown): Promise<void> => {
      const fields: DeadLetterFields = {
        originalSubject: m.subject,
        originalStream: stream,
        originalSeq: m.seq,
        consumer: opts.durable,
        deliveries: m.info.deliveryCount,
        reason,
        errorName: err instanceof Error ? err.name : '',
        deadAtMs: Date.now(),
      };
      try {
        // The message stays held meanwhile, so NATS does not hand it to another process.
        await this.storeDeadLetter(fields, m.headers, m.data, Math.min(10_000, ackWaitMs / 2));
        settle(m, (x) => x.term());
      } catch (storeErr) {
        // Not stored: it comes back (or, past max_deliver, NATS announces it and the advisory stores it).
        this.log.error({ err: storeErr, consumer: opts.durable, subject: m.subject, seq: m.seq, reason }, `${opts.durable}: could not store a dead letter; trying again later`);
        settle(m, (x) => x.nak(retryDelayMs(m.info.deliveryCount, retryInitialDelayMs, retryMaxDelayMs)));
      }
    };

    const handle = async (m: JsMsg): Promise<void> => {
      const id = subjectId(m.subject);
      const deliveries = m.info.deliveryCount;
      stats.delivered++;
      if (deliveries > 1) {
        stats.redeliveries++;
        this.observer?.busRedelivered(opts.durable);
      }
      let message: T;
      try {
        message = topic.type.decode(m.data);
      } catch (err) {
        await giveUp(m, `the payload is not a ${topic.name} message (${m.data.length} bytes): ${describe(err)}`, err);
        return;
      }
      const parent: Context = m.headers ? extractContext(carrierOf(m.headers)) : context.active();
      try {
        await withSpan(`consume ${topic.name}`, { 'paddock.execution_id': id, 'messaging.consumer': opts.durable }, () =>
          handler({ id, message, subject: m.subject, redelivered: deliveries > 1, deliveries, seq: m.seq }), parent);
      } catch (err) {
        this.observer?.errorOccurred(err instanceof Error ? err.name : 'Error');
        if (err instanceof PermanentError) {
          await giveUp(m, describe(err), err);
        } else if (deliveries >= maxDeliver) {
          await giveUp(m, `handling failed ${deliveries} times (max_deliver ${maxDeliver}); the last error: ${describe(err)}`, err);
        } else {
          const delayMs = retryDelayMs(deliveries, retryInitialDelayMs, retryMaxDelayMs);
          stats.retried++;
          this.log.warn({ err, subject: m.subject, executionId: id, deliveries, maxDeliver, delayMs }, `${opts.durable}: handler failed; retrying in ${delayMs} ms`);
          settle(m, (x) => x.nak(delayMs));
        }
        return;
      }
      if (settle(m, (x) => x.ack())) stats.acked++;
    };

    /**
     * NATS announces a message that ran out of deliveries without an ack: each time, the process holding it
     * stopped (or lost NATS) before it was handled. Such a message never reaches `handle` again.
     */
    const advisory: NatsSubscription = this.nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.${opts.durable}`, {
      callback: (err, msg) => {
        if (err) return;
        void (async () => {
          const event = JSON.parse(new TextDecoder().decode(msg.data)) as { stream_seq: number; deliveries: number };
          const stored = await this.jsm.streams.getMessage(stream, { seq: event.stream_seq });
          await this.storeDeadLetter(
            {
              originalSubject: stored.subject,
              originalStream: stream,
              originalSeq: stored.seq,
              consumer: opts.durable,
              deliveries: event.deliveries,
              reason: `delivered ${event.deliveries} times without an ack (max_deliver ${maxDeliver}): each time the process handling it stopped or lost NATS first`,
              errorName: '',
              deadAtMs: Date.now(),
            },
            stored.header,
            stored.data,
            30_000,
          );
        })().catch((e: unknown) => this.log.error({ err: e, consumer: opts.durable }, `${opts.durable}: a message ran out of deliveries and could not be dead-lettered`));
      },
    });

    const concurrency = opts.concurrency ?? 32;
    const running = new Map<string, Promise<void>>();
    let inFlight = 0;
    let wake: (() => void) | undefined;
    let stopped = false;
    let current: ConsumerMessages | undefined;

    const loop = async (): Promise<void> => {
      // A closed connection (drained, or closed by hand) never delivers again: the loop ends with it.
      while (!stopped && !this.nc.isClosed()) {
        try {
          const consumer = await this.js.consumers.get(stream, opts.durable);
          const messages = await consumer.consume({ max_messages: Math.max(concurrency * 2, 64) });
          current = messages;
          this.consumers.add(messages);
          for await (const m of messages) {
            held.add(m);
            while (inFlight >= concurrency) await new Promise<void>((r) => (wake = r));
            inFlight++;
            const id = subjectId(m.subject);
            const before = running.get(id) ?? Promise.resolve();
            const next = before
              .then(() => handle(m))
              .catch((err: unknown) => this.log.error({ err, consumer: opts.durable, subject: m.subject }, `${opts.durable}: message left unsettled; NATS gives it again after the ack wait`))
              .finally(() => {
                held.delete(m);
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
          if (stopped || this.nc.isClosed()) break;
          this.log.warn({ err, consumer: opts.durable }, 'consumer interrupted, resuming');
          await sleep(500);
        }
      }
    };
    const done = loop().finally(() => clearInterval(progress));
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
        advisory.unsubscribe();
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

/**
 * The identity to connect with: given to Bus.connect, or read from the seed file the settings name. A seed
 * file that cannot be used is a ConfigError naming NATS_NKEY_FILE, raised before anything connects.
 */
async function identityOf(given: NatsIdentity | undefined, config: BusConfig): Promise<NatsIdentity | undefined> {
  if (given && config.nkey) throw new ConfigError('NATS_NKEY_FILE', `an identity (${given.user}) was given as well as a seed file (${config.nkey.file}): give one`);
  if (given) {
    if (!isNatsUser(given.user)) throw new ConfigError('PADDOCK_NATS_USER', `expected one of ${NATS_USERS.join(', ')}, got "${String(given.user)}"`);
    return given;
  }
  if (!config.nkey) return undefined;
  try {
    return { user: config.nkey.user, seed: (await readNatsKey(config.nkey.file)).seed };
  } catch (err) {
    if (err instanceof NatsIdentityError) throw new ConfigError('NATS_NKEY_FILE', err.message);
    throw err;
  }
}

/**
 * Whether a failed bus call failed because NATS is away or slow (restarting, cut off, JetStream not ready),
 * so that the same call may work in a moment.
 */
export function isBusUnavailable(err: unknown): boolean {
  if ((err as Error)?.name !== 'NatsError') return false;
  const { code, api_error: api } = err as { code?: string; api_error?: { code?: number } };
  return (
    api?.code === 503 ||
    ['TIMEOUT', '503', 'CONNECTION_CLOSED', 'CONNECTION_DRAINING', 'CONNECTION_REFUSED', 'CONNECTION_TIMEOUT', 'DISCONNECT'].includes(code ?? '')
  );
}

export function isNotFound(err: unknown): boolean {
  const e = err as { code?: string; api_error?: { err_code?: number; code?: number } };
  return e?.api_error?.code === 404 || e?.code === '404' || /not found/i.test(String((err as Error)?.message));
}
