export type InterruptHandler = (signal: string) => void;

/**
 * Ctrl-C, SIGTERM and SIGHUP, delivered to whichever commands subscribed. Only main.ts wires it to the
 * process; commands and tests see this object, so a test interrupts a command by calling `emit`.
 */
export class Interrupts {
  readonly #handlers = new Set<InterruptHandler>();

  /** Returns the unsubscribe function. */
  subscribe(handler: InterruptHandler): () => void {
    this.#handlers.add(handler);
    return () => this.#handlers.delete(handler);
  }

  /** False when nobody listens, so the caller applies the default (exit at once). */
  emit(signal: string): boolean {
    if (this.#handlers.size === 0) return false;
    for (const handler of [...this.#handlers]) handler(signal);
    return true;
  }
}
