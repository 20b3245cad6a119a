import { createHmac } from 'node:crypto';
import type { Pool } from '@paddock/db';
import type { Logger } from '@paddock/telemetry';

export interface WebhookSettings {
  /** How long one call may take before it counts as failed. */
  readonly timeoutMs: number;
  /** Calls of one alert before it is given up on. */
  readonly maxAttempts: number;
  /** The pause after the first failure, doubling after each, up to `maxDelayMs`. */
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
}

interface Due {
  eventId: string;
  url: string;
  body: string;
  attempts: number;
  secret: string;
}

/** `X-Paddock-Signature`: the body's HMAC-SHA256 with the budget's webhook secret, as a receiver checks it. */
export function webhookSignature(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** Calls made at once. */
const BATCH = 20;

/**
 * Calls budgets' webhooks from the webhook_deliveries outbox: a POST of the alert's JSON, signed
 * (`X-Paddock-Signature`), with `X-Paddock-Event-Id` for the receiver to drop repeats and
 * `X-Paddock-Timestamp` (when it was sent, epoch ms). A 2xx answer delivers it, and it is never called
 * again; anything else is retried after a pause that doubles, until `maxAttempts`. A delivery is claimed
 * for the length of a call before it is made, so replicas never call the same one at once; a process that
 * dies mid-call leaves it to be called again after that lease.
 */
export class WebhookDeliverer {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;

  constructor(
    private readonly pool: Pool,
    private readonly settings: WebhookSettings,
    private readonly log: Logger,
    private readonly pollEveryMs = 1_000,
  ) {}

  start(): void {
    this.#timer = setInterval(() => this.wake(), this.pollEveryMs);
    this.#timer.unref();
    this.wake();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#running;
  }

  /** Something may be due (a new alert): look now rather than at the next poll. */
  wake(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#drain()
      .catch((err: unknown) => this.log.warn({ err }, 'webhooks: could not read the outbox; trying again shortly'))
      .finally(() => {
        this.#running = undefined;
        if (this.#again) {
          this.#again = false;
          this.wake();
        }
      });
  }

  async #drain(): Promise<void> {
    for (;;) {
      const due = await this.#claim();
      await Promise.all(due.map((d) => this.#deliver(d)));
      if (due.length < BATCH || this.#stopped) return;
    }
  }

  async #claim(): Promise<Due[]> {
    const now = Date.now();
    const r = await this.pool.query<Due>(
      `UPDATE webhook_deliveries d SET attempts = d.attempts + 1, next_attempt_at_ms = $2
         FROM budgets b
        WHERE b.id = d.budget_id AND d.event_id IN (
              SELECT event_id FROM webhook_deliveries
               WHERE delivered_at_ms IS NULL AND gave_up_at_ms IS NULL AND next_attempt_at_ms <= $1
               ORDER BY next_attempt_at_ms LIMIT ${BATCH} FOR UPDATE SKIP LOCKED)
        RETURNING d.event_id AS "eventId", d.url, d.body, d.attempts, b.webhook_secret AS secret`,
      [now, now + this.settings.timeoutMs + 5_000],
    );
    return r.rows;
  }

  async #deliver(d: Due): Promise<void> {
    let failure: string;
    try {
      const response = await fetch(d.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'Paddock-Billing',
          'x-paddock-event-id': d.eventId,
          'x-paddock-timestamp': String(Date.now()),
          'x-paddock-signature': webhookSignature(d.secret, d.body),
        },
        body: d.body,
        redirect: 'manual',
        signal: AbortSignal.timeout(this.settings.timeoutMs),
      });
      await response.body?.cancel();
      if (response.ok) {
        await this.pool.query(`UPDATE webhook_deliveries SET delivered_at_ms = $2, last_error = '' WHERE event_id = $1`, [d.eventId, Date.now()]);
        this.log.info({ eventId: d.eventId, attempts: d.attempts }, 'budget webhook delivered');
        return;
      }
      failure = `HTTP ${response.status}`;
    } catch (err) {
      failure = err instanceof Error ? `${err.name}: ${err.message}${err.cause instanceof Error ? ` (${err.cause.message})` : ''}` : String(err);
    }
    const now = Date.now();
    if (d.attempts >= this.settings.maxAttempts) {
      await this.pool.query('UPDATE webhook_deliveries SET gave_up_at_ms = $2, last_error = $3 WHERE event_id = $1', [d.eventId, now, failure]);
      this.log.error({ eventId: d.eventId, url: d.url, attempts: d.attempts, error: failure }, `budget webhook given up after ${d.attempts} attempts: ${failure}`);
      return;
    }
    const delayMs = Math.min(this.settings.maxDelayMs, this.settings.initialDelayMs * 2 ** Math.min(d.attempts - 1, 30));
    await this.pool.query('UPDATE webhook_deliveries SET next_attempt_at_ms = $2, last_error = $3 WHERE event_id = $1', [d.eventId, now + delayMs, failure]);
    this.log.warn({ eventId: d.eventId, url: d.url, attempts: d.attempts, delayMs, error: failure }, `budget webhook failed (${failure}); retrying in ${delayMs} ms`);
  }
}
