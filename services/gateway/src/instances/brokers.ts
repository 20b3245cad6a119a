import { connectivityState, Metadata, status, type ChannelCredentials, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import type { Duplex } from 'node:stream';
import { topics, type Bus, type Subscription } from '@paddock/bus';
import { PaddockError, UnavailableError } from '@paddock/errors';
import { channelCredentials, channelOptions, PeerChannel, type ServiceTls } from '@paddock/plane';
import { BrokerClient, type AccessReply, type ExecOutput, type ExecRequest } from '@paddock/proto';
import { brokerService } from '@paddock/xds';
import { RelayStream } from './relayStream.js';

const STALE_MS = 10_000;

export interface BrokerDirectoryOptions {
  /**
   * Dial each broker as `xds:///paddock-broker.<broker-id>`, through the control plane (services/xds), which
   * follows the broker wherever its heartbeat says it is; the xds: resolver must be registered in this
   * process (main.ts). Otherwise each broker is dialled at the address its latest heartbeat announces.
   */
  readonly viaXds?: boolean;
  /** How long a call waits for the broker's channel to connect (or fail) before the broker counts as not answering. */
  readonly connectWithinMs?: number;
}

/**
 * Resolves once the client's channel has connected, or has failed (a call then fails at once with
 * UNAVAILABLE); false if it is still looking after `withinMs`. Without it, a stream (exec, relay: no
 * deadline) to a broker whose address is not known yet would wait for one for as long as the caller does.
 */
function settled(client: BrokerClient, withinMs: number): Promise<boolean> {
  const channel = client.getChannel();
  const deadline = Date.now() + withinMs;
  return new Promise((resolve) => {
    const check = (): void => {
      const state = channel.getConnectivityState(true);
      if (state === connectivityState.READY || state === connectivityState.TRANSIENT_FAILURE || state === connectivityState.SHUTDOWN) return resolve(true);
      channel.watchConnectivityState(state, deadline, (err) => (err ? resolve(false) : check()));
    };
    check();
  });
}


/** The instance is not running (any more), or runs nothing to connect to. */
export class InstanceUnavailableError extends PaddockError {
  constructor(message: string) {
    super('instance_unavailable', 409, message);
  }
}

/**
 * The brokers, found by their heartbeats, and a gRPC client to each: how the gateway reaches a running
 * instance (its SSH details, a command run in it). Over mutual TLS, as the gateway (its certificate), to a
 * server that must show the broker's certificate. Heartbeats say which brokers are alive whichever way
 * they are dialled.
 */
export class BrokerDirectory {
  readonly #addresses = new Map<string, { address: string; seenMs: number }>();
  readonly #clients = new Map<string, PeerChannel<BrokerClient>>();
  /** Made once: each set of credentials builds its own TLS context. */
  readonly #credentials: ChannelCredentials;
  readonly #viaXds: boolean;
  readonly #connectWithinMs: number;
  #subscription: Subscription | undefined;

  constructor(
    private readonly bus: Bus,
    tls: ServiceTls,
    options: BrokerDirectoryOptions = {},
  ) {
    // Through xDS the same credentials apply: a cluster without a transport socket of its own (what
    // services/xds serves) is dialled with the channel's.
    this.#credentials = channelCredentials(tls, 'broker');
    this.#viaXds = options.viaXds ?? false;
    // As long as an Access call may take: a person waits on the other end.
    this.#connectWithinMs = options.connectWithinMs ?? 10_000;
  }

  start(): void {
    this.#subscription = this.bus.subscribe(topics.brokerHeartbeat, '*', ({ message }) => {
      this.#addresses.set(message.brokerId, { address: message.grpcAddress, seenMs: Date.now() });
    });
  }

  async stop(): Promise<void> {
    await this.#subscription?.stop();
    for (const { client } of this.#clients.values()) client.close();
    this.#clients.clear();
  }

  async access(brokerId: string, executionId: string): Promise<AccessReply> {
    const client = await this.#client(brokerId);
    return new Promise((resolve, reject) =>
      client.access({ executionId }, new Metadata(), { deadline: Date.now() + 10_000 }, (err, reply) => (err ? reject(translate(err)) : resolve(reply))),
    );
  }

  /** The command's output as it comes; the last message carries the exit code. */
  async *exec(brokerId: string, req: ExecRequest, signal: AbortSignal): AsyncGenerator<ExecOutput> {
    const client = await this.#client(brokerId);
    const call: ClientReadableStream<ExecOutput> = client.exec(req);
    const abort = () => call.cancel();
    signal.addEventListener('abort', abort, { once: true });
    try {
      for await (const out of call) yield out as ExecOutput;
    } catch (err) {
      if (signal.aborted) return;
      throw translate(err as ServiceError);
    } finally {
      signal.removeEventListener('abort', abort);
    }
  }

  /**
   * A byte stream to 127.0.0.1:port inside a running instance, through its broker's Relay RPC; resolves once
   * the connection inside is open, rejects with InstanceUnavailableError when nothing listens there.
   */
  async relay(brokerId: string, executionId: string, port: number): Promise<Duplex> {
    const client = await this.#client(brokerId);
    return RelayStream.open(client.relay(), { executionId, port }, translate);
  }

  async #client(brokerId: string): Promise<BrokerClient> {
    let seen = this.#addresses.get(brokerId);
    // Just started: heartbeats come every second.
    for (let i = 0; !seen && i < 15; i++) {
      await new Promise((r) => setTimeout(r, 100));
      seen = this.#addresses.get(brokerId);
    }
    if (!seen || Date.now() - seen.seenMs > STALE_MS) throw new UnavailableError(`broker ${brokerId} is not answering`);
    // Through the control plane, the name stays and the channel follows the broker when it moves; a channel
    // that failed before the broker's latest heartbeat is made again (PeerChannel).
    const target = this.#viaXds ? `xds:///${brokerService(brokerId)}` : seen.address;
    const previous = this.#clients.get(brokerId);
    let channel = previous;
    if (channel?.target !== target || channel.failedBefore(seen.seenMs)) {
      channel = new PeerChannel(target, new BrokerClient(target, this.#credentials, channelOptions('broker')));
      this.#clients.set(brokerId, channel);
    }
    const reached = await settled(channel.client, this.#connectWithinMs);
    // Only now: were the old channel's xDS subscriptions the process's last, closing it first would end the
    // ADS stream and start another, and each start lengthens the backoff grpc-js-xds waits before it
    // reconnects to a restarted control plane, which it never shortens again.
    if (channel !== previous) previous?.client.close();
    if (!reached) {
      const through = this.#viaXds ? `${target} has no reachable address yet (is the control plane, services/xds, up?)` : `${target} does not answer`;
      throw new UnavailableError(`broker ${brokerId} could not be reached within ${this.#connectWithinMs} ms: ${through}`);
    }
    return channel.client;
  }
}

function translate(err: ServiceError): Error {
  if (err.code === status.NOT_FOUND || err.code === status.FAILED_PRECONDITION) return new InstanceUnavailableError(err.details);
  if (err.code === status.INVALID_ARGUMENT) return new PaddockError('invalid_request', 400, err.details);
  return new UnavailableError(`the broker did not answer: ${err.details || err.message}`);
}
