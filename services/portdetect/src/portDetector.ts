import type { PortChanged, PortListener } from '@paddock/proto';
import type { Logger } from '@paddock/telemetry';
import type { RunningInstance } from './dockerInstances.js';
import { NamespaceGoneError, NamespaceSockets } from './namespaceSockets.js';
import { byPort, type Listener } from './socketTable.js';

export type PortChange = 'opened' | 'closed';

/** Where port events go, and where an instance's last one is read back from at start. */
export interface PortEventSink {
  /** The last event stored for the instance, or null when it has none. */
  last(instanceId: string): Promise<PortChanged | null>;
  /** Stores the event; resolves once it is stored (retrying while the bus is away). */
  publish(change: PortChange, event: PortChanged): Promise<void>;
}

export interface PortDetectorOptions {
  readonly procDir: string;
  /** How often every instance's change signal (its sockstat counts) is read. */
  readonly intervalMs: number;
  /** Every instance's tables are read in full at least this often (stretched to keep within `verifyBudget`). */
  readonly verifyMs: number;
  /** Least time between two full reads of an instance whose counts keep changing. */
  readonly busyMs: number;
  /** Share of one core that periodic verification may use. */
  readonly verifyBudget?: number;
  readonly now?: () => number;
}

interface Tracked {
  readonly instance: RunningInstance;
  sockets: NamespaceSockets | undefined;
  counts: string;
  readonly ports: Map<number, PortListener>;
  seq: number;
  lastFullAtMs: number;
  nextVerifyAtMs: number;
  changed: boolean;
  /** Events of this instance are stored in order: each publish waits for the one before. */
  chain: Promise<void>;
  ended: boolean;
}

/**
 * Keeps, for every running instance, the set of TCP ports something listens on, and emits an event for
 * each change: a cheap change signal every tick, a full read of the socket tables when it moves, and a
 * periodic full read to catch what the signal cannot see (see README: "How it detects").
 */
export class PortDetector {
  readonly #tracked = new Map<string, Tracked>();
  /** Instances being loaded (their last event read back): ticks skip them until they are in #tracked. */
  readonly #loading = new Map<string, Promise<void>>();
  /** One buffer for every read: reads are synchronous, so they never overlap. */
  readonly #buffer = Buffer.alloc(64 * 1024);
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  #fullReadCostMs = 0.05;
  #fullReads = 0;

  constructor(
    private readonly sink: PortEventSink,
    private readonly log: Logger,
    private readonly opts: PortDetectorOptions,
  ) {
    this.#now = opts.now ?? Date.now;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.tick(), this.opts.intervalMs);
  }

