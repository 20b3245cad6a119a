import type { NatsConnection } from 'nats';

/** How long outages are remembered: longer than any window the clock is asked about. */
const KEEP_OUTAGES_MS = 24 * 60 * 60_000;

/**
 * Time during which this process was connected to NATS. A broker's silence only counts while the
 * scheduler itself could hear: when the scheduler's own connection was down, nobody's heartbeats arrived,
 * and that says nothing about the brokers.
 */
export class ConnectionClock {
  private readonly outages: Array<{ fromMs: number; toMs: number }> = [];
  private downSinceMs: number | null = null;

  /** Follows the connection's status events until it closes. */
  static of(nc: NatsConnection): ConnectionClock {
    const clock = new ConnectionClock();
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect') clock.down();
        else if (s.type === 'reconnect') clock.up();
      }
    })().catch(() => {});
    return clock;
  }

  get connected(): boolean {
    return this.downSinceMs === null;
  }

  down(nowMs = Date.now()): void {
    this.downSinceMs ??= nowMs;
  }

  up(nowMs = Date.now()): void {
    if (this.downSinceMs === null) return;
    this.outages.push({ fromMs: this.downSinceMs, toMs: nowMs });
    this.downSinceMs = null;
    while (this.outages.length > 0 && nowMs - this.outages[0]!.toMs > KEEP_OUTAGES_MS) this.outages.shift();
  }

  /** Milliseconds between `fromMs` and `toMs` during which the connection was up. */
  connectedMsBetween(fromMs: number, toMs: number): number {
    if (toMs <= fromMs) return 0;
    let downMs = 0;
    const spans = this.downSinceMs === null ? this.outages : [...this.outages, { fromMs: this.downSinceMs, toMs }];
    for (const o of spans) downMs += Math.max(0, Math.min(o.toMs, toMs) - Math.max(o.fromMs, fromMs));
    return toMs - fromMs - downMs;
  }
}
