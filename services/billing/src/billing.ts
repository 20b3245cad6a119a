import { fileURLToPath } from 'node:url';
import { Bus, topics } from '@paddock/bus';
import { createPool, migrate, type Pool } from '@paddock/db';
import { loadServiceTls } from '@paddock/plane';
import type { BudgetExceeded } from '@paddock/proto';
import { type Startup, waitFor } from '@paddock/service';
import { unrecordedMetrics, type Logger, type PaddockMetrics } from '@paddock/telemetry';
import { Admission } from './budgets/admission.js';
import { AlertPublisher } from './budgets/alertPublisher.js';
import { Budgets } from './budgets/budgets.js';
import { WebhookDeliverer } from './budgets/webhooks.js';
import type { BillingConfig } from './config.js';
import { CostQueries } from './costs/costQueries.js';
import { AccountStore } from './ledger/accountStore.js';
import { startLedgerConsumers } from './ledger/consumers.js';
import { Ledger } from './ledger/ledger.js';
import { PriceStore } from './prices/priceStore.js';
import { AdmissionBudgetGate } from './runs/budgetGate.js';
import { AccountRunDirectory } from './runs/runDirectory.js';
import { BusUsageSink } from './runs/usageSink.js';
import { startBillingServer } from './server.js';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

const HEARTBEAT_MS = 1_000;

/** What the metering proxy is given: the runs, the budgets that stop them, and where their usage goes. */
export interface MeteringPorts {
  readonly runs: AccountRunDirectory;
  readonly budgets: AdmissionBudgetGate;
  readonly usage: BusUsageSink;
}

export interface StartedBilling {
  readonly grpcAddress: string;
  readonly ports: MeteringPorts;
  readonly pool: Pool;
  readonly bus: Bus;
  /** Idempotent: stops taking work, lets what is in flight finish, then closes NATS and PostgreSQL. */
  stop(): Promise<void>;
}

export interface BillingOptions {
  /** The service's startup (main.ts): waits for PostgreSQL and NATS go through it, so health says which. */
  readonly startup?: Startup;
  /** Where the bus's redeliveries, dead letters and errors are recorded. */
  readonly metrics?: PaddockMetrics;
  /** The time budgets' periods are taken from: the wall clock, or a test's. */
  readonly clock?: () => number;
}

/**
 * billing without its metering proxy (main.ts starts that on `ports`): the ledger's four durables, prices
 * (version 1 seeded from the default file), budgets with their alerts on the bus and to webhooks, and the
 * gRPC API for the gateway.
 */
export async function startBilling(config: Omit<BillingConfig, 'llmProxy'>, log: Logger, opts: BillingOptions = {}): Promise<StartedBilling> {
  if (!config.databaseUrl) throw new Error('DATABASE_URL is required');
  const { startup, metrics = unrecordedMetrics(), clock = Date.now } = opts;
  // Before waiting for anything: a missing or wrong certificate is a setting to fix, not an outage to wait out.
  const tls = await loadServiceTls(config.tls);
  const pool = createPool(config.databaseUrl, { name: 'paddock-billing', max: 10 });
  const cleanups: (() => Promise<void>)[] = [() => pool.end().catch(() => {})];
  const unwind = async (): Promise<void> => {
    for (const c of cleanups.splice(0).reverse()) await c();
  };
  try {
    await waitFor(startup, 'PostgreSQL', (signal) => migrate(pool, 'billing', MIGRATIONS_DIR, { log, ...(signal ? { signal } : {}) }));
    const prices = new PriceStore(pool);
    if (await prices.seed(config.defaultPricesFile)) log.info({ file: config.defaultPricesFile }, 'prices: version 1 made from the default price list; check it and set your own (paddock prices set FILE)');
    const bus = await waitFor(startup, 'NATS', () => Bus.connect({ ...config.bus, url: config.natsUrl, name: 'paddock-billing', log, observer: metrics }));
    cleanups.push(() => bus.drain());

    const publisher = new AlertPublisher(pool, bus, log);
    const webhooks = new WebhookDeliverer(pool, config.webhooks, log);
    const onAlerts = (alerts: readonly BudgetExceeded[]): void => {
      for (const a of alerts) log.info({ budgetId: a.budgetId, threshold: a.thresholdPercent, spentMicros: a.spentMicros, limitMicros: a.limitMicros }, `budget ${a.name} reached ${a.thresholdPercent}%`);
      void publisher.publish(alerts);
      webhooks.wake();
    };
    publisher.start();
    cleanups.push(() => publisher.stop());
    webhooks.start();
    cleanups.push(() => webhooks.stop());
    // Whatever a previous process committed but did not publish.
    void publisher.sweep();

    const admission = new Admission(pool, async () => (await prices.current()).prices.currency, clock);
    const budgets = new Budgets(pool, onAlerts, clock);
    const consumers = await startLedgerConsumers(bus, new Ledger(pool, prices, clock), new AccountStore(pool, clock), {
      concurrency: config.ingestConcurrency,
      batchMax: config.ingestBatchMax,
      onAlerts,
    });
    cleanups.push(() => consumers.stop());
    const grpc = await startBillingServer({ costs: new CostQueries(pool), prices, budgets, admission }, { host: config.grpcHost, port: config.grpcPort, log, tls });
    cleanups.push(() => grpc.stop());

    const beat = () => bus.publishCore(topics.serviceHeartbeat, 'billing', { service: 'billing', instanceId: String(process.pid), atMs: Date.now() });
    beat();
    const heartbeat = setInterval(beat, HEARTBEAT_MS);
    cleanups.push(async () => clearInterval(heartbeat));
    log.info({ grpc: grpc.address }, 'billing ready');

    let stopped: Promise<void> | undefined;
    return {
      grpcAddress: grpc.address,
      ports: { runs: new AccountRunDirectory(pool), budgets: new AdmissionBudgetGate(admission), usage: new BusUsageSink(bus) },
      pool,
      bus,
      stop: () => (stopped ??= unwind()),
    };
  } catch (err) {
    await unwind();
    throw err;
  }
}
