import { fileURLToPath } from 'node:url';
import type { ServiceError } from '@grpc/grpc-js';
import { Bus, topics, type Subscription } from '@paddock/bus';
import { createPool, migrate } from '@paddock/db';
import { ExitCause, type InstanceExited } from '@paddock/proto';
import { injectContext, type Logger } from '@paddock/telemetry';
import { BrokerRegistry, isRetryable } from './brokers.js';
import type { SchedulerConfig } from './config.js';
import { Dispatcher } from './dispatcher.js';
import { JobStore } from './jobStore.js';
import { Lifecycle } from './lifecycle.js';
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

export async function startScheduler(config: SchedulerConfig, log: Logger): Promise<StartedScheduler> {
  if (!config.databaseUrl) throw new Error('DATABASE_URL is required');
  const startedAtMs = Date.now();
  const pool = createPool(config.databaseUrl, { name: 'paddock-scheduler', max: 20 });
  await migrate(pool, 'scheduler', MIGRATIONS_DIR);
  const bus = await Bus.connect({ url: config.natsUrl, name: 'paddock-scheduler', log });
  const store = new JobStore(pool);
  const brokers = new BrokerRegistry();
  let dispatcher: Dispatcher | undefined;
  const lifecycle = new Lifecycle(store, bus, log, () => dispatcher?.kick());
  dispatcher = new Dispatcher(store, lifecycle, brokers, config, log);
  const d = dispatcher;

  const subs: Subscription[] = [];
  subs.push(
    bus.subscribe(topics.brokerHeartbeat, '*', ({ message }) => {
      if (brokers.seen(message)) d.kick();
    }),
  );

  subs.push(
    await bus.consume(topics.executionRequested, { durable: 'scheduler-requested' }, async ({ id, message }) => {
      if (!message.spec) throw new Error(`request ${id} has no spec`);
      const queued = await store.enqueue({
        executionId: id,
        ownerId: message.ownerId,
        spec: message.spec,
        requestedAtMs: message.requestedAtMs,
        traceParent: activeTraceParent(),
      });
      if (queued) log.info({ executionId: id, owner: message.ownerId }, 'execution queued');
      d.kick();
    }),
  );

  subs.push(
    await bus.consume(topics.executionCancel, { durable: 'scheduler-cancel' }, async ({ id }) => {
      const requested = await store.requestCancel(id);
      // The request itself is on its way (always published before a cancel can be): try again shortly.
      if (!requested) throw new Error(`cancel of ${id} arrived before its request`);
      const job = requested.state === 'queued'
        ? await lifecycle.move(id, 'cancelled', { reason: 'cancelled before it started', finishedAtMs: Date.now() })
        : requested;
      if (job && (job.state === 'provisioning' || job.state === 'executing') && job.brokerId) {
        try {
          await brokers.cancel(job.brokerId, id, config.cancelGraceMs, traceContextOf(job));
        } catch (err) {
          if (isRetryable(err)) throw err;
          log.warn({ executionId: id, details: (err as ServiceError).details }, 'broker refused the cancel');
        }
      }
    }),
  );

  subs.push(
    await bus.consume(topics.instanceStarted, { durable: 'scheduler-instance-started' }, async ({ id, message }) => {
      const job = await lifecycle.move(id, 'executing', { startedAtMs: message.startedAtMs });
      // A cancel that reached the broker before its Launch found nothing to stop: it is stopped now.
      if (job?.cancelRequested && job.state === 'executing' && job.brokerId) {
        await brokers.cancel(job.brokerId, id, config.cancelGraceMs, traceContextOf(job));
      }
    }),
  );

  subs.push(
    await bus.consume(topics.instanceExited, { durable: 'scheduler-instance-exited' }, async ({ id, message }) => {
      const { state, reason } = finalOf(message);
      await lifecycle.move(id, state, {
        ...(message.exitCode === undefined ? {} : { exitCode: message.exitCode }),
        reason,
        finishedAtMs: message.finishedAtMs || Date.now(),
        ...(message.startedAtMs ? { startedAtMs: message.startedAtMs } : {}),
      });
    }),
  );

  // A restarted scheduler picks up launches that were in flight; the broker answers those it already has.
  for (const job of await store.active()) if (job.state === 'provisioning') void d.launch(job);

  const sweep = async () => {
    await lifecycle.republish();
    d.kick();
    const now = Date.now();
    if (now - startedAtMs < config.brokerLostAfterMs) return;
    for (const job of await store.active()) {
      const seen = job.brokerId ? brokers.lastSeenMs(job.brokerId) : undefined;
      if (seen === undefined || now - seen > config.brokerLostAfterMs) {
        await lifecycle.move(job.executionId, 'failed', {
          reason: `broker ${job.brokerId} stopped answering for ${Math.round(config.brokerLostAfterMs / 1000)}s`,
          finishedAtMs: now,
        });
      }
    }
  };
  const sweeper = setInterval(() => void sweep().catch((err: unknown) => log.warn({ err }, 'sweep failed')), 2000);
  const beat = () => bus.publishCore(topics.serviceHeartbeat, 'scheduler', { service: 'scheduler', instanceId: String(process.pid), atMs: Date.now() });
  beat();
  const heartbeat = setInterval(beat, 1000);
  log.info('scheduler ready');

  let stopped: Promise<void> | undefined;
  return {
    stop: () =>
      (stopped ??= (async () => {
        clearInterval(sweeper);
        clearInterval(heartbeat);
        d.stop();
        await Promise.all(subs.map((s) => s.stop()));
        brokers.close();
        await bus.drain();
        await pool.end().catch(() => {});
      })()),
  };
}
