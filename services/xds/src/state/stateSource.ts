import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { topics, type Bus, type Subscription } from '@paddock/bus';
import type { BrokerHeartbeat } from '@paddock/proto';
import type { Logger } from '@paddock/telemetry';
import {
  AddressError,
  parseHostPort,
  type BrokerState,
  type HostPort,
  type InstanceState,
  type OpenPort,
  type PaddockState,
  type PortVisibility,
} from '../resource/paddockState.js';

/**
 * A port event as portdetect publishes it (`PortChanged` on `topics.portOpened` / `topics.portClosed`):
 * the message can be passed as it is.
 */
export interface PortEvent {
  readonly instanceId: string;
  readonly brokerId: string;
  /** Every port open after the change. */
  readonly open: readonly { readonly port: number }[];
  /** Grows by one with each event of the instance. */
  readonly seq: number;
  /** The instance ended: all its ports are gone. */
  readonly instanceEnded: boolean;
}

export interface StateSourceOptions {
  /** A broker whose heartbeat has not come for this long is gone, with its instances. */
  readonly brokerStaleMs: number;
  /**
   * An instance its broker's heartbeat does not list is dropped, unless a port event of it came within
   * this long (the event may have overtaken the heartbeat that lists it).
   */
  readonly instanceSettleMs: number;
  readonly log: Logger;
  /** Resolves a broker's host name to an IP address (endpoints take addresses only); DNS by default. */
  readonly resolveHost?: (host: string) => Promise<string>;
  readonly now?: () => number;
}

/** What StateSource reads of a broker's heartbeat (brokers before the HTTP relay announce none). */
export type Heartbeat = Pick<BrokerHeartbeat, 'brokerId' | 'grpcAddress' | 'executionIds'> & Partial<Pick<BrokerHeartbeat, 'relayAddress'>>;

/** The addresses as announced, one string: a heartbeat that repeats it changes nothing. */
function announcedOf(grpcAddress: string, relayAddress: string): string {
  return `${grpcAddress} ${relayAddress}`;
}

interface BrokerEntry {
  /** The addresses as announced (announcedOf), before resolution. */
  readonly announced: string;
  readonly state: BrokerState;
  lastSeenMs: number;
  executionIds: ReadonlySet<string>;
}

interface InstanceEntry {
  brokerId: string;
  /** Open port numbers. */
  ports: ReadonlySet<number>;
  /** Visibility given to a port; the others are private. */
  readonly visibility: Map<number, PortVisibility>;
  /** The seq of the last port event applied; 0 before any. */
  seq: number;
  /** When the last port event was applied (0: known from heartbeats only). */
  lastEventMs: number;
}

/** How long the seq of an ended instance is kept, so that an event delivered late does not bring it back. */
const ENDED_KEPT_MS = 10 * 60_000;
/** A host name that failed to resolve is tried again no sooner than this. */
const RESOLVE_RETRY_MS = 5_000;

function sameHostPort(a: HostPort | null, b: HostPort | null): boolean {
  return a === b || (a !== null && b !== null && a.host === b.host && a.port === b.port);
}

/**
 * Keeps `PaddockState` from what the bus says: brokers from their heartbeats (address, executions held),
 * instances' ports from port events (`applyPortEvent`), and tells its listeners when something that changes
 * the configuration changed (a heartbeat that only repeats itself changes nothing).
 */
export class StateSource {
  readonly #brokers = new Map<string, BrokerEntry>();
  readonly #instances = new Map<string, InstanceEntry>();
  readonly #ended = new Map<string, { seq: number; atMs: number }>();
  readonly #listeners = new Set<() => void>();
  /** Host names being resolved, and failures not to retry yet. */
  readonly #resolving = new Map<string, Promise<void>>();
  readonly #failedAtMs = new Map<string, number>();
  /** Warnings already logged, so that a broker beating every second with a bad address is logged once. */
  readonly #warned = new Set<string>();
  readonly #now: () => number;
  readonly #resolveHost: (host: string) => Promise<string>;
  #subscription: Subscription | undefined;
  #sweeping: NodeJS.Timeout | undefined;

  constructor(private readonly options: StateSourceOptions) {
    this.#now = options.now ?? Date.now;
    this.#resolveHost = options.resolveHost ?? (async (host) => (await lookup(host)).address);
  }

  /** Calls `listener` after each change; returns the function that stops it. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Follows broker heartbeats on `bus` and drops silent brokers, until `stop`. */
  start(bus: Bus): void {
    this.#subscription = bus.subscribe(topics.brokerHeartbeat, '*', ({ message }) => this.applyHeartbeat(message));
    this.#sweeping = setInterval(() => this.sweep(), Math.max(100, Math.min(1_000, this.options.brokerStaleMs / 4)));
    this.#sweeping.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#sweeping);
    await this.#subscription?.stop();
    this.#subscription = undefined;
  }

