// services/xds in this process for the ingress's tests: its real state, cache, control plane and ADS
// server on a loopback port, the state fed by hand (heartbeats and port events as NATS would bring them).
import { createLogger } from '@paddock/telemetry';
import {
  ControlPlane,
  loadEnvoyProtos,
  nodeGroupOf,
  SnapshotCache,
  startAdsServer,
  StateSource,
  type AckEvent,
  type NackEvent,
  type StartedAdsServer,
} from '@paddock/xds';

export const log = createLogger('ingress-test', process.env['LOG_LEVEL'] ?? 'silent');

/** Resolves with the first value `read` gives that is not undefined, checking every 20 ms. */
export async function eventually<T>(what: string, read: () => T | undefined | Promise<T | undefined>, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface TestPlane {
  readonly state: StateSource;
  /** `host:port` of its ADS. */
  readonly address: string;
  readonly acks: AckEvent[];
  readonly nacks: NackEvent[];
  /** A broker beating, holding these instances. */
  beat(brokerId: string, grpcAddress: string, executionIds: string[]): void;
  /** The ports open in an instance now (a portdetect event). */
  ports(instanceId: string, brokerId: string, open: number[]): void;
  /** Stops the ADS server (streams end); the state and the cache stay. */
  stopServer(): Promise<void>;
  /** Starts it again on the same port. */
  startServer(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function startTestPlane(baseDomain = 'localhost'): Promise<TestPlane> {
  const protos = loadEnvoyProtos();
  const state = new StateSource({ brokerStaleMs: 60_000, instanceSettleMs: 2_000, log });
  const cache = new SnapshotCache(nodeGroupOf);
  const controlPlane = new ControlPlane(state, cache, protos, {
    debounceMs: 10,
    debounceMaxMs: 100,
    warmupMs: 0,
    snapshot: { baseDomain, edgeListen: { host: '127.0.0.1', port: 8080 } },
    log,
  });
  controlPlane.start();
  const acks: AckEvent[] = [];
  const nacks: NackEvent[] = [];
  const serve = (port: number) =>
    startAdsServer({ host: '127.0.0.1', port, watcher: cache, protos, log, observer: { acked: (e) => acks.push(e), nacked: (e) => nacks.push(e) } });
  let server: StartedAdsServer | undefined = await serve(0);
  const port = server.port;
  const seqs = new Map<string, number>();
  await eventually('the first snapshot', () => (cache.snapshot('paddock-ingress') ? true : undefined));
  return {
    state,
    address: server.address,
    acks,
    nacks,
    beat: (brokerId, grpcAddress, executionIds) => state.applyHeartbeat({ brokerId, grpcAddress, executionIds }),
    ports: (instanceId, brokerId, open) => {
      const seq = (seqs.get(instanceId) ?? 0) + 1;
      seqs.set(instanceId, seq);
      state.applyPortEvent({ instanceId, brokerId, open: open.map((p) => ({ port: p })), seq, instanceEnded: false });
    },
    stopServer: async () => {
      await server?.stop(200);
      server = undefined;
    },
    startServer: async () => {
      server = await serve(port);
    },
    [Symbol.asyncDispose]: async () => {
      controlPlane.stop();
      await server?.stop(200);
    },
  };
}
