import type { Logger, Telemetry } from '@paddock/telemetry';

export interface RunServiceOptions {
  readonly name: string;
  readonly log: Logger;
  readonly telemetry: Telemetry;
  readonly start: () => Promise<{ stop(): Promise<void> }>;
  /** After SIGTERM, how long in-flight work may take before the process exits anyway. */
  readonly graceMs?: number;
}

/**
 * The process around a service, for its main.ts: starts it, and on SIGTERM or SIGINT stops taking work,
 * lets in-flight work finish within the grace time, then exits. A start that fails exits 1 with the reason.
 */
export function runService(opts: RunServiceOptions): void {
  const { log } = opts;
  const graceMs = opts.graceMs ?? 15_000;
  let service: { stop(): Promise<void> } | undefined;
  let shuttingDown = false;

  const shutdown = async (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info({ signal }, `${opts.name} stopping`);
    const force = setTimeout(() => {
      log.warn(`${opts.name} did not stop within ${graceMs} ms; exiting`);
      process.exit(1);
    }, graceMs);
    force.unref();
    try {
      await service?.stop();
      await opts.telemetry.shutdown();
      log.info(`${opts.name} stopped`);
      process.exit(0);
    } catch (err) {
      log.error({ err }, `${opts.name} stopped with an error`);
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));

  opts.start().then(
    (s) => {
      service = s;
      if (shuttingDown) void s.stop();
    },
    (err: unknown) => {
      log.fatal({ err }, `${opts.name} failed to start: ${(err as Error).message}`);
      setTimeout(() => process.exit(1), 100);
    },
  );
}
