import type { Logger } from '@paddock/telemetry';

/** The broker is shutting down: a step that was being retried is left to the next broker process. */
export class BrokerStoppingError extends Error {
  constructor(readonly step: string) {
    super(`the broker is shutting down: "${step}" is left to the next broker process`);
    this.name = 'BrokerStoppingError';
  }
}

export interface UntilDoneOptions {
  readonly log: Logger;
  /** Named in the logs: what is being done ("recording the exit"). */
  readonly step: string;
  /** Whether trying again may help; an error it rejects is thrown at once. */
  readonly retryable: (err: unknown) => boolean;
  /** Aborted when the broker shuts down: then the step stops with a BrokerStoppingError. */
  readonly signal: AbortSignal;
  readonly initialDelayMs?: number;
  readonly maxDelayMs?: number;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * Runs `call` until it succeeds, pausing between attempts (doubling from `initialDelayMs` up to
 * `maxDelayMs`, counted from the first attempt). For a step that must happen once something has started
 * (a job's end recorded, a started job announced): a dependency that is briefly away delays it, and
 * nothing is given up because of it. Each failed attempt is logged with the number of attempts so far.
 */
export async function untilDone<T>(call: () => Promise<T>, opts: UntilDoneOptions): Promise<T> {
  const initialDelayMs = opts.initialDelayMs ?? 200;
  const maxDelayMs = opts.maxDelayMs ?? 5_000;
  const firstAtMs = Date.now();
  for (let attempt = 1; ; attempt++) {
    if (opts.signal.aborted) throw new BrokerStoppingError(opts.step);
    try {
      return await call();
    } catch (err) {
      if (!opts.retryable(err)) throw err;
      if (opts.signal.aborted) throw new BrokerStoppingError(opts.step);
      const delayMs = Math.min(maxDelayMs, initialDelayMs * 2 ** Math.min(attempt - 1, 20));
      opts.log.warn({ err: (err as Error).message, step: opts.step, attempt, sinceMs: Date.now() - firstAtMs, delayMs }, `${opts.step} failed; trying again`);
      await pause(delayMs, opts.signal);
    }
  }
}