  /** The state now, as plain immutable data. */
  state(): PaddockState {
    const brokers = new Map<string, BrokerState>();
    for (const [id, b] of this.#brokers) brokers.set(id, b.state);
    const instances = new Map<string, InstanceState>();
    for (const [id, i] of this.#instances) {
      const ports = new Map<number, OpenPort>();
      for (const port of [...i.ports].sort((a, b) => a - b)) ports.set(port, Object.freeze({ port, visibility: i.visibility.get(port) ?? 'private' }));
      instances.set(id, Object.freeze({ id, brokerId: i.brokerId, ports }));
    }
    return Object.freeze({ brokers, instances });
  }

  /**
   * A broker's heartbeat: it is alive, at these addresses (its gRPC API; its HTTP relay for Envoy, if it
   * announces one), holding these executions.
   */
  applyHeartbeat(beat: Heartbeat): void {
    const nowMs = this.#now();
    const relayAddress = beat.relayAddress ?? '';
    let grpc: HostPort;
    let relay: HostPort | null;
    try {
      grpc = parseHostPort(beat.grpcAddress);
      relay = relayAddress === '' ? null : parseHostPort(relayAddress);
    } catch (err) {
      if (err instanceof AddressError) {
        this.#warnOnce(`address:${beat.brokerId}:${err.address}`, { brokerId: beat.brokerId, err }, `broker ${beat.brokerId} announced an address no endpoint can have; it is left out`);
        return;
      }
      throw err;
    }
    if (relay === null) {
      this.#noteOnce(
        `no-relay:${beat.brokerId}`,
        { brokerId: beat.brokerId },
        `broker ${beat.brokerId} announces no HTTP relay address: Envoy gets no endpoint for its instances (the gateway's ingress still reaches them)`,
      );
    }
    const announced = announcedOf(beat.grpcAddress, relayAddress);
    const known = this.#brokers.get(beat.brokerId);
    if (known && known.announced === announced) {
      known.lastSeenMs = nowMs;
      this.#setExecutions(beat.brokerId, known, new Set(beat.executionIds), nowMs);
      return;
    }
    if (isIP(grpc.host) && (relay === null || isIP(relay.host))) {
      this.#addBroker(beat, announced, grpc, relay, nowMs);
      return;
    }
    // A host name: endpoints take addresses, so the broker joins once its names resolve.
    this.#resolve(beat, announced, grpc, relay);
  }

