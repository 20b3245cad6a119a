import type { Logger } from '@paddock/telemetry';
import { InstanceNotFoundError } from '../provider/errors.js';
import type { InsideListener, Provider } from '../provider/provider.js';
import type { RelayEndpoint } from './endpoints.js';

/** After a listener died: the first restart comes after this, later ones after twice as long each, up to the maximum. */
const RESTART_DELAY_MS = 200;
const RESTART_DELAY_MAX_MS = 5_000;

/** The listeners of one instance, until `stop`. */
interface Offered {
  readonly stopping: AbortController;
  readonly supervisors: Promise<void>;
}

/**
 * Paddock's own endpoints (see RelayEndpoint) offered inside each running instance: one listener per
 * endpoint (Provider.listenInside), supervised: one that dies while the instance runs is started again.
 * The lifecycle starts them when an instance runs or is adopted after a restart, and stops them at its end.
 */
export class OutboundRelays {
  readonly #offered = new Map<string, Offered>();

  constructor(
    private readonly provider: Pick<Provider, 'listenInside'>,
    readonly endpoints: readonly RelayEndpoint[],
    private readonly log: Logger,
  ) {}

  /**
   * Offers every endpoint inside the instance, in the background, with the execution's own (its egress
   * proxy, on a socket of its own), which take the port of a global one; a second call does nothing.
   */
  start(executionId: string, ownEndpoints: readonly RelayEndpoint[] = []): void {
    const endpoints = [...this.endpoints.filter((e) => !ownEndpoints.some((own) => own.port === e.port)), ...ownEndpoints];
    if (endpoints.length === 0 || this.#offered.has(executionId)) return;
    const stopping = new AbortController();
    const supervisors = Promise.all(endpoints.map((endpoint) => this.#supervise(executionId, endpoint, stopping.signal))).then(() => {});
    this.#offered.set(executionId, { stopping, supervisors });
  }

  /** Stops the instance's listeners and the connections they carry; resolves once they are gone. */
  async stop(executionId: string): Promise<void> {
    const offered = this.#offered.get(executionId);
    if (!offered) return;
    offered.stopping.abort();
    await offered.supervisors;
    if (this.#offered.get(executionId) === offered) this.#offered.delete(executionId);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.#offered.keys()].map((id) => this.stop(id)));
  }

  async #supervise(executionId: string, endpoint: RelayEndpoint, signal: AbortSignal): Promise<void> {
    const log = this.log.child({ executionId, endpoint: endpoint.name, port: endpoint.port });
    const stopped = new Promise<'stopped'>((resolve) => signal.addEventListener('abort', () => resolve('stopped'), { once: true }));
    for (let delayMs = RESTART_DELAY_MS; !signal.aborted; delayMs = Math.min(delayMs * 2, RESTART_DELAY_MAX_MS)) {
      let listener: InsideListener | undefined;
      try {
        listener = await this.provider.listenInside(executionId, endpoint.port, endpoint.socketPath);
      } catch (err) {
        // The instance is gone: its end stops this supervisor too.
        if (err instanceof InstanceNotFoundError) return;
        log.warn({ err: (err as Error).message }, `${endpoint.name} cannot be offered inside the instance; trying again`);
      }
      if (listener) {
        const startedAtMs = Date.now();
        const why = await Promise.race([listener.ended, stopped]);
        if (why === 'stopped' || signal.aborted) {
          await listener.stop();
          return;
        }
        log.warn({ why }, `the relay of ${endpoint.name} inside the instance ended; starting it again`);
        // One that ran for a while gets restarted quickly again.
        if (Date.now() - startedAtMs > RESTART_DELAY_MAX_MS) delayMs = RESTART_DELAY_MS;
      }
      await Promise.race([new Promise((r) => setTimeout(r, delayMs).unref()), stopped]);
    }
  }
}
