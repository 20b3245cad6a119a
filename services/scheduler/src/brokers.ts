import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { BrokerClient, type BrokerHeartbeat, type CancelReply, type LaunchReply, type LaunchRequest } from '@paddock/proto';
import { injectContext } from '@paddock/telemetry';
import type { Context } from '@opentelemetry/api';

export interface KnownBroker {
  readonly heartbeat: BrokerHeartbeat;
  readonly seenAtMs: number;
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

/** The brokers that announced themselves by heartbeat, and a gRPC client for each. */
export class BrokerRegistry {
  private readonly brokers = new Map<string, KnownBroker>();
  private readonly clients = new Map<string, BrokerClient>();

  constructor(private readonly freshForMs = 5_000) {}

  seen(hb: BrokerHeartbeat, nowMs = Date.now()): boolean {
    const before = this.brokers.get(hb.brokerId);
    this.brokers.set(hb.brokerId, { heartbeat: hb, seenAtMs: nowMs });
    return !before || before.heartbeat.grpcAddress !== hb.grpcAddress || before.heartbeat.running > hb.running;
  }

  /** Brokers heard from recently. */
  available(nowMs = Date.now()): BrokerHeartbeat[] {
    return [...this.brokers.values()].filter((b) => nowMs - b.seenAtMs < this.freshForMs).map((b) => b.heartbeat);
  }

  lastSeenMs(brokerId: string): number | undefined {
    return this.brokers.get(brokerId)?.seenAtMs;
  }

  private client(brokerId: string): BrokerClient | null {
    const b = this.brokers.get(brokerId);
    if (!b) return null;
    const key = `${brokerId}@${b.heartbeat.grpcAddress}`;
    let c = this.clients.get(key);
    if (!c) {
      c = new BrokerClient(b.heartbeat.grpcAddress, credentials.createInsecure());
      this.clients.set(key, c);
    }
    return c;
  }

  launch(brokerId: string, req: LaunchRequest, ctx: Context | undefined, timeoutMs = 60_000): Promise<LaunchReply> {
    const c = this.client(brokerId);
    if (!c) return Promise.reject(Object.assign(new Error(`broker ${brokerId} is unknown`), { code: status.UNAVAILABLE }));
    return new Promise((resolve, reject) =>
      c.launch(req, metadata(ctx), { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res))),
    );
  }

  cancel(brokerId: string, executionId: string, graceMs: number, ctx?: Context): Promise<CancelReply> {
    const c = this.client(brokerId);
    if (!c) return Promise.reject(Object.assign(new Error(`broker ${brokerId} is unknown`), { code: status.UNAVAILABLE }));
    return new Promise((resolve, reject) =>
      c.cancel({ executionId, graceMs }, metadata(ctx), { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res))),
    );
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
