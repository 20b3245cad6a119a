import { setTimeout as sleep } from 'node:timers/promises';

/** Calls `check` every `intervalMs` until it returns true; rejects with the signal's reason when aborted. */
export async function waitUntil(check: () => Promise<boolean>, opts: { intervalMs: number; signal: AbortSignal }): Promise<void> {
  for (;;) {
    opts.signal.throwIfAborted();
    if (await check()) return;
    await sleep(opts.intervalMs, undefined, { signal: opts.signal });
  }
}
