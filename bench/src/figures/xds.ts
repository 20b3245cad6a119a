import { credentials, makeGenericClientConstructor, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { createLogger } from '@paddock/telemetry';
import {
  AdsCodec,
  ControlPlane,
  EDGE_ROUTE_CONFIG,
  loadEnvoyProtos,
  MESSAGE_TYPES,
  NODE_GROUPS,
  nodeGroupOf,
  SnapshotCache,
  startAdsServer,
  StateSource,
  TYPE_URLS,
  xdsConfig,
  type DiscoveryRequest,
  type DiscoveryResponse,
  type EnvoyProtos,
  type XdsNode,
} from '@paddock/xds';
import { ms, sampled, type Figure, type Section } from '../section.js';

type AdsCall = ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>;
interface AdsClient {
  StreamAggregatedResources(): AdsCall;
  close(): void;
}

/** The ports every instance has open, as a dev server, an API and a debugger would. */
const BASE_PORTS = [3000, 5173, 8000] as const;
/** Each sample replaces an instance's last port with this plus the sample's number, so each is a new version. */
const CHANGED_PORT_BASE = 10_000;
const BROKER_ID = 'bench-xds-broker';
const WAIT_MS = 30_000;
const NODE: XdsNode = { id: 'paddock-bench', cluster: NODE_GROUPS.ingress, userAgentName: 'paddock-bench' };

const SUBSCRIBED = [TYPE_URLS.cluster, TYPE_URLS.loadAssignment, TYPE_URLS.routeConfiguration] as const;
type Subscribed = (typeof SUBSCRIBED)[number];
const MESSAGE_OF: Record<Subscribed, string> = {
  [TYPE_URLS.cluster]: MESSAGE_TYPES.cluster,
  [TYPE_URLS.loadAssignment]: MESSAGE_TYPES.loadAssignment,
  [TYPE_URLS.routeConfiguration]: MESSAGE_TYPES.routeConfiguration,
};

/** What the client saw of one route configuration that holds the host waited for. */
interface Seen {
  readonly version: string;
  readonly bytes: number;
}

/**
 * A state-of-the-world ADS client that behaves as the gateway's ingress does (node.cluster
 * `paddock-ingress`): every cluster, their load assignments, the route configuration `paddock-edge`; each
 * response decoded in full before it is ACKed. `expect(host)` resolves with the version of the first route
 * configuration whose virtual hosts name `host`, once the client has decoded it and sent its ACK.
 */
class IngressLikeClient {
  readonly #call: AdsCall;
  readonly #client: AdsClient;
  readonly #nonces = new Map<string, string>();
  readonly #versions = new Map<string, string>();
  #edsNames: string | null = null;
  #nodeSent = false;
  #waiting: { host: string; resolve: (seen: Seen) => void; reject: (err: Error) => void } | undefined;
  #failure: Error | undefined;

  constructor(
    address: string,
    private readonly protos: EnvoyProtos,
  ) {
    const Client = makeGenericClientConstructor(new AdsCodec(protos).serviceDefinition(), 'AggregatedDiscoveryService');
    this.#client = new Client(address, credentials.createInsecure()) as unknown as AdsClient;
    this.#call = this.#client.StreamAggregatedResources();
    this.#call.on('data', (r: DiscoveryResponse) => this.#onResponse(r));
    this.#call.on('error', (err: ServiceError) => this.#fail(new Error(`the ADS stream failed: ${err.message}`, { cause: err })));
    this.#call.on('end', () => this.#fail(new Error('the control plane ended the ADS stream')));
    this.#request(TYPE_URLS.cluster, []);
    this.#request(TYPE_URLS.routeConfiguration, [EDGE_ROUTE_CONFIG]);
  }

  expect(host: string): Promise<Seen> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#waiting) throw new Error(`already waiting for ${this.#waiting.host}`);
    return new Promise<Seen>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting = undefined;
        reject(new Error(`no route configuration with ${host} within ${WAIT_MS} ms`));
      }, WAIT_MS);
      this.#waiting = {
        host,
        resolve: (seen) => {
          clearTimeout(timer);
          resolve(seen);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
    });
  }

  close(): void {
    this.#call.removeAllListeners('error').on('error', () => undefined);
    this.#call.cancel();
    this.#client.close();
  }

  #request(typeUrl: Subscribed, resourceNames: readonly string[]): void {
    this.#call.write({
      versionInfo: this.#versions.get(typeUrl) ?? '',
      node: this.#nodeSent ? null : NODE,
      resourceNames: [...resourceNames],
      typeUrl,
      responseNonce: this.#nonces.get(typeUrl) ?? '',
      errorDetail: null,
    });
    this.#nodeSent = true;
  }

  #onResponse(response: DiscoveryResponse): void {
    const typeUrl = response.typeUrl as Subscribed;
    if (!SUBSCRIBED.includes(typeUrl)) return this.#fail(new Error(`the control plane sent ${response.typeUrl}, which was not asked for`));
    this.#nonces.set(typeUrl, response.nonce);
    this.#versions.set(typeUrl, response.versionInfo);
    // Decoded whole, as a real client must before it can use (and so ACK) a response.
    const resources = response.resources.map((r) => this.protos.decode(MESSAGE_OF[typeUrl], r.value));
    if (typeUrl === TYPE_URLS.cluster) {
      const names = resources.map((c) => String(c['name'])).sort();
      this.#request(typeUrl, []);
      if (names.length > 0 && names.join('\n') !== this.#edsNames) {
        this.#edsNames = names.join('\n');
        this.#request(TYPE_URLS.loadAssignment, names);
      }
      return;
    }
    if (typeUrl === TYPE_URLS.loadAssignment) {
      this.#request(typeUrl, this.#edsNames?.split('\n') ?? []);
      return;
    }
    const waiting = this.#waiting;
    const holds =
      waiting !== undefined &&
      resources.some((config) => ((config['virtual_hosts'] ?? []) as { domains?: string[] }[]).some((v) => v.domains?.includes(waiting.host)));
    this.#request(typeUrl, [EDGE_ROUTE_CONFIG]);
    if (holds) {
      this.#waiting = undefined;
      waiting.resolve({ version: response.versionInfo, bytes: response.resources.reduce((sum, r) => sum + r.value.length, 0) });
    }
  }

  #fail(err: Error): void {
    this.#failure ??= err;
    this.#waiting?.reject(err);
    this.#waiting = undefined;
  }
}

