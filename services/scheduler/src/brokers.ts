import { Metadata, status, type ChannelCredentials, type ServiceError } from '@grpc/grpc-js';
import { channelCredentials, channelOptions, type ServiceTls } from '@paddock/plane';
import { BrokerClient, type BrokerHeartbeat, type CancelReply, type LaunchReply, type LaunchRequest } from '@paddock/proto';
import { injectContext } from '@paddock/telemetry';
import type { Context } from '@opentelemetry/api';

/** One heartbeat as received: what the broker held, on this process's clock. */
export interface Sighting {
  readonly receivedAtMs: number;
  readonly executionIds: ReadonlySet<string>;
}

export interface KnownBroker {
  readonly heartbeat: BrokerHeartbeat;
  readonly seenAtMs: number;
  /** The latest heartbeats, oldest first. */
  readonly sightings: readonly Sighting[];
}

/** What a heartbeat changed: whether the broker (re)appeared, and whether it has room it did not have. */
export interface HeartbeatNews {
  /** First heard, heard again after a silence, or at a new address: launches it missed can be sent now. */
  readonly returned: boolean;
  readonly freed: boolean;
}

/** No heartbeat of this broker was heard by this process: a call to it waits for one, it is not a failure. */
export class BrokerUnknownError extends Error {
  readonly code = status.UNAVAILABLE;
  readonly details: string;

  constructor(readonly brokerId: string) {
    super(`broker ${brokerId} has not been heard from yet`);
    this.name = 'BrokerUnknownError';
    this.details = this.message;
  }
}

/** Errors after which the same launch may succeed later. */
export function isRetryable(err: unknown): boolean {
  const code = (err as ServiceError)?.code;
  return code === status.UNAVAILABLE || code === status.DEADLINE_EXCEEDED || code === status.RESOURCE_EXHAUSTED || code === status.CANCELLED;
}

function metadata(ctx?: Context): Metadata {
  const md = new Metadata();
  injectContext({ get: (k) => md.get(k)[0]?.toString(), set: (k, v) => md.set(k, v) }, ctx);
  return md;
}

/** Heartbeats kept per broker (one a second): enough for the reconciler's longest "absent in a row". */
const SIGHTINGS_KEPT = 30;

/**
 * The brokers that announced themselves by heartbeat, what each holds, and a gRPC client for each: over
 * mutual TLS, as the scheduler (its certificate), to a server that must show the broker's certificate.
 */
export class BrokerRegistry {
  private readonly brokers = new Map<string, KnownBroker>();
  private readonly clients = new Map<string, BrokerClient>();
  /** Made once: each set of credentials builds its own TLS context. */
  private readonly credentials: ChannelCredentials;

  constructor(
    tls: ServiceTls,
    readonly freshForMs = 5_000,
  ) {
    this.credentials = channelCredentials(tls, 'broker');
  }

  seen(hb: BrokerHeartbeat, nowMs = Date.now()): HeartbeatNews {
    const before = this.brokers.get(hb.brokerId);
    const sighting: Sighting = { receivedAtMs: nowMs, executionIds: new Set(hb.executionIds) };
    const sightings = [...(before?.sightings ?? []), sighting].slice(-SIGHTINGS_KEPT);
    this.brokers.set(hb.brokerId, { heartbeat: hb, seenAtMs: nowMs, sightings });
    return {
      returned: !before || before.heartbeat.grpcAddress !== hb.grpcAddress || nowMs - before.seenAtMs >= this.freshForMs,
      freed: before !== undefined && before.heartbeat.executionIds.length > hb.executionIds.length,
    };
  }

  /** Brokers heard from recently. */
  available(nowMs = Date.now()): BrokerHeartbeat[] {
    return [...this.brokers.values()].filter((b) => nowMs - b.seenAtMs < this.freshForMs).map((b) => b.heartbeat);
  }

  /** Every broker heard since this process started, fresh or silent. */
  known(): ReadonlyMap<string, KnownBroker> {
    return this.brokers;
  }

  lastSeenMs(brokerId: string): number | undefined {
    return this.brokers.get(brokerId)?.seenAtMs;
  }

  private client(brokerId: string): BrokerClient {
    const b = this.brokers.get(brokerId);
    if (!b) throw new BrokerUnknownError(brokerId);
    const key = `${brokerId}@${b.heartbeat.grpcAddress}`;
    let c = this.clients.get(key);
    if (!c) {
      c = new BrokerClient(b.heartbeat.grpcAddress, this.credentials, channelOptions('broker'));
      this.clients.set(key, c);
    }
    return c;
  }

  launch(brokerId: string, req: LaunchRequest, ctx: Context | undefined, timeoutMs = 60_000): Promise<LaunchReply> {
    return new Promise((resolve, reject) =>
      this.client(brokerId).launch(req, metadata(ctx), { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res))),
    );
  }

  cancel(brokerId: string, executionId: string, graceMs: number, ctx?: Context): Promise<CancelReply> {
    return new Promise((resolve, reject) =>
      this.client(brokerId).cancel({ executionId, graceMs }, metadata(ctx), { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res))),
    );
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