  /** Stops detecting, ends the tracking of every instance, and waits for events already emitted to be stored. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await Promise.allSettled(this.#loading.values());
    const chains = [...this.#tracked.values()].map((t) => {
      t.sockets?.close();
      return t.chain;
    });
    this.#tracked.clear();
    await Promise.allSettled(chains);
  }

  /** The ports open in an instance as last emitted (for health and tests). */
  ports(instanceId: string): PortListener[] {
    return [...(this.#tracked.get(instanceId)?.ports.values() ?? [])];
  }

  get instanceCount(): number {
    return this.#tracked.size;
  }

  get fullReads(): number {
    return this.#fullReads;
  }

  /**
   * Starts tracking an instance: reads back its last stored event (what consumers believe is open and the
   * sequence so far), then its real sockets, and emits only the difference.
   */
  add(instance: RunningInstance): Promise<void> {
    const previous = this.#tracked.get(instance.id);
    const loading = (async () => {
      // The same instance again (its container restarted): the old tracking ends first, in order.
      if (previous) await this.#end(previous, false);
      const last = await this.sink.last(instance.id);
      const ports = new Map<number, PortListener>();
      if (last && !last.instanceEnded) for (const p of last.open) ports.set(p.port, p);
      let sockets: NamespaceSockets | undefined;
      try {
        sockets = NamespaceSockets.open(this.opts.procDir, instance.pid, this.#buffer);
      } catch (err) {
        if (!(err instanceof NamespaceGoneError)) throw err;
        // It ended while being loaded: its `die` ends the tracking.
      }
      const now = this.#now();
      const tracked: Tracked = {
        instance,
        sockets,
        counts: '',
        ports,
        seq: last?.seq ?? 0,
        lastFullAtMs: 0,
        // Spread over the interval, so verification is a steady trickle rather than a wave.
        nextVerifyAtMs: now + Math.random() * this.#verifyEveryMs(),
        changed: true,
        chain: Promise.resolve(),
        ended: false,
      };
      this.#tracked.set(instance.id, tracked);
      this.#check(tracked, now);
    })();
    this.#loading.set(instance.id, loading);
    return loading
      .catch((err: unknown) => this.log.error({ err, instanceId: instance.id }, 'could not start watching the ports of an instance'))
      .finally(() => {
        if (this.#loading.get(instance.id) === loading) this.#loading.delete(instance.id);
      });
  }

  /** The instance ended: each port it had open is closed, in one event each, marked `instanceEnded`. */
  async remove(instanceId: string): Promise<void> {
    await this.#loading.get(instanceId);
    const tracked = this.#tracked.get(instanceId);
    if (!tracked) return;
    this.#tracked.delete(instanceId);
    await this.#end(tracked, true);
  }

  /** One pass over every instance; run every `intervalMs`. */
  tick(): void {
    const now = this.#now();
    for (const tracked of this.#tracked.values()) this.#check(tracked, now);
  }

  #check(t: Tracked, now: number): void {
    if (t.ended || !t.sockets) return;
    try {
      const counts = t.sockets.counts();
      if (counts !== t.counts) {
        t.counts = counts;
        t.changed = true;
      }
      const due = now >= t.nextVerifyAtMs;
      if ((t.changed && now - t.lastFullAtMs >= this.opts.busyMs) || due) {
        this.#fullRead(t, now);
      }
    } catch (err) {
      if (!(err instanceof NamespaceGoneError)) throw err;
      // The process is gone; the engine's `die` for it ends the tracking.
      t.sockets.close();
      t.sockets = undefined;
    }
  }

  #fullRead(t: Tracked, now: number): void {
    const started = process.hrtime.bigint();
    const listeners = t.sockets!.listeners();
    const costMs = Number(process.hrtime.bigint() - started) / 1e6;
    this.#fullReadCostMs = this.#fullReadCostMs * 0.9 + costMs * 0.1;
    this.#fullReads++;
    t.changed = false;
    t.lastFullAtMs = now;
    t.nextVerifyAtMs = now + this.#verifyEveryMs();
    this.#apply(t, byPort(listeners), now);
  }

  /**
   * How often each instance is verified: `verifyMs`, or longer when reading every instance that often
   * would cost more than the budget (a host whose namespaces have large connection tables).
   */
  #verifyEveryMs(): number {
    const budget = this.opts.verifyBudget ?? 0.01;
    return Math.max(this.opts.verifyMs, (this.#tracked.size * this.#fullReadCostMs) / budget);
  }

  #apply(t: Tracked, truth: Map<number, Listener>, now: number): void {
    for (const [port, l] of truth) {
      const seen = t.ports.get(port);
      if (seen && seen.address === l.address && seen.family === l.family) continue;
      t.ports.set(port, { port, address: l.address, family: l.family, openedAtMs: seen?.openedAtMs ?? now });
      this.#emit(t, 'opened', port, now, false);
    }
    for (const port of [...t.ports.keys()]) {
      if (truth.has(port)) continue;
      t.ports.delete(port);
      this.#emit(t, 'closed', port, now, false);
    }
  }

  #emit(t: Tracked, change: PortChange, port: number, now: number, instanceEnded: boolean): void {
    t.seq++;
    const event: PortChanged = {
      instanceId: t.instance.id,
      brokerId: t.instance.brokerId,
      port,
      open: [...t.ports.values()].sort((a, b) => a.port - b.port),
      seq: t.seq,
      atMs: now,
      instanceEnded,
    };
    this.log.debug({ instanceId: t.instance.id, port, change, seq: t.seq }, `port ${change}`);
    t.chain = t.chain.then(() => this.sink.publish(change, event)).catch((err: unknown) => {
      this.log.error({ err, instanceId: t.instance.id, port, change }, 'a port event could not be stored');
    });
  }

  async #end(t: Tracked, publish: boolean): Promise<void> {
    t.ended = true;
    t.sockets?.close();
    t.sockets = undefined;
    if (publish) {
      const now = this.#now();
      for (const port of [...t.ports.keys()].sort((a, b) => a - b)) {
        t.ports.delete(port);
        this.#emit(t, 'closed', port, now, true);
      }
    }
    await t.chain;
  }
}