/** When the server received each ACK of a route configuration, by version; `when` waits for one to come. */
class AckLog {
  readonly #at = new Map<string, number>();
  readonly #waiting = new Map<string, (atMs: number) => void>();

  acked(version: string, atMs: number): void {
    if (!this.#at.has(version)) this.#at.set(version, atMs);
    this.#waiting.get(version)?.(atMs);
  }

  when(version: string): Promise<number> {
    const atMs = this.#at.get(version);
    if (atMs !== undefined) return Promise.resolve(atMs);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(version);
        reject(new Error(`the server saw no ACK of route configuration ${version} within ${WAIT_MS} ms`));
      }, WAIT_MS);
      this.#waiting.set(version, (at) => {
        clearTimeout(timer);
        this.#waiting.delete(version);
        resolve(at);
      });
    });
  }
}

/**
 * The control plane's push: services/xds's StateSource, ControlPlane (with the service's default debounce),
 * SnapshotCache and ADS server, in this process, with `--xds-instances` (1,000) instances of 3 open ports on
 * one broker; an ADS client as the ingress is. `xds_push_ack` is the time from one port change applied to
 * the state (as a port event from the bus is) to the server receiving the client's ACK of the route
 * configuration that holds it; `xds_route_config_mb` is that configuration's size.
 */
