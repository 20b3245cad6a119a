import { topics, type Bus, type Subscription } from '@paddock/bus';
import type { PortVisibility as PortVisibilityMessage } from '@paddock/proto';
import type { Logger } from '@paddock/telemetry';
import type { PortVisibility } from '../resource/paddockState.js';
import type { StateSource } from './stateSource.js';

const VISIBILITIES: readonly string[] = ['private', 'project', 'public'];

/**
 * Keeps the StateSource's ports from the bus: portdetect's `topics.portOpened` / `portClosed` and the
 * gateway's `topics.portVisibility`, followed live; and, for each instance the state learns of
 * (from a broker's heartbeat, or xds having just started), the last of each stored, since the last event
 * of an instance is its whole state. Live and stored may arrive in any order: the state keeps the newest
 * port event by `seq`, and a visibility map is the whole map.
 */
export class PortFeed {
  readonly #subscriptions: Subscription[] = [];
  readonly #seeded = new Set<string>();
  #unlisten: (() => void) | undefined;

  constructor(
    private readonly state: StateSource,
    private readonly log: Logger,
  ) {}

  start(bus: Bus): void {
    for (const topic of [topics.portOpened, topics.portClosed]) {
      this.#subscriptions.push(bus.subscribe(topic, '*', ({ message }) => this.state.applyPortEvent(message)));
    }
    this.#subscriptions.push(bus.subscribe(topics.portVisibility, '*', ({ message }) => this.#applyVisibility(message)));
    const seedNew = () => {
      for (const id of this.state.state().instances.keys()) {
        if (this.#seeded.has(id)) continue;
        this.#seeded.add(id);
        void this.#seed(bus, id);
      }
      // Forget what the state forgot, so that the set stays as small as the state.
      for (const id of this.#seeded) if (!this.state.state().instances.has(id)) this.#seeded.delete(id);
    };
    this.#unlisten = this.state.onChange(seedNew);
    seedNew();
  }

  async stop(): Promise<void> {
    this.#unlisten?.();
    await Promise.all(this.#subscriptions.splice(0).map((s) => s.stop()));
  }

  async #seed(bus: Bus, id: string): Promise<void> {
    try {
      const [opened, closed, visibility] = await Promise.all([
        bus.lastStored(topics.portOpened, id),
        bus.lastStored(topics.portClosed, id),
        bus.lastStored(topics.portVisibility, id),
      ]);
      for (const stored of [opened, closed]) if (stored) this.state.applyPortEvent(stored.message);
      if (visibility) this.#applyVisibility(visibility.message);
    } catch (err) {
      // Live events still arrive; the next change of the instance brings its whole state anyway.
      this.#seeded.delete(id);
      this.log.warn({ err, instanceId: id }, 'could not read the stored port state of an instance');
    }
  }

  /** The whole map: a port it does not name is private. */
  #applyVisibility(message: PortVisibilityMessage): void {
    const known = this.state.state().instances.get(message.instanceId);
    if (!known) return;
    const wanted = new Map<number, PortVisibility>();
    for (const [port, value] of Object.entries(message.visibility)) {
      if (VISIBILITIES.includes(value)) wanted.set(Number(port), value as PortVisibility);
      else this.log.warn({ instanceId: message.instanceId, port, value }, 'unknown port visibility ignored');
    }
    for (const port of known.ports.keys()) this.state.setPortVisibility(message.instanceId, port, wanted.get(port) ?? 'private');
    for (const [port, value] of wanted) if (!known.ports.has(port)) this.state.setPortVisibility(message.instanceId, port, value);
  }
}
