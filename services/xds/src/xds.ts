import { Bus, topics } from '@paddock/bus';
import type { Startup } from '@paddock/service';
import { unrecordedMetrics, type Logger, type PaddockMetrics } from '@paddock/telemetry';
import { SnapshotCache } from './cache/snapshotCache.js';
import type { XdsConfig } from './config.js';
import { ControlPlane } from './controlPlane.js';
import { loadEnvoyProtos } from './protos/envoyProtos.js';
import { nodeGroupOf } from './resource/names.js';
import { startAdsServer, type StartedAdsServer } from './server/adsServer.js';
import { PortFeed } from './state/portFeed.js';
import { StateSource } from './state/stateSource.js';

export interface StartedXds {
  /** Where ADS is served, `host:port`. */
  readonly address: string;
  readonly port: number;
  readonly state: StateSource;
  readonly cache: SnapshotCache;
  readonly server: StartedAdsServer;
  readonly controlPlane: ControlPlane;
  /** Ends every stream and disconnects; idempotent. */
  stop(): Promise<void>;
}

export interface XdsOptions {
  /** The service's startup (main.ts): the wait for NATS goes through it, so health says what it waits for. */
  readonly startup?: Startup;
  readonly metrics?: PaddockMetrics;
}

/** Connects to NATS, follows the brokers, and serves ADS. */
export async function startXds(config: XdsConfig, log: Logger, opts: XdsOptions = {}): Promise<StartedXds> {
  const metrics = opts.metrics ?? unrecordedMetrics();
  const protos = loadEnvoyProtos();
  const connect = () => Bus.connect({ ...config.bus, url: config.natsUrl, name: 'paddock-xds', log, observer: metrics });
  const bus = await (opts.startup ? opts.startup.waitFor('NATS', connect) : connect());
  const state = new StateSource({ brokerStaleMs: config.brokerStaleMs, instanceSettleMs: config.instanceSettleMs, log });
  const ports = new PortFeed(state, log);
  const cache = new SnapshotCache(nodeGroupOf);
  const controlPlane = new ControlPlane(state, cache, protos, {
    debounceMs: config.debounceMs,
    debounceMaxMs: config.debounceMaxMs,
    warmupMs: config.warmupMs,
    snapshot: { baseDomain: config.baseDomain, edgeListen: { host: config.edgeHost, port: config.edgePort }, edgeProxy: config.edgeProxy },
    log,
    onError: (err) => metrics.errorOccurred(err.name),
  });
  let server: StartedAdsServer;
  try {
    state.start(bus);
    ports.start(bus);
    controlPlane.start();
    server = await startAdsServer({
      host: config.host,
      port: config.port,
      watcher: cache,
      protos,
      log,
      observer: { nacked: () => metrics.errorOccurred('XdsNack') },
    });
  } catch (err) {
    controlPlane.stop();
    await ports.stop();
    await state.stop();
    await bus.drain();
    throw err;
  }
  const beat = () => bus.publishCore(topics.serviceHeartbeat, 'xds', { service: 'xds', instanceId: String(process.pid), atMs: Date.now() });
  beat();
  const heartbeat = setInterval(beat, 1_000);
  heartbeat.unref();

  let stopped: Promise<void> | undefined;
  return {
    address: server.address,
    port: server.port,
    state,
    cache,
    server,
    controlPlane,
    stop: () =>
      (stopped ??= (async () => {
        clearInterval(heartbeat);
        await server.stop();
        controlPlane.stop();
        await ports.stop();
        await state.stop();
        await bus.drain();
      })()),
  };
}
