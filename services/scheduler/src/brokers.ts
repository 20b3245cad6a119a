import { connectivityState, Metadata, status, type ChannelCredentials, type ServiceError } from '@grpc/grpc-js';
import { channelCredentials, channelOptions, PeerChannel, type ServiceTls } from '@paddock/plane';
import { BrokerClient, type BrokerHeartbeat, type CancelReply, type LaunchReply, type LaunchRequest } from '@paddock/proto';
import { injectContext } from '@paddock/telemetry';
import { brokerService } from '@paddock/xds';
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

/**
 * The broker's channel neither connected nor failed in time: its address is not known yet (the control
 * plane has not heard of the broker, or cannot be reached) or does not answer. Retried like UNAVAILABLE.
 */
export class BrokerUnreachableError extends Error {
  readonly code = status.UNAVAILABLE;
  readonly details: string;

  constructor(
    readonly brokerId: string,
    readonly target: string,
    readonly waitedMs: number,
  ) {
    super(`broker ${brokerId} (${target}) could not be reached within ${waitedMs} ms`);
    this.name = 'BrokerUnreachableError';
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
 * Resolves once the client's channel has connected, or has failed (a call then fails at once with
 * UNAVAILABLE); rejects with BrokerUnreachableError if it is still looking after `withinMs`. Without it, a
 * call waits for an address for as long as its own deadline, twenty minutes for an agent's launch.
 */
function settled(client: BrokerClient, brokerId: string, target: string, withinMs: number): Promise<void> {
  const channel = client.getChannel();
  const deadline = Date.now() + withinMs;
  return new Promise((resolve, reject) => {
    const check = (): void => {
      const state = channel.getConnectivityState(true);
      if (state === connectivityState.READY || state === connectivityState.TRANSIENT_FAILURE || state === connectivityState.SHUTDOWN) return resolve();
      channel.watchConnectivityState(state, deadline, (err) => (err ? reject(new BrokerUnreachableError(brokerId, target, withinMs)) : check()));
    };
    check();
  });
}


export interface BrokerRegistryOptions {
  /** A broker silent this long is no longer offered work. */
  readonly freshForMs?: number;
  /**
   * Dial each broker as `xds:///paddock-broker.<broker-id>`, through the control plane (services/xds), which
   * follows the broker wherever its heartbeat says it is; the xds: resolver must be registered in this
   * process (main.ts). Otherwise each broker is dialled at the address its latest heartbeat announces.
   */
  readonly viaXds?: boolean;
  /** How long a call waits for the broker's channel to connect (or fail) before it counts as unreachable. */
  readonly connectWithinMs?: number;
}

/**
 * The brokers that announced themselves by heartbeat, what each holds, and a gRPC client for each: over
 * mutual TLS, as the scheduler (its certificate), to a server that must show the broker's certificate.
 * Heartbeats say which brokers exist and what room they have, whichever way they are dialled.
 */
export class BrokerRegistry {
  private readonly brokers = new Map<string, KnownBroker>();
  private readonly clients = new Map<string, PeerChannel<BrokerClient>>();
  /** Made once: each set of credentials builds its own TLS context. */
  private readonly credentials: ChannelCredentials;
  readonly freshForMs: number;
  private readonly viaXds: boolean;
  private readonly connectWithinMs: number;

  constructor(tls: ServiceTls, options: BrokerRegistryOptions = {}) {
    // Through xDS the same credentials apply: a cluster without a transport socket of its own (what
    // services/xds serves) is dialled with the channel's.
    this.credentials = channelCredentials(tls, 'broker');
    this.freshForMs = options.freshForMs ?? 5_000;
    this.viaXds = options.viaXds ?? false;
    // Longer than grpc-js-xds's 15 s wait for a resource it has never seen, so that a broker the control
    // plane learns of late (it hears the same heartbeats, after its debounce) is reached, not given up on.
    this.connectWithinMs = options.connectWithinMs ?? 20_000;
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

  /** Where calls to the broker go: its xDS name, or the address of its latest heartbeat. */
  target(brokerId: string): string {
    const b = this.brokers.get(brokerId);
    if (!b) throw new BrokerUnknownError(brokerId);
    return this.viaXds ? `xds:///${brokerService(brokerId)}` : b.heartbeat.grpcAddress;
  }

  /**
   * A connected (or failed) client of the broker: one per broker, made again when its address changes, or
   * when the broker is heard after its channel failed (PeerChannel).
   */
  private async client(brokerId: string): Promise<BrokerClient> {
    const target = this.target(brokerId);
    const previous = this.clients.get(brokerId);
    let channel = previous;
    if (channel?.target !== target || channel.failedBefore(this.brokers.get(brokerId)!.seenAtMs)) {
      channel = new PeerChannel(target, new BrokerClient(target, this.credentials, channelOptions('broker')));
      this.clients.set(brokerId, channel);
    }
    try {
      await settled(channel.client, brokerId, target, this.connectWithinMs);
    } finally {
      // Only now: were the old channel's xDS subscriptions the process's last, closing it first would end the
      // ADS stream and start another, and each start lengthens the backoff grpc-js-xds waits before it
      // reconnects to a restarted control plane, which it never shortens again.
      if (channel !== previous) previous?.client.close();
    }
    return channel.client;
  }

  async launch(brokerId: string, req: LaunchRequest, ctx: Context | undefined, timeoutMs = 60_000): Promise<LaunchReply> {
    const client = await this.client(brokerId);
    return new Promise((resolve, reject) =>
      client.launch(req, metadata(ctx), { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res))),
    );
  }

  async cancel(brokerId: string, executionId: string, graceMs: number, ctx?: Context): Promise<CancelReply> {
    const client = await this.client(brokerId);
    return new Promise((resolve, reject) =>
      client.cancel({ executionId, graceMs }, metadata(ctx), { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res))),
    );
  }

  close(): void {
    for (const { client } of this.clients.values()) client.close();
    this.clients.clear();
  }
}