  /**
   * A port event of an instance (see PortEvent). The newest event wins: it carries every open port, so an
   * older one (by `seq`) is ignored, and `instanceEnded` drops the instance.
   */
  applyPortEvent(event: PortEvent): void {
    const nowMs = this.#now();
    const ended = this.#ended.get(event.instanceId);
    if (ended && event.seq <= ended.seq) return;
    const entry = this.#instances.get(event.instanceId);
    if (entry && event.seq <= entry.seq) return;
    if (event.instanceEnded) {
      this.#ended.set(event.instanceId, { seq: event.seq, atMs: nowMs });
      if (entry && this.#instances.delete(event.instanceId)) this.#changed();
      return;
    }
    const ports = new Set(event.open.map((p) => p.port).filter((p) => Number.isInteger(p) && p >= 1 && p <= 65_535));
    if (!entry) {
      this.#instances.set(event.instanceId, { brokerId: event.brokerId, ports, visibility: new Map(), seq: event.seq, lastEventMs: nowMs });
      this.#changed();
      return;
    }
    const changed = entry.brokerId !== event.brokerId || entry.ports.size !== ports.size || [...ports].some((p) => !entry.ports.has(p));
    Object.assign(entry, { brokerId: event.brokerId, ports, seq: event.seq, lastEventMs: nowMs });
    if (changed) this.#changed();
  }

  /** Who may open a port's URL (a share); false when the instance is not known. */
  setPortVisibility(instanceId: string, port: number, visibility: PortVisibility): boolean {
    const entry = this.#instances.get(instanceId);
    if (!entry) return false;
    if ((entry.visibility.get(port) ?? 'private') === visibility) return true;
    if (visibility === 'private') entry.visibility.delete(port);
    else entry.visibility.set(port, visibility);
    if (entry.ports.has(port)) this.#changed();
    return true;
  }

  /** Drops brokers silent for `brokerStaleMs`, with their instances; forgets ended instances after a while. */
  sweep(): void {
    const nowMs = this.#now();
    let changed = false;
    for (const [id, b] of this.#brokers) {
      if (nowMs - b.lastSeenMs < this.options.brokerStaleMs) continue;
      this.#brokers.delete(id);
      for (const [instanceId, i] of this.#instances) if (i.brokerId === id) this.#instances.delete(instanceId);
      this.options.log.info({ brokerId: id, silentMs: nowMs - b.lastSeenMs }, `broker ${id} is gone: no heartbeat for ${nowMs - b.lastSeenMs} ms`);
      changed = true;
    }
    for (const [id, e] of this.#ended) if (nowMs - e.atMs > ENDED_KEPT_MS) this.#ended.delete(id);
    if (changed) this.#changed();
  }

  #addBroker(beat: Heartbeat, announced: string, grpc: HostPort, relay: HostPort | null, nowMs: number): void {
    const before = this.#brokers.get(beat.brokerId);
    const state: BrokerState = Object.freeze({ id: beat.brokerId, grpc: Object.freeze(grpc), relay: relay && Object.freeze(relay) });
    const entry: BrokerEntry = { announced, state, lastSeenMs: nowMs, executionIds: new Set() };
    this.#brokers.set(beat.brokerId, entry);
    if (!before) this.options.log.info({ brokerId: beat.brokerId, grpc: beat.grpcAddress, relay: beat.relayAddress ?? '' }, `broker ${beat.brokerId} is alive at ${beat.grpcAddress}`);
    const moved = !before || !sameHostPort(before.state.grpc, state.grpc) || !sameHostPort(before.state.relay, state.relay);
    const executionsChanged = this.#setExecutions(beat.brokerId, entry, new Set(beat.executionIds), nowMs, false);
    if (moved || executionsChanged) this.#changed();
  }

  /** Records what a broker holds; instances it no longer lists go (see instanceSettleMs). Returns whether anything changed. */
  #setExecutions(brokerId: string, entry: BrokerEntry, executionIds: ReadonlySet<string>, nowMs: number, notify = true): boolean {
    let changed = false;
    for (const id of executionIds) {
      if (this.#instances.has(id) || this.#ended.has(id)) continue;
      this.#instances.set(id, { brokerId, ports: new Set(), visibility: new Map(), seq: 0, lastEventMs: 0 });
      changed = true;
    }
    for (const [id, i] of this.#instances) {
      if (i.brokerId !== brokerId || executionIds.has(id)) continue;
      if (i.lastEventMs !== 0 && nowMs - i.lastEventMs < this.options.instanceSettleMs) continue;
      this.#instances.delete(id);
      changed = true;
    }
    entry.executionIds = executionIds;
    if (changed && notify) this.#changed();
    return changed;
  }

  #resolve(beat: Heartbeat, announced: string, grpc: HostPort, relay: HostPort | null): void {
    const key = `${beat.brokerId}\n${announced}`;
    if (this.#resolving.has(key)) return;
    const failedAtMs = this.#failedAtMs.get(key);
    if (failedAtMs !== undefined && this.#now() - failedAtMs < RESOLVE_RETRY_MS) return;
    const toAddress = async (hostPort: HostPort): Promise<HostPort> => {
      if (isIP(hostPort.host)) return hostPort;
      const address = await this.#resolveHost(hostPort.host);
      if (!isIP(address)) throw new Error(`the resolver gave "${address}" for ${hostPort.host}, not an IP address`);
      return { host: address, port: hostPort.port };
    };
    const resolve = async (): Promise<void> => {
      try {
        const [grpcAt, relayAt] = await Promise.all([toAddress(grpc), relay === null ? null : toAddress(relay)]);
        this.#failedAtMs.delete(key);
        this.#addBroker(beat, announced, grpcAt, relayAt, this.#now());
      } catch (err) {
        this.#failedAtMs.set(key, this.#now());
        this.#warnOnce(`resolve:${key}`, { brokerId: beat.brokerId, err }, `broker ${beat.brokerId}'s host names do not resolve (${announced}); it is left out until they do`);
      }
    };
    this.#resolving.set(
      key,
      resolve().finally(() => this.#resolving.delete(key)),
    );
  }

  #warnOnce(key: string, fields: Record<string, unknown>, message: string): void {
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.options.log.warn(fields, message);
  }

  /** What is worth saying once per process, not with each heartbeat (at info: it may be as configured). */
  #noteOnce(key: string, fields: Record<string, unknown>, message: string): void {
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.options.log.info(fields, message);
  }

  #changed(): void {
    for (const listener of this.#listeners) listener();
  }
}
