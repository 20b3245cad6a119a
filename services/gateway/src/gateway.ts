import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { BlobStore } from '@paddock/blobs';
import { Bus, type Subscription } from '@paddock/bus';
import { createPool, migrate } from '@paddock/db';
import type { Logger } from '@paddock/telemetry';
import { buildApp } from './app.js';
import type { GatewayConfig } from './config.js';
import { ExecutionService } from './executions/executionService.js';
import { ExecutionStore } from './executions/executionStore.js';
import { projectStates } from './executions/projection.js';
import { REQUEST_MESSAGE_MAX_BYTES } from './executions/requestSize.js';
import { HealthWatch } from './health.js';
import { BrokerDirectory } from './instances/brokers.js';
import { TicketStore } from './instances/ticketStore.js';
import { RetentionCleaner } from './retention.js';
import { SecretBox } from '@paddock/secrets';
import { SecretStore } from './secrets/secretStore.js';
import { ensureAdmin } from './users/adminToken.js';
import { UserStore } from './users/userStore.js';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

export interface StartedGateway {
  readonly app: FastifyInstance;
  readonly url: string;
  stop(): Promise<void>;
}

export async function startGateway(config: GatewayConfig, log: Logger): Promise<StartedGateway> {
  if (!config.databaseUrl) throw new Error('DATABASE_URL is required');
  const pool = createPool(config.databaseUrl, { name: 'paddock-gateway', max: 20 });
  await migrate(pool, 'gateway', MIGRATIONS_DIR);
  const users = new UserStore(pool);
  await ensureAdmin(users, config.adminTokenFile, log);
  const bus = await Bus.connect({ url: config.natsUrl, name: 'paddock-gateway', log });
  const maxPayloadBytes = bus.nc.info?.max_payload;
  if (maxPayloadBytes !== undefined && maxPayloadBytes < 2 * REQUEST_MESSAGE_MAX_BYTES) {
    log.warn({ maxPayloadBytes, requestMaxBytes: REQUEST_MESSAGE_MAX_BYTES }, "NATS's max_payload leaves little room for execution requests: raise it in nats-server's configuration");
  }
  const store = new ExecutionStore(pool);
  const secrets = new SecretStore(pool, await SecretBox.fromFile(config.secretKeyFile));
  const blobs = new BlobStore(config.blobsDir);
  const executions = new ExecutionService(store, secrets, bus, config, log, blobs);
  const cleaner = new RetentionCleaner(pool, store, blobs, config.retentionMs, log);
  cleaner.start();
  const health = new HealthWatch(pool, bus);
  health.start();
  const brokers = new BrokerDirectory(bus);
  brokers.start();
  const tickets = new TicketStore(pool, config.terminalTicketTtlMs);
  const subs: Subscription[] = [await projectStates(bus, store)];
  const relay = setInterval(() => void executions.relayOutbox().catch((err: unknown) => log.warn({ err }, 'outbox relay failed')), 2000);

  const app = await buildApp({ config, log, users, executions, store, secrets, brokers, tickets, bus, health });
  const url = await app.listen({ host: config.host, port: config.port });
  log.info({ url }, 'gateway ready');

  let stopped: Promise<void> | undefined;
  return {
    app,
    url,
    stop: () =>
      (stopped ??= (async () => {
        clearInterval(relay);
        await cleaner.stop();
        await app.close();
        await health.stop();
        await brokers.stop();
        await Promise.all(subs.map((s) => s.stop()));
        await bus.drain();
        await pool.end().catch(() => {});
      })()),
  };
}
