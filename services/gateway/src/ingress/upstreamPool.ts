import { Agent, type ClientRequestArgs } from 'node:http';
import type { Duplex } from 'node:stream';
import type { PortRoute } from './routeTable.js';
import { RelaySocket } from '@paddock/relay';

/** Opens a byte stream to a port inside an instance (a broker's Relay call, in production). */
export type RelayOpener = (route: PortRoute) => Promise<Duplex>;

/** An idle pooled connection is closed after this long: each holds a relay call and a connection inside the instance. */
const IDLE_MS = 30_000;
/** Idle connections kept per port of an instance; more are closed when their response ends. */
const MAX_IDLE_PER_PORT = 8;

/**
 * An HTTP Agent for one port of one instance whose connections are relay streams: keep-alive connections
 * are pooled and reused, each a relay call of its own, so requests on one connection are answered in order
 * and a WebSocket takes its connection out of the pool when it upgrades.
 */
class RelayAgent extends Agent {
  #retired = false;

  constructor(
    private readonly route: PortRoute,
    private readonly openRelay: RelayOpener,
  ) {
    super({ keepAlive: true, maxFreeSockets: MAX_IDLE_PER_PORT, timeout: IDLE_MS, scheduling: 'lifo' });
  }

  override createConnection(_options: ClientRequestArgs, callback?: (err: Error | null, stream: Duplex) => void): undefined {
    this.openRelay(this.route).then(
      (relay) => callback?.(null, new RelaySocket(relay)),
      (err: Error) => callback?.(err, undefined as unknown as Duplex),
    );
    return undefined;
  }

  /** Keeps no connection from now on: idle ones close now, those in use once their response ends. */
  retire(): void {
    this.#retired = true;
    for (const sockets of Object.values(this.freeSockets)) for (const socket of sockets ?? []) socket.destroy();
  }

  override keepSocketAlive(socket: Duplex): boolean {
    return !this.#retired && (super.keepSocketAlive(socket) as unknown as boolean);
  }
}

function keyOf(instanceId: string, port: number): string {
  return `${instanceId}:${port}`;
}

/** The connection pools of the ingress: one Agent per (instance, port), dropped when the port closes. */
export class UpstreamPool {
  readonly #agents = new Map<string, RelayAgent>();

  constructor(private readonly openRelay: RelayOpener) {}

  agentFor(route: PortRoute): Agent {
    const key = keyOf(route.instanceId, route.port);
    let agent = this.#agents.get(key);
    if (!agent) {
      agent = new RelayAgent(route, this.openRelay);
      this.#agents.set(key, agent);
    }
    return agent;
  }

  /**
   * Retires the pools of ports no longer in `open`: a server that stopped listening may still finish what
   * it serves, so requests under way go on, and no connection is kept once they end.
   */
  retain(open: readonly PortRoute[]): void {
    const live = new Set(open.map((r) => keyOf(r.instanceId, r.port)));
    for (const [key, agent] of this.#agents) {
      if (live.has(key)) continue;
      agent.retire();
      this.#agents.delete(key);
    }
  }

  /** Pools open now, for tests and status. */
  get size(): number {
    return this.#agents.size;
  }

  destroy(): void {
    for (const agent of this.#agents.values()) agent.destroy();
    this.#agents.clear();
  }
}
