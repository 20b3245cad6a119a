import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { BlobStore } from '@paddock/blobs';
import { Bus, topics } from '@paddock/bus';
import { createPool, migrate } from '@paddock/db';
import { loadServiceTls } from '@paddock/plane';
import { SpecKey } from '@paddock/secrets';
import { type Startup, waitFor } from '@paddock/service';
import { unrecordedMetrics, type Logger, type PaddockMetrics } from '@paddock/telemetry';
import type { BrokerConfig } from './config.js';
import { InstanceManager } from './lifecycle/instanceManager.js';
import { InstanceStore } from './instanceStore.js';
import { startEdgeRelay } from './edge/edgeRelay.js';
import { DockerProvider } from './providers/docker/dockerProvider.js';
import { RetentionCleaner } from './retention.js';
import { startGrpcServer } from './server.js';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

export interface StartedBroker {
  readonly grpcAddress: string;
  readonly instances: InstanceManager;
  readonly retention: RetentionCleaner;
  /** Idempotent; containers keep running for the next broker process to adopt. */
  stop(): Promise<void>;
}

export interface BrokerOptions {
  /** The service's startup (main.ts): waits for Docker, PostgreSQL and NATS go through it, so health says which. */
  readonly startup?: Startup;
  /** Where the running containers, errors and the bus's redeliveries are recorded. */
  readonly metrics?: PaddockMetrics;
}


/** Until the engine answers a ping: a Docker that is (re)starting is waited for, with its reason logged once. */
async function pingUntilUp(docker: Docker, log: Logger, signal?: AbortSignal): Promise<void> {
  for (let delayMs = 200, told = false; ; delayMs = Math.min(delayMs * 2, 5_000)) {
    try {
      await docker.ping();
      return;
    } catch (err) {
      if (!told) log.warn({ err }, `the Docker engine does not answer (${(err as Error).message}); waiting for it`);
      told = true;
    }
    await sleep(delayMs, undefined, signal ? { signal } : {});
  }
}

/** Connects to Docker, PostgreSQL and NATS, reconciles what a previous process left, then serves. */
export async function startBroker(config: BrokerConfig, log: Logger, opts: BrokerOptions = {}): Promise<StartedBroker> {
  if (!config.databaseUrl) throw new Error('DATABASE_URL is required');
  const { startup, metrics = unrecordedMetrics() } = opts;
  // Before waiting for anything: a missing or wrong certificate or spec key is a setting to fix, not an outage to wait out.
  const tls = await loadServiceTls(config.tls);
  const specKey = await SpecKey.existing(config.specKeyFile);
  const docker = new Docker({ socketPath: config.dockerSocket });
  await waitFor(startup, 'Docker', (signal) => pingUntilUp(docker, log, signal));
  const provider = new DockerProvider(docker, {
    imagesDir: config.imagesDir,
    workspaceMode: config.workspaceMode,
    workspacesDir: config.workspacesDir,
    hostTcpPortsOpen: config.instanceHostPorts,
  });
  const pool = createPool(config.databaseUrl, { name: 'paddock-broker' });
  await waitFor(startup, 'PostgreSQL', (signal) => migrate(pool, 'broker', MIGRATIONS_DIR, { log, ...(signal ? { signal } : {}) }));
  const bus = await waitFor(startup, 'NATS', () =>
    Bus.connect({ ...config.bus, url: config.natsUrl, name: `paddock-broker-${config.brokerId}`, log, observer: metrics }),
  );
  const store = new InstanceStore(pool);
  const blobs = new BlobStore(config.blobsDir);
  const instances = new InstanceManager(provider, bus, store, blobs, config, log, specKey, metrics, config.relayEndpoints);
  await instances.reconcile();
  const reconciling = setInterval(
    () => void instances.reconcile().catch((err: unknown) => log.warn({ err }, 'reconciliation failed; the next one retries')),
    config.reconcileIntervalMs,
  );
  reconciling.unref();
  const retention = new RetentionCleaner(store, blobs, { brokerId: config.brokerId, artifactsDir: config.artifactsDir, retentionMs: config.retentionMs }, log);
  retention.start();
  const grpc = await startGrpcServer(instances, { host: config.grpcHost, port: config.grpcPort, log, tls });
  const edge = await startEdgeRelay({ host: config.relayHost, port: config.relayPort, tls, reachPort: (id, port) => instances.reachPort(id, port), log });

  const beat = () =>
    bus.publishCore(topics.brokerHeartbeat, config.brokerId, {
      brokerId: config.brokerId,
      grpcAddress: grpc.address,
      relayAddress: edge.address,
      providers: [provider.name],
      running: instances.running,
      executionIds: instances.executionIds,
      capacity: config.capacity,
      atMs: Date.now(),
    });
  beat();
  const heartbeat = setInterval(beat, 1000);
  const unobserve = metrics.observeRunningContainers(() => [{ broker: config.brokerId, running: instances.running }]);
  log.info({ grpc: grpc.address, brokerId: config.brokerId, capacity: config.capacity }, 'broker ready');

  let stopped: Promise<void> | undefined;
  return {
    grpcAddress: grpc.address,
    instances,
    retention,
    stop: () =>
      (stopped ??= (async () => {
        clearInterval(heartbeat);
        clearInterval(reconciling);
        unobserve();
        await grpc.stop();
        await edge.stop();
        await instances.stop();
        await retention.stop();
        await bus.drain();
        await pool.end().catch(() => {});
      })()),
  };
}
