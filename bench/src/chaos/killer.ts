import { setTimeout as sleep } from 'node:timers/promises';
import { PARTS, partsUnder, type Part } from './parts.js';
import type { Random } from './random.js';

/** One SIGKILL and what followed it. */
export interface Kill {
  readonly part: Part;
  readonly pid: number;
  /** Since the start of the kill phase. */
  readonly atMs: number;
  /** When, ISO 8601: to read beside the logs' timestamps. */
  readonly at: string;
  /** Until a new process of the part was running; null if none was within the limit. */
  readonly backAfterMs: number | null;
}

/** A part the schedule wanted to kill that was not running, and did not start, within the limit. */
export interface Missing {
  readonly part: Part;
  readonly atMs: number;
  readonly waitedMs: number;
}

export interface KillerOptions {
  readonly kills: number;
  readonly killEveryMs: number;
  readonly backWithinMs: number;
}

const POLL_MS = 100;

/**
 * Kills one part of the Paddock under `upPid` every `killEveryMs`, taking the parts in shuffled rounds of
 * all five, so that every part is killed as often as any other. A part that is not running when its turn
 * comes is waited for (up to `backWithinMs`); one that does not come back is recorded as missing and
 * skipped, and the schedule goes on with the others.
 */
export class Killer {
  readonly kills: Kill[] = [];
  readonly missing: Missing[] = [];
  readonly #pending: Promise<void>[] = [];
  #stopped = false;

  constructor(
    private readonly upPid: number,
    private readonly options: KillerOptions,
    private readonly random: Random,
    private readonly progress: (message: string) => void,
  ) {}

  /** Resolves once every kill was made and every killed part is back (or past its limit). */
  async run(): Promise<void> {
    const startedMs = Date.now();
    const order: Part[] = [];
    for (let i = 0; this.kills.length + this.missing.length < this.options.kills && !this.#stopped; i++) {
      if (order.length === 0) order.push(...this.random.shuffled(PARTS));
      const part = order.shift()!;
      const dueMs = startedMs + (this.kills.length + this.missing.length + 1) * this.options.killEveryMs;
      await sleep(Math.max(0, dueMs - Date.now()));
      const pid = await this.#waitRunning(part);
      const atMs = Date.now() - startedMs;
      if (pid === undefined) {
        this.missing.push({ part, atMs, waitedMs: this.options.backWithinMs });
        this.progress(`kill ${i + 1}: ${part} is not running and did not start within ${this.options.backWithinMs} ms; skipping it`);
        continue;
      }
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // It died on its own a moment ago: it is killed once it is back.
        order.unshift(part);
        continue;
      }
      const index = this.kills.length;
      this.kills.push({ part, pid, atMs, at: new Date().toISOString(), backAfterMs: null });
      this.progress(`kill ${index + 1}/${this.options.kills}: ${part} (pid ${pid})`);
      this.#pending.push(this.#watchReturn(index, part, pid));
    }
    await Promise.all(this.#pending);
  }

  stop(): void {
    this.#stopped = true;
  }

  async #waitRunning(part: Part): Promise<number | undefined> {
    const deadline = Date.now() + this.options.backWithinMs;
    for (;;) {
      const pid = partsUnder(this.upPid).get(part);
      if (pid !== undefined || Date.now() > deadline || this.#stopped) return pid;
      await sleep(POLL_MS);
    }
  }

  async #watchReturn(index: number, part: Part, killedPid: number): Promise<void> {
    const killedAt = Date.now();
    while (Date.now() - killedAt < this.options.backWithinMs) {
      const pid = partsUnder(this.upPid).get(part);
      if (pid !== undefined && pid !== killedPid) {
        this.kills[index] = { ...this.kills[index]!, backAfterMs: Date.now() - killedAt };
        return;
      }
      await sleep(POLL_MS);
    }
    this.progress(`${part} killed at pid ${killedPid} is not running again after ${this.options.backWithinMs} ms`);
  }
}
