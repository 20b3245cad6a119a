import type { Logger } from '@paddock/telemetry';

/** Where a service process is in its life; `sinceMs` is when it got there (epoch ms). */
export type ServiceHealth =
  | { readonly state: 'starting'; readonly sinceMs: number }
  | { readonly state: 'waiting'; readonly dependency: string; readonly sinceMs: number }
  | { readonly state: 'ready'; readonly sinceMs: number }
  | { readonly state: 'stopping'; readonly sinceMs: number };

/** A line for people: "ready", "waiting for PostgreSQL (12 s)". */
export function describeHealth(health: ServiceHealth, nowMs = Date.now()): string {
  return health.state === 'waiting' ? `waiting for ${health.dependency} (${Math.round((nowMs - health.sinceMs) / 1000)} s)` : health.state;
}

/** What a service's start() gets: the waits for its dependencies go through it, so health says what it waits for. */
export interface Startup {
  /** Aborted when the process is asked to stop before start() finished; a wait given it ends then. */
  readonly signal: AbortSignal;
  /**
   * Runs `wait` (which should retry until the dependency answers) with the health saying "waiting for
   * `dependency`" meanwhile, and a log line after the first couple of seconds and then every so often.
   */
  waitFor<T>(dependency: string, wait: (signal: AbortSignal) => Promise<T>): Promise<T>;
  health(): ServiceHealth;
}

export interface StartupTiming {
  /** A wait shorter than this is not logged: a dependency that is simply there says nothing. */
  readonly firstNoticeMs: number;
  readonly noticeEveryMs: number;
}

export const DEFAULT_STARTUP_TIMING: StartupTiming = Object.freeze({ firstNoticeMs: 2_000, noticeEveryMs: 15_000 });

/** The health of one service process, moved along by runService and by the waits of its start(). */
export class ServiceState implements Startup {
  readonly #name: string;
  readonly #log: Logger;
  readonly #timing: StartupTiming;
  readonly #abort = new AbortController();
  #health: ServiceHealth = { state: 'starting', sinceMs: Date.now() };

  constructor(name: string, log: Logger, timing: StartupTiming = DEFAULT_STARTUP_TIMING) {
    this.#name = name;
    this.#log = log;
    this.#timing = timing;
  }

  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  health(): ServiceHealth {
    return this.#health;
  }

  async waitFor<T>(dependency: string, wait: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const sinceMs = Date.now();
    this.#health = { state: 'waiting', dependency, sinceMs };
    let noticed = false;
    const notice = () => {
      noticed = true;
      this.#log.warn({ dependency, waitedMs: Date.now() - sinceMs }, `${this.#name} is waiting for ${dependency} (${Math.round((Date.now() - sinceMs) / 1000)} s so far)`);
      timer = setTimeout(notice, this.#timing.noticeEveryMs);
    };
    let timer = setTimeout(notice, this.#timing.firstNoticeMs);
    try {
      const value = await wait(this.#abort.signal);
      if (noticed) this.#log.info({ dependency, waitedMs: Date.now() - sinceMs }, `${this.#name}: ${dependency} is there after ${Math.round((Date.now() - sinceMs) / 1000)} s`);
      return value;
    } finally {
      clearTimeout(timer);
      if (this.#health.state === 'waiting') this.#health = { state: 'starting', sinceMs: Date.now() };
    }
  }

  ready(): void {
    this.#health = { state: 'ready', sinceMs: Date.now() };
  }

  stopping(): void {
    this.#health = { state: 'stopping', sinceMs: Date.now() };
    this.#abort.abort(new StartAbortedError(this.#name));
  }
}

/** A service was asked to stop while it was still starting (waiting for a dependency, say). */
export class StartAbortedError extends Error {
  constructor(readonly service: string) {
    super(`${service} was asked to stop while starting`);
    this.name = 'StartAbortedError';
  }
}

/**
 * Waits for a dependency through the service's startup when there is one (so health says what it waits
 * for), or directly when the service was started without one (tests, tools).
 */
export function waitFor<T>(startup: Startup | undefined, dependency: string, wait: (signal?: AbortSignal) => Promise<T>): Promise<T> {
  return startup ? startup.waitFor(dependency, wait) : wait();
}
