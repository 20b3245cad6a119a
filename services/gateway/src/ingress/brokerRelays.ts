import { status, type ChannelCredentials, type ServiceError } from '@grpc/grpc-js';
import type { Duplex } from 'node:stream';
import { PaddockError, UnavailableError } from '@paddock/errors';
import { channelCredentials, channelOptions, type ServiceTls } from '@paddock/plane';
import { BrokerClient } from '@paddock/proto';
import type { HostPort } from '@paddock/xds';
import { RelayStream } from '../instances/relayStream.js';

/** The instance runs, but nothing listens on the port asked for (the broker's FAILED_PRECONDITION). */
export class NothingListensError extends PaddockError {
  constructor(message: string) {
    super('nothing_listens', 502, message);
  }
}

/** The broker holds no running instance of that id any more (NOT_FOUND): it ended a moment ago. */
export class InstanceGoneError extends PaddockError {
  constructor(message: string) {
    super('not_found', 404, message);
  }
}

/** `host:port` as grpc-js dials it (`[v6]:port` for IPv6). */
export function addressOf(endpoint: HostPort): string {
  return endpoint.host.includes(':') ? `[${endpoint.host}]:${endpoint.port}` : `${endpoint.host}:${endpoint.port}`;
}

function translate(err: ServiceError): Error {
  if (err.code === status.FAILED_PRECONDITION) return new NothingListensError(err.details);
  if (err.code === status.NOT_FOUND) return new InstanceGoneError(err.details);
  return new UnavailableError(`the broker did not answer: ${err.details || err.message}`);
}

/**
 * Relay streams to ports of instances, opened on the broker at the address the control plane's load
 * assignment gives: one gRPC client per broker address, over mutual TLS as the gateway (the server must
 * show a broker's certificate of this Paddock's CA).
 */
export class BrokerRelays {
  readonly #credentials: ChannelCredentials;
  readonly #clients = new Map<string, BrokerClient>();

  constructor(tls: ServiceTls) {
    this.#credentials = channelCredentials(tls, 'broker');
  }

  /**
   * A byte stream to 127.0.0.1:`port` inside `instanceId`, once the connection there is open; rejects with
   * NothingListensError, InstanceGoneError, or UnavailableError when the broker cannot be reached.
   */
  open(endpoint: HostPort, instanceId: string, port: number): Promise<Duplex> {
    const address = addressOf(endpoint);
    let client = this.#clients.get(address);
    if (!client) {
      client = new BrokerClient(address, this.#credentials, channelOptions('broker'));
      this.#clients.set(address, client);
    }
    return RelayStream.open(client.relay(), { executionId: instanceId, port }, translate);
  }

  /** Closes the clients of every address not in `live` (brokers gone or moved). */
  retain(live: ReadonlySet<string>): void {
    for (const [address, client] of this.#clients) {
      if (live.has(address)) continue;
      client.close();
      this.#clients.delete(address);
    }
  }

  close(): void {
    for (const client of this.#clients.values()) client.close();
    this.#clients.clear();
  }
}
