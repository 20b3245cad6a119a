import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { BlobStore } from '@paddock/blobs';
import { Bus, type Subscription } from '@paddock/bus';
import { createPool, migrate } from '@paddock/db';
import { loadServiceTls, type ServiceTls } from '@paddock/plane';
import { BillingApi } from './costs/billingApi.js';
import { BudgetAdmission } from './costs/budgetAdmission.js';
import { type Startup, waitFor } from '@paddock/service';
import { unrecordedMetrics, type Logger, type Telemetry } from '@paddock/telemetry';
import { buildApp } from './app.js';
import type { GatewayConfig } from './config.js';
import { ExecutionService } from './executions/executionService.js';
import { ExecutionStore } from './executions/executionStore.js';
import { projectStates } from './executions/projection.js';
import { REQUEST_MESSAGE_MAX_BYTES } from './executions/requestSize.js';
import { HealthWatch } from './health.js';
import { startIngress, type StartedIngress } from './ingress/ingress.js';
import { loadIngressKey } from './ingress/ingressKey.js';
import { IngressTokens } from './ingress/ingressTokens.js';
import { ingressTicketRoutes } from './ingress/ticketRoutes.js';
import { GatewayListener } from './listener.js';
import { startBridge, type StartedBridge } from './ports/bridge.js';
import { PortUrls } from './ports/portUrls.js';
import { PortVisibilityStore } from './ports/portVisibilityStore.js';
import { BrokerDirectory } from './instances/brokers.js';
import { TicketStore } from './instances/ticketStore.js';
import { RetentionCleaner } from './retention.js';
import { LlmKey, SecretBox, SpecKey } from '@paddock/secrets';
import { SecretStore } from './secrets/secretStore.js';
import { ensureAdmin } from './users/adminToken.js';
import { UserStore } from './users/userStore.js';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

export interface StartedGateway {
  readonly app: FastifyInstance;
  readonly url: string;
  /** The embedded ingress, unless PADDOCK_INGRESS_PORT is 0. */
  readonly ingress: StartedIngress | undefined;
  /** The WS-TCP bridge, unless PADDOCK_BRIDGE_PORT is 0. */
  readonly bridge: StartedBridge | undefined;
  stop(): Promise<void>;
}

export interface GatewayOptions {
  /**
   * The service's startup (main.ts): the gateway listens at once and, while it waits for PostgreSQL and
   * NATS through it, /healthz says what it waits for. Without one (a test), it is "starting" until ready.
   */
  readonly startup?: Startup;
  /** The process's telemetry: what the gateway records, and what /metrics serves to the admin. None: no /metrics. */
  readonly telemetry?: Pick<Telemetry, 'metrics' | 'metricsHandler'>;
}


export async function startGateway(config: GatewayConfig, log: Logger, opts: GatewayOptions = {}): Promise<StartedGateway> {
  if (!config.databaseUrl) throw new Error('DATABASE_URL is required');
  const { startup, telemetry } = opts;
  const metrics = telemetry?.metrics ?? unrecordedMetrics();
  // Before listening: a missing or wrong certificate or key is a setting to fix, not an outage to wait out.
  const tls = await loadServiceTls(config.tls);
  const ingressKey = await loadIngressKey(config.ingress.keyFile);
  const startedAtMs = Date.now();
  const listener = await GatewayListener.open(config.host, config.port, () => startup?.health() ?? { state: 'starting', sinceMs: startedAtMs });
  try {
    return await serveOn(listener, config, log, { ...opts, metrics, tls, ingressKey });
  } catch (err) {
    await listener.close();
    throw err;
  }
}

