import type { Logger } from '@paddock/telemetry';
import type { JobStore } from './jobStore.js';

const EVERY_MS = 60 * 60_000;

/** Deletes the rows of final executions older than the retention period: once at start, then hourly. */
export class RetentionCleaner {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: JobStore,
    private readonly retentionDays: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    const run = () => void this.clean().catch((err: unknown) => this.log.warn({ err }, 'retention: cleaning failed; trying again in an hour'));
    run();
    this.timer = setInterval(run, EVERY_MS);
    this.timer.unref();
  }

  /** One pass; the number of rows deleted. */
  async clean(): Promise<number> {
    const deleted = await this.store.deleteFinalOlderThan(this.retentionDays);
    if (deleted > 0) this.log.info({ deleted, retentionDays: this.retentionDays }, 'retention: deleted final executions');
    return deleted;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
