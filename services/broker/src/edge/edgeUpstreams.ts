import { Agent, type ClientRequestArgs } from 'node:http';
import type { Duplex } from 'node:stream';
import { RelayFailedError } from '../relay/errors.js';
import { RelaySocket } from '@paddock/relay';

/** Opens the relay's stream to a port of an instance this broker runs (InstanceManager.reachPort). */
export type ReachPort = (executionId: string, port: number) => Promise<Duplex>;

/** An idle pooled connection is closed after this long: each holds a relay process and a connection inside the instance. */
const IDLE_MS = 30_000;
/** Idle connections kept per port of an instance; more are closed when their response ends. */
const MAX_IDLE_PER_PORT = 8;
/** How often pools with no connection left are forgotten. */
const SWEEP_MS = 60_000;

/** The relay's stream once the connection inside is open; rejects with why it could not be (nothing listens, the instance is gone). */
async function connected(reachPort: ReachPort, executionId: string, port: number): Promise<Duplex> {
  const stream = await reachPort(executionId, port);
  return new Promise<Duplex>((resolve, reject) => {
    const settle = (err?: Error) => {
      stream.off('connect', onConnect);
      stream.off('error', settle);
      stream.off('close', onClose);
      if (err) reject(err);
      else resolve(stream);
    };
    const onConnect = () => settle();
    const onClose = () => settle(new RelayFailedError(`the relay to port ${port} of execution ${executionId} ended before it connected`));
    stream.once('connect', onConnect);
    stream.once('error', settle);
    stream.once('close', onClose);
  });
}

/**
 * An HTTP Agent for one port of one instance whose connections are relay streams into it: keep-alive
 * connections are pooled and reused, each a relay of its own, so the requests on one connection are
 * answered in order, and a WebSocket takes its connection out of the pool when it upgrades.
 */
class PortAgent extends Agent {
  constructor(
    private readonly reachPort: ReachPort,
    private readonly executionId: string,
    private readonly port: number,
  ) {
    super({ keepAlive: true, maxFreeSockets: MAX_IDLE_PER_PORT, timeout: IDLE_MS, scheduling: 'lifo' });
  }

  override createConnection(_options: ClientRequestArgs, callback?: (err: Error | null, stream: Duplex) => void): undefined {
    connected(this.reachPort, this.executionId, this.port).then(
      (stream) => callback?.(null, new RelaySocket(stream)),
      (err: Error) => callback?.(err, undefined as unknown as Duplex),
    );
    return undefined;
  }

  /** No connection open, idle or asked for. */
  get unused(): boolean {
    return Object.keys(this.sockets).length === 0 && Object.keys(this.freeSockets).length === 0 && Object.keys(this.requests).length === 0;
  }
}

/**
 * The relay's connection pools, one Agent per (instance, port). Requests on one connection from Envoy may
 * go to different instances: each goes through the pool of its own target. Pools left with no connection
 * are forgotten.
 */
export class EdgeUpstreams {
  readonly #agents = new Map<string, PortAgent>();
  readonly #sweeping: NodeJS.Timeout;

  constructor(private readonly reachPort: ReachPort) {
    this.#sweeping = setInterval(() => this.sweep(), SWEEP_MS);
    this.#sweeping.unref();
  }

  agentFor(executionId: string, port: number): Agent {
    const key = `${executionId}:${port}`;
    let agent = this.#agents.get(key);
    if (!agent) {
      agent = new PortAgent(this.reachPort, executionId, port);
      this.#agents.set(key, agent);
    }
    return agent;
  }

  /** Forgets the pools with no connection left (an instance that ended, a port no longer asked for). */
  sweep(): void {
    for (const [key, agent] of this.#agents) {
      if (!agent.unused) continue;
      agent.destroy();
      this.#agents.delete(key);
    }
  }

  /** Pools held now. */
  get size(): number {
    return this.#agents.size;
  }

  destroy(): void {
    clearInterval(this.#sweeping);
    for (const agent of this.#agents.values()) agent.destroy();
    this.#agents.clear();
  }
}