export const xds: Section = {
  name: 'xds',
  async run(ctx) {
    const count = ctx.options.xdsInstances;
    // The service's own defaults (debounce 100 ms, at most 1 s), as `paddock up` runs it.
    const config = xdsConfig({});
    const log = createLogger('bench-xds', 'warn');
    const protos = loadEnvoyProtos();
    const state = new StateSource({ brokerStaleMs: config.brokerStaleMs, instanceSettleMs: config.instanceSettleMs, log });
    const cache = new SnapshotCache(nodeGroupOf);
    const controlPlane = new ControlPlane(state, cache, protos, {
      debounceMs: config.debounceMs,
      debounceMaxMs: config.debounceMaxMs,
      // The state is complete before the client connects: nothing to wait for.
      warmupMs: 0,
      snapshot: { baseDomain: config.baseDomain, edgeListen: { host: config.edgeHost, port: config.edgePort }, edgeProxy: config.edgeProxy },
      log,
      onError: (err) => ctx.fail(`xds: a state could not become a configuration: ${err.message}`),
    });
    const acks = new AckLog();
    const server = await startAdsServer({
      host: '127.0.0.1',
      port: 0,
      watcher: cache,
      protos,
      log,
      observer: {
        acked: (e) => {
          if (e.typeUrl === TYPE_URLS.routeConfiguration) acks.acked(e.version, performance.now());
        },
        nacked: (e) => ctx.fail(`xds: the client refused ${e.typeUrl} version ${e.version}: ${e.message}`),
      },
    });
    let client: IngressLikeClient | undefined;
    try {
      const ids = Array.from({ length: count }, (_, i) => `bench-xds-${i.toString().padStart(5, '0')}`);
      // The broker's addresses are never dialled: only the configuration is measured.
      state.applyHeartbeat({ brokerId: BROKER_ID, grpcAddress: '127.0.0.1:50051', relayAddress: '127.0.0.1:50052', executionIds: ids });
      const seqs = new Map<string, number>();
      const open = (id: string, ports: readonly number[]) => {
        const seq = (seqs.get(id) ?? 0) + 1;
        seqs.set(id, seq);
        state.applyPortEvent({ instanceId: id, brokerId: BROKER_ID, open: ports.map((port) => ({ port })), seq, instanceEnded: false });
      };
      for (const id of ids) open(id, BASE_PORTS);
      controlPlane.start();
      ctx.progress(`xds: ${count} instances × ${BASE_PORTS.length} ports, waiting for the first configuration`);
      const ads = new IngressLikeClient(server.address, protos);
      client = ads;
      const lastId = ids[ids.length - 1] as string;
      await ads.expect(`${lastId}-${BASE_PORTS[0]}.${config.baseDomain}`);

      let sample = 0;
      const samples = await sampled(
        ctx,
        'xds_push_ack',
        async () => {
          const i = sample++;
          const id = ids[i % ids.length] as string;
          const port = CHANGED_PORT_BASE + i;
          const seen = ads.expect(`${id}-${port}.${config.baseDomain}`);
          const t0 = performance.now();
          open(id, [BASE_PORTS[0], BASE_PORTS[1], port]);
          const { version, bytes } = await seen;
          return { ms: (await acks.when(version)) - t0, mb: bytes / 1e6 };
        },
        (s) => `${ms(s.ms)} (route configuration ${s.mb.toFixed(2)} MB)`,
      );
      const figures: Figure[] = [
        { name: 'xds_push_ack', unit: 'ms', samples: samples.map((s) => s.ms) },
        { name: 'xds_route_config_mb', unit: 'MB', samples: samples.map((s) => s.mb) },
      ];
      ctx.progress(`xds: ${controlPlane.builds} configurations built, ${samples.length} counted`);
      return figures;
    } finally {
      client?.close();
      controlPlane.stop();
      await server.stop(500);
    }
  },
};
