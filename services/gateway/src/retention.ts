import type { BlobStore } from '@paddock/blobs';
import type { Pool } from '@paddock/db';
import type { Logger } from '@paddock/telemetry';
import type { ExecutionStore } from './executions/executionStore.js';
import { IDEMPOTENCY_KEY_TTL_MS, sweepIdempotencyKeys } from './executions/idempotencyKeys.js';

const HOUR_MS = 60 * 60 * 1000;

export interface RetentionCounts {
  executions: number;
  expiredTickets: number;
  blobs: number;
  /** Idempotency keys older than their 24 h. */
  idempotencyKeys: number;
}

/**
 * Keeps what the gateway stores from growing without bound: final executions that ended more than the
 * retention ago (their terminal tickets and idempotency keys go with them), expired tickets, idempotency keys
 * past their 24 h, and blobs no request wrote or used within the retention. Runs once at start and then
 * every hour.
 */
export class RetentionCleaner {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<RetentionCounts> | undefined;

  constructor(
    private readonly pool: Pool,
    private readonly store: ExecutionStore,
    private readonly blobs: BlobStore,
    private readonly retentionMs: number,
    private readonly log: Logger,
    private readonly everyMs = HOUR_MS,
  ) {}

  start(): void {
    const run = () => void this.runOnce().catch((err: unknown) => this.log.warn({ err }, 'retention: cleaning failed; next try in an hour'));
    run();
    this.#timer = setInterval(run, this.everyMs);
    this.#timer.unref();
  }

  /** Stops the timer and waits for a pass in progress. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running?.catch(() => {});
  }

  /** One pass, as of `nowMs`; a pass already running is joined rather than doubled. */
  runOnce(nowMs = Date.now()): Promise<RetentionCounts> {
    this.#running ??= (async () => {
      try {
        const before = new Date(nowMs - this.retentionMs);
        let executions = 0;
        for (let removed = -1; removed !== 0; ) {
          removed = await this.store.removeFinishedBefore(before);
          executions += removed;
        }
        const tickets = await this.pool.query(`DELETE FROM terminal_tickets WHERE expires_at < $1`, [new Date(nowMs)]);
        const idempotencyKeys = await sweepIdempotencyKeys(this.pool, new Date(nowMs - IDEMPOTENCY_KEY_TTL_MS));
        const blobs = await this.blobs.sweep(this.retentionMs, nowMs);
        const counts = { executions, expiredTickets: tickets.rowCount ?? 0, idempotencyKeys, blobs };
        if (counts.executions + counts.expiredTickets + counts.idempotencyKeys + counts.blobs > 0) {
          this.log.info({ ...counts, retentionDays: this.retentionMs / (24 * HOUR_MS) }, 'retention: removed what is past its time');
        }
        return counts;
      } finally {
        this.#running = undefined;
      }
    })();
    return this.#running;
  }
}
