import type { Logger, Telemetry } from '@paddock/telemetry';
import { ServiceState, type ServiceHealth, type Startup, type StartupTiming } from './startup.js';

export interface RunServiceOptions {
  readonly name: string;
  readonly log: Logger;
  readonly telemetry: Telemetry;
  /**
   * Starts the service. Waits for PostgreSQL, NATS and the like go through `startup.waitFor`, so that a
   * dependency that is down is waited for (and health says so) instead of ending the process.
   */
  readonly start: (startup: Startup) => Promise<{ stop(): Promise<void> }>;
  /** After SIGTERM, how long in-flight work may take before the process exits anyway. */
  readonly graceMs?: number;
  readonly startupTiming?: StartupTiming;
}

/** The running process around a service. */
export interface ServiceProcess {
  /** starting, waiting for a dependency (which), ready, stopping. */
  health(): ServiceHealth;
}

/**
 * The process around a service, for its main.ts: starts it, and on SIGTERM or SIGINT stops taking work,
 * lets in-flight work finish within the grace time, then exits. A start that fails exits 1 with the reason
 * (a supervisor starts it again); waiting for a dependency is no failure.
 */
export function runService(opts: RunServiceOptions): ServiceProcess {
  const { log } = opts;
  const graceMs = opts.graceMs ?? 15_000;
  const state = new ServiceState(opts.name, log, opts.startupTiming);
  let service: { stop(): Promise<void> } | undefined;
  let shuttingDown = false;

  const shutdown = async (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    state.stopping();
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

  opts.start(state).then(
    (s) => {
      service = s;
      if (shuttingDown) void s.stop();
      else state.ready();
    },
    (err: unknown) => {
      // Asked to stop while waiting: shutdown() is already ending the process.
      if (shuttingDown) return;
      log.fatal({ err }, `${opts.name} failed to start: ${(err as Error).message}`);
      setTimeout(() => process.exit(1), 100);
    },
  );
  return { health: () => state.health() };
}
