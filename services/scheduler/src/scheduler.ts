import { fileURLToPath } from 'node:url';
import type { ServiceError } from '@grpc/grpc-js';
import { Bus, topics, type Subscription } from '@paddock/bus';
import { createPool, migrate } from '@paddock/db';
import { PermanentError } from '@paddock/errors';
import { loadServiceTls } from '@paddock/plane';
import { ExitCause, type InstanceExited } from '@paddock/proto';
import { type Startup, waitFor } from '@paddock/service';
import { injectContext, unrecordedMetrics, type Logger, type PaddockMetrics } from '@paddock/telemetry';
import { BrokerRegistry, BrokerUnknownError, isRetryable } from './brokers.js';
import type { SchedulerConfig } from './config.js';
import { ConnectionClock } from './connectionClock.js';
import { Dispatcher } from './dispatcher.js';
import { errorKind } from './errorKind.js';
import { JobStore, type Job } from './jobStore.js';
import { Lifecycle } from './lifecycle.js';
import { Reconciler } from './reconciler.js';
import { RetentionCleaner } from './retention.js';
import { isFinal, type JobState } from './states.js';
import { traceContextOf } from './traceContext.js';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

export interface StartedScheduler {
  stop(): Promise<void>;
}

function activeTraceParent(): string | null {
  let tp: string | null = null;
  injectContext({ get: () => undefined, set: (k, v) => k === 'traceparent' && (tp = v) });
  return tp;
}

/** How an instance's end maps onto the execution's final state. */
export function finalOf(exit: InstanceExited): { state: 'completed' | 'failed' | 'cancelled'; reason: string } {
  switch (exit.cause) {
    case ExitCause.EXIT_CAUSE_EXITED:
      return exit.exitCode === 0 ? { state: 'completed', reason: '' } : { state: 'failed', reason: `the job exited with code ${exit.exitCode ?? 'unknown'}` };
    case ExitCause.EXIT_CAUSE_CANCELLED:
      return { state: 'cancelled', reason: 'cancelled' };
    default:
      return { state: 'failed', reason: exit.detail || 'the instance ended unexpectedly' };
  }
}


export interface SchedulerOptions {
  /** The service's startup (main.ts): waits for PostgreSQL and NATS go through it, so health says what it waits for. */
  readonly startup?: Startup;
  /** Where transitions, queue waits, start phases, errors and the bus's redeliveries are recorded. */
  readonly metrics?: PaddockMetrics;
}

/**
 * The counts of jobs by state, read once however many gauges ask during one collection (a scrape and an
 * OTLP export close together included): one query instead of one per gauge.
 */
function stateCounts(store: JobStore, freshForMs = 1_000): () => Promise<Partial<Record<JobState, number>>> {
  let last: { atMs: number; counts: Promise<Partial<Record<JobState, number>>> } | undefined;
  return () => {
    const nowMs = Date.now();
    if (!last || nowMs - last.atMs >= freshForMs) last = { atMs: nowMs, counts: store.countByState() };
    return last.counts;
  };
}

