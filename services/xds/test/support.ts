import { credentials, makeGenericClientConstructor, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { createLogger } from '@paddock/telemetry';
import { SnapshotCache } from '../src/cache/snapshotCache.js';
import type { XdsNode } from '../src/cache/watch.js';
import { ControlPlane } from '../src/controlPlane.js';
import { loadEnvoyProtos } from '../src/protos/envoyProtos.js';
import { nodeGroupOf } from '../src/resource/names.js';
import { startAdsServer, type StartedAdsServer } from '../src/server/adsServer.js';
import {
  AdsCodec,
  type DeltaDiscoveryRequest,
  type DeltaDiscoveryResponse,
  type DiscoveryRequest,
  type DiscoveryResponse,
} from '../src/server/messages.js';
import type { NackEvent, AckEvent } from '../src/server/streamStatus.js';
import { StateSource } from '../src/state/stateSource.js';

export const log = createLogger('xds-test', process.env['LOG_LEVEL'] ?? 'error');
export const protos = loadEnvoyProtos();
export const codec = new AdsCodec(protos);

export const EDGE_NODE: XdsNode = { id: 'envoy-1', cluster: 'paddock-edge', userAgentName: 'envoy' };
export const INGRESS_NODE: XdsNode = { id: 'gateway-1', cluster: 'paddock-ingress', userAgentName: 'paddock-gateway' };
export const GRPC_NODE: XdsNode = { id: 'grpc-1', cluster: 'paddock-grpc', userAgentName: 'gRPC Node Pure JS' };

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

/** A control plane in this process: state fed by hand (no NATS), a real ADS server on a loopback port. */
export interface TestPlane {
  readonly state: StateSource;
  readonly cache: SnapshotCache;
  readonly controlPlane: ControlPlane;
  readonly server: StartedAdsServer;
  readonly acks: AckEvent[];
  readonly nacks: NackEvent[];
  /** Moves the state's clock forward (brokers age without waiting). */
  advance(ms: number): void;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function startTestPlane(opts: { debounceMs?: number; debounceMaxMs?: number } = {}): Promise<TestPlane> {
  let skewMs = 0;
  const state = new StateSource({ brokerStaleMs: 60_000, instanceSettleMs: 2_000, log, now: () => Date.now() + skewMs });
  const cache = new SnapshotCache(nodeGroupOf);
  const controlPlane = new ControlPlane(state, cache, protos, {
    debounceMs: opts.debounceMs ?? 20,
    debounceMaxMs: opts.debounceMaxMs ?? 200,
    warmupMs: 0,
    snapshot: { baseDomain: 'localhost', edgeListen: { host: '127.0.0.1', port: 8080 } },
    log,
  });
  controlPlane.start();
  const acks: AckEvent[] = [];
  const nacks: NackEvent[] = [];
  const server = await startAdsServer({
    host: '127.0.0.1',
    port: 0,
    watcher: cache,
    protos,
    log,
    observer: { acked: (e) => acks.push(e), nacked: (e) => nacks.push(e) },
  });
  await eventually('the first snapshot', () => (cache.snapshot('paddock-edge') ? true : undefined));
  return {
    state,
    cache,
    controlPlane,
    server,
    acks,
    nacks,
    advance: (ms) => {
      skewMs += ms;
    },
    [Symbol.asyncDispose]: async () => {
      controlPlane.stop();
      await server.stop(500);
    },
  };
}

type RawStream<Req, Res> = ClientDuplexStream<Req, Res>;

/** One ADS stream as a test drives it: send requests, take responses one by one. */
export class TestStream<Req, Res> {
  readonly #responses: Res[] = [];
  readonly #waiters: ((r: Res) => void)[] = [];
  #error: ServiceError | undefined;
  readonly ended: Promise<ServiceError | null>;

  constructor(private readonly call: RawStream<Req, Res>) {
    call.on('data', (r: Res) => {
      const waiter = this.#waiters.shift();
      if (waiter) waiter(r);
      else this.#responses.push(r);
    });
    this.ended = new Promise((resolve) => {
      call.on('error', (err: ServiceError) => {
        this.#error = err;
        resolve(err);
      });
      call.on('end', () => resolve(null));
    });
  }

  send(request: Req): void {
    this.call.write(request);
  }

  /** The next response, within `timeoutMs`. */
  async next(timeoutMs = 3_000): Promise<Res> {
    const queued = this.#responses.shift();
    if (queued) return queued;
    if (this.#error) throw this.#error;
    return new Promise<Res>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(new Error(`no response within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (r: Res) => {
        clearTimeout(timer);
        resolve(r);
      };
      this.#waiters.push(waiter);
    });
  }

  /** Asserts that nothing arrives for `ms`. */
  async nothingFor(ms: number): Promise<void> {
    await new Promise((r) => setTimeout(r, ms));
    const queued = this.#responses.shift();
    if (queued) throw new Error(`expected no response, got ${JSON.stringify(queued, (_k, v: unknown) => (v instanceof Uint8Array ? `<${v.length} bytes>` : v))}`);
  }

  close(): void {
    this.call.end();
    this.call.cancel();
  }
}

interface AdsClient {
  StreamAggregatedResources(): RawStream<DiscoveryRequest, DiscoveryResponse>;
  DeltaAggregatedResources(): RawStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;
  close(): void;
}

/** A plain ADS client of `address` (host:port) over gRPC: what Envoy would send, written by hand. */
export function adsClient(address: string): {
  sotw(): TestStream<DiscoveryRequest, DiscoveryResponse>;
  delta(): TestStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;
  close(): void;
} {
  const Client = makeGenericClientConstructor(codec.serviceDefinition(), 'AggregatedDiscoveryService');
  const client = new Client(address, credentials.createInsecure()) as unknown as AdsClient;
  const streams: TestStream<unknown, unknown>[] = [];
  return {
    sotw: () => {
      const s = new TestStream(client.StreamAggregatedResources());
      streams.push(s as TestStream<unknown, unknown>);
      return s;
    },
    delta: () => {
      const s = new TestStream(client.DeltaAggregatedResources());
      streams.push(s as TestStream<unknown, unknown>);
      return s;
    },
    close: () => {
      for (const s of streams) s.close();
      client.close();
    },
  };
}

/** A state-of-the-world request. */
export function sotwRequest(typeUrl: string, fields: Partial<DiscoveryRequest> = {}): DiscoveryRequest {
  return { versionInfo: '', node: null, resourceNames: [], typeUrl, responseNonce: '', errorDetail: null, ...fields };
}

/** A delta request. */
export function deltaRequest(typeUrl: string, fields: Partial<DeltaDiscoveryRequest> = {}): DeltaDiscoveryRequest {
  return {
    node: null,
    typeUrl,
    resourceNamesSubscribe: [],
    resourceNamesUnsubscribe: [],
    initialResourceVersions: {},
    responseNonce: '',
    errorDetail: null,
    ...fields,
  };
}

/** The resources of a response, decoded (field names as in the .proto). */
export function decodeAll(response: { resources: readonly { typeUrl: string; value: Uint8Array }[] }): Record<string, unknown>[] {
  return response.resources.map((r) => protos.decode(r.typeUrl.slice(r.typeUrl.lastIndexOf('/') + 1), r.value));
}