async function serveOn(
  listener: GatewayListener,
  config: GatewayConfig,
  log: Logger,
  { startup, telemetry, metrics, tls, ingressKey }: GatewayOptions & { metrics: Telemetry['metrics']; tls: ServiceTls; ingressKey: Buffer },
): Promise<StartedGateway> {
  const pool = createPool(config.databaseUrl!, { name: 'paddock-gateway', max: 20 });
  await waitFor(startup, 'PostgreSQL', (signal) => migrate(pool, 'gateway', MIGRATIONS_DIR, { log, ...(signal ? { signal } : {}) }));
  const users = new UserStore(pool);
  await ensureAdmin(users, config.adminTokenFile, log);
  const bus = await waitFor(startup, 'NATS', () => Bus.connect({ ...config.bus, url: config.natsUrl, name: 'paddock-gateway', log, observer: metrics }));
  const maxPayloadBytes = bus.nc.info?.max_payload;
  if (maxPayloadBytes !== undefined && maxPayloadBytes < 2 * REQUEST_MESSAGE_MAX_BYTES) {
    log.warn({ maxPayloadBytes, requestMaxBytes: REQUEST_MESSAGE_MAX_BYTES }, "NATS's max_payload leaves little room for execution requests: raise it in nats-server's configuration");
  }
  const store = new ExecutionStore(pool);
  const secrets = new SecretStore(pool, await SecretBox.fromFile(config.secretKeyFile));
  const blobs = new BlobStore(config.blobsDir);
  // Read at start, so that a key file that cannot be read is a setting to fix before any request comes.
  const llmKey = await LlmKey.fromFile(config.llmKeyFile);
  // Short calls: a submit waits for its budget check, and billing answers from indexes.
  const billing = new BillingApi(config.billingAddress, tls, { deadlineMs: 3_000 });
  const executions = new ExecutionService(store, secrets, await SpecKey.fromFile(config.specKeyFile), bus, config, log, {
    blobs,
    llmKey,
    admission: new BudgetAdmission(billing),
  });
  const cleaner = new RetentionCleaner(pool, store, blobs, config.retentionMs, log);
  cleaner.start();
  const health = new HealthWatch(pool, bus);
  health.start();
  // Through the control plane when PADDOCK_XDS_URL names one: main.ts has registered the xds: resolver for it.
  const brokers = new BrokerDirectory(bus, tls, { viaXds: config.brokerXdsAddress !== undefined });
  brokers.start();
  const tickets = new TicketStore(pool, config.terminalTicketTtlMs);
  const subs: Subscription[] = [await projectStates(bus, store)];
  const relay = setInterval(
    () =>
      void executions.relayOutbox().catch((err: unknown) => {
        metrics.errorOccurred(err instanceof Error ? err.name : 'NonError');
        log.warn({ err }, 'outbox relay failed');
      }),
    2000,
  );

  const app = await buildApp({
    config,
    log,
    users,
    executions,
    store,
    secrets,
    brokers,
    tickets,
    bus,
    health,
    metrics,
    billing,
    ...(telemetry ? { scrapeMetrics: () => telemetry.metricsHandler() } : {}),
    ports: {
      visibility: new PortVisibilityStore(pool),
      urls: PortUrls.from({ baseDomain: config.ingress.baseDomain, ingressPort: config.ingress.port, publicIngressUrl: config.ingress.publicIngressUrl }),
      ingressKey,
    },
    serverFactory: listener.serverFactory,
  });
  const ingressTokens = new IngressTokens(ingressKey, config.ingress.sessionTtlMs);
  await app.register(ingressTicketRoutes, {
    store,
    tokens: ingressTokens,
    ingress: config.ingress,
    inProjectOf: (instanceId, userId) => executions.tenancy.userInProjectOf(instanceId, userId),
  });
  await app.ready();
  listener.serve();
  const url = listener.url;

  let ingress: StartedIngress | undefined;
  let bridge: StartedBridge | undefined;
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      await ingress?.stop();
      clearInterval(relay);
      await cleaner.stop();
      await app.close();
      billing.close();
      await bridge?.close();
      await listener.close();
      await health.stop();
      await brokers.stop();
      await Promise.all(subs.map((s) => s.stop()));
      await bus.drain();
      await pool.end().catch(() => {});
    })());
  try {
    if (config.bridge.port !== 0) bridge = await startBridge(app, { host: config.bridge.host, port: config.bridge.port, log });
  } catch (err) {
    await stop();
    throw err;
  }
  if (config.ingress.port !== 0) {
    // The login page the ingress sends browsers to is on this listener, as browsers reach it.
    const loginUrl = `${config.ingress.publicUrl ?? url.replace(/\/\/(0\.0\.0\.0|\[::\]):/, '//localhost:')}/ui/ingress/login`;
    try {
      ingress = await startIngress({
        config: config.ingress,
        tokens: ingressTokens,
        tls,
        userOfToken: async (token) => (await users.byToken(token))?.id ?? null,
        ownerOf: async (instanceId) => (await store.get(instanceId, null))?.ownerId ?? null,
        inProjectOf: (instanceId, userId) => executions.tenancy.userInProjectOf(instanceId, userId),
        loginUrl,
        log,
        onNack: () => metrics.errorOccurred('XdsNack'),
      });
    } catch (err) {
      await stop();
      throw err;
    }
  }
  log.info({ url, ingress: ingress?.url ?? null, bridge: bridge?.url ?? null }, 'gateway ready');
  return { app, url, ingress, bridge, stop };
}
