import { isDatabaseUnavailable } from '@paddock/db';

interface Waiting<T> {
  readonly item: T;
  resolve(): void;
  reject(err: unknown): void;
}

/**
 * Gathers items handed in one at a time (one per bus message) into batches written together: while a
 * batch is being written, the next one fills, so a quiet ledger writes each event at once and a busy one
 * writes hundreds per transaction. Each caller learns the fate of its own item.
 *
 * A batch that fails for a reason other than an unavailable database is written again item by item, so
 * that one item that cannot be written fails alone and the others go through.
 */
export class Batcher<T> {
  readonly #queue: Waiting<T>[] = [];
  #writing: Promise<void> | undefined;

  constructor(
    private readonly write: (items: T[]) => Promise<void>,
    private readonly maxItems: number,
  ) {}

  add(item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      // Items handed in during this turn of the event loop join the same batch.
      if (!this.#writing) this.#writing = new Promise<void>((r) => setImmediate(r)).then(() => this.#drain());
    });
  }

  /** Resolves once nothing is queued or being written. */
  async idle(): Promise<void> {
    while (this.#writing) await this.#writing;
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, this.maxItems);
        await this.#writeBatch(batch);
      }
    } finally {
      this.#writing = undefined;
    }
  }

  async #writeBatch(batch: Waiting<T>[]): Promise<void> {
    try {
      await this.write(batch.map((w) => w.item));
      for (const w of batch) w.resolve();
      return;
    } catch (err) {
      if (batch.length === 1 || isDatabaseUnavailable(err)) {
        for (const w of batch) w.reject(err);
        return;
      }
    }
    for (const w of batch) {
      try {
        await this.write([w.item]);
        w.resolve();
      } catch (err) {
        w.reject(err);
      }
    }
  }
}