export async function startScheduler(config: SchedulerConfig, log: Logger, opts: SchedulerOptions = {}): Promise<StartedScheduler> {
  const { startup, metrics = unrecordedMetrics() } = opts;
  if (!config.databaseUrl) throw new Error('DATABASE_URL is required');
  // Before waiting for anything: a missing or wrong certificate is a setting to fix, not an outage to wait out.
  const tls = await loadServiceTls(config.tls);
  const startedAtMs = Date.now();
  const pool = createPool(config.databaseUrl, { name: 'paddock-scheduler', max: 20 });
  await waitFor(startup, 'PostgreSQL', (signal) => migrate(pool, 'scheduler', MIGRATIONS_DIR, { log, ...(signal ? { signal } : {}) }));
  const bus = await waitFor(startup, 'NATS', () => Bus.connect({ ...config.bus, url: config.natsUrl, name: 'paddock-scheduler', log, observer: metrics }));
  const clock = ConnectionClock.of(bus.nc);
  const store = new JobStore(pool);
  // Through the control plane when there is one: main.ts has registered the xds: resolver for it.
  const brokers = new BrokerRegistry(tls, { viaXds: config.xdsAddress !== undefined });

  /**
   * Tells the broker to stop and remove an execution's instance. Errors that can pass are thrown (a caller
   * that can retry does); the rest are logged: the broker has nothing to stop, or refuses for good.
   */
  const stopOnBroker = async (brokerId: string, executionId: string, job?: Job): Promise<void> => {
    try {
      const reply = await brokers.cancel(brokerId, executionId, config.cancelGraceMs, job ? traceContextOf(job) : undefined);
      log.debug({ executionId, broker: brokerId, found: reply.found }, 'asked the broker to stop the instance');
    } catch (err) {
      // A broker not heard from yet is no failure: whoever asked waits for its heartbeat.
      if (!(err instanceof BrokerUnknownError)) metrics.errorOccurred(errorKind(err));
      if (isRetryable(err)) throw err;
      log.warn({ executionId, broker: brokerId, details: (err as ServiceError).details }, 'broker refused the cancel');
    }
  };

  const lifecycle = new Lifecycle(store, bus, log, (job, cause) => {
    // Called only after a transition, by then the dispatcher below exists.
    dispatcher.kick();
    // A final state the scheduler decided (launch given up, broker lost, a cancel racing a claim...) must
    // also end the container; when the broker reported the end itself, it is already ending it. A broker
    // out of reach now is handled by the reconciler when it is heard again.
    if (cause === 'scheduler' && job.brokerId) {
      const brokerId = job.brokerId;
      void stopOnBroker(brokerId, job.executionId, job).catch((err: unknown) =>
        log.info({ executionId: job.executionId, broker: brokerId, details: (err as ServiceError).details ?? (err as Error).message }, 'broker not reached to stop the instance; the reconciler will'),
      );
    }
  }, metrics);
  const dispatcher = new Dispatcher(store, lifecycle, brokers, config, log, metrics);

  const applyExit = (id: string, exit: InstanceExited) => {
    const { state, reason } = finalOf(exit);
    return lifecycle.move(
      id,
      state,
      {
        ...(exit.exitCode === undefined ? {} : { exitCode: exit.exitCode }),
        reason,
        finishedAtMs: exit.finishedAtMs || Date.now(),
        ...(exit.startedAtMs ? { startedAtMs: exit.startedAtMs } : {}),
      },
      'instance-exit',
    );
  };

  const reconciler = new Reconciler(
    store,
    brokers,
    clock,
    {
      stop: (brokerId, executionId) => stopOnBroker(brokerId, executionId),
      relaunch: (executionId) => dispatcher.relaunch(executionId),
      launchPending: (executionId) => dispatcher.pending(executionId),
      applyStoredExit: async (executionId) => {
        const stored = await bus.lastStored(topics.instanceExited, executionId);
        if (!stored) return false;
        await applyExit(executionId, stored.message);
        return true;
      },
      fail: async (executionId, reason) => {
        await lifecycle.move(executionId, 'failed', { reason, finishedAtMs: Date.now() });
      },
    },
    { ...config.reconcile, startedAtMs },
    log,
  );

  const subs: Subscription[] = [];
  subs.push(
    bus.subscribe(topics.brokerHeartbeat, '*', ({ message }) => {
      const news = brokers.seen(message);
      if (news.returned) {
        // Launches that went nowhere while it was unknown or silent (a restart of either side) go out now.
        void dispatcher.brokerReturned(message.brokerId).catch((err: unknown) => log.warn({ err, broker: message.brokerId }, 'relaunching on a returned broker failed; the reconciler will'));
      }
      if (news.returned || news.freed) dispatcher.kick();
    }),
  );

  subs.push(
    await bus.consume(topics.executionRequested, { durable: 'scheduler-requested' }, async ({ id, message }) => {
      if (!message.spec) {
        const reason = 'the request reached the scheduler without an execution spec (what to run); submit it again';
        const rejected = await store.rejectRequest({ executionId: id, ownerId: message.ownerId, requestedAtMs: message.requestedAtMs, reason, traceParent: activeTraceParent() });
        if (rejected) {
          lifecycle.counted(rejected, null);
          log.error({ executionId: id }, 'request without a spec: execution failed');
          await lifecycle.publish(rejected);
        }
        throw new PermanentError(`execution ${id}: ${reason}`);
      }
      const queued = await store.enqueue({
        executionId: id,
        ownerId: message.ownerId,
        spec: message.spec,
        requestedAtMs: message.requestedAtMs,
        traceParent: activeTraceParent(),
      });
      if (queued) {
        metrics.executionTransitioned('queued', null);
        log.info({ executionId: id, owner: message.ownerId }, 'execution queued');
      }
      dispatcher.kick();
    }),
  );

  subs.push(
    await bus.consume(topics.executionCancel, { durable: 'scheduler-cancel' }, async ({ id }) => {
      const requested = await store.requestCancel(id);
      // The request itself is on its way (always published before a cancel can be): try again shortly.
      if (!requested) throw new Error(`cancel of ${id} arrived before its request`);
      // A queued job is never claimed once its cancel is recorded, so it can be cancelled here safely.
      const job = requested.state === 'queued'
        ? await lifecycle.move(id, 'cancelled', { reason: 'cancelled before it started', finishedAtMs: Date.now() })
        : requested;
      if (job && (job.state === 'provisioning' || job.state === 'executing') && job.brokerId) {
        try {
          await stopOnBroker(job.brokerId, id, job);
        } catch (err) {
          // Before the broker's first heartbeat there is nobody to ask yet: the claim's launch sees the cancel.
          if (err instanceof BrokerUnknownError) return;
          throw err;
        }
      }
    }),
  );

  subs.push(
    await bus.consume(topics.instanceStarted, { durable: 'scheduler-instance-started' }, async ({ id, message }) => {
      const job = await lifecycle.move(id, 'executing', { startedAtMs: message.startedAtMs });
      // Started although it is over (failed while its launch was on the way) or although a cancel reached the
      // broker before its Launch and found nothing to stop: it is stopped now.
      const unwanted = job === null || isFinal(job.state) || (job.cancelRequested && job.state === 'executing');
      if (unwanted) await stopOnBroker(message.brokerId, id, job ?? undefined);
    }),
  );

  subs.push(
    await bus.consume(topics.instanceExited, { durable: 'scheduler-instance-exited' }, async ({ id, message }) => {
      await applyExit(id, message);
    }),
  );

  // A restarted scheduler sends again the launches that were in flight (the broker answers those it already
  // has) once each broker's heartbeat is heard: see brokerReturned.

  const sweep = async () => {
    await lifecycle.republish();
    dispatcher.kick();
  };
  const failed = (what: string) => (err: unknown) => {
    metrics.errorOccurred(errorKind(err));
    log.warn({ err }, what);
  };
  const sweeper = setInterval(() => void sweep().catch(failed('sweep failed')), 2000);
  const reconciling = setInterval(() => void reconciler.tick().catch(failed('reconcile pass failed; the next one tries again')), config.reconcile.everyMs);
  // Every scheduler of a deployment reports the same totals (they read one table): a dashboard takes the max.
  const counts = stateCounts(store);
  const unobserve = [
    metrics.observeExecutionsByState(counts),
    metrics.observeQueueDepth(async () => (await counts()).queued ?? 0),
  ];
  const cleaner = new RetentionCleaner(store, config.retentionDays, log);
  cleaner.start();
  const beat = () => bus.publishCore(topics.serviceHeartbeat, 'scheduler', { service: 'scheduler', instanceId: String(process.pid), atMs: Date.now() });
  beat();
  const heartbeat = setInterval(beat, 1000);
  log.info('scheduler ready');

  let stopped: Promise<void> | undefined;
  return {
    stop: () =>
      (stopped ??= (async () => {
        clearInterval(sweeper);
        clearInterval(reconciling);
        for (const stop of unobserve) stop();
        clearInterval(heartbeat);
        cleaner.stop();
        dispatcher.stop();
        await Promise.all(subs.map((s) => s.stop()));
        brokers.close();
        await bus.drain();
        await pool.end().catch(() => {});
      })()),
  };
}
