import { hostname } from 'node:os';
import { credentials, makeGenericClientConstructor, status, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import type { Logger } from '@paddock/telemetry';
import {
  AdsCodec,
  EDGE_ROUTE_CONFIG,
  loadEnvoyProtos,
  MESSAGE_TYPES,
  NODE_GROUPS,
  TYPE_URLS,
  type DiscoveryRequest,
  type DiscoveryResponse,
  type EnvoyProtos,
  type HostPort,
  type XdsNode,
} from '@paddock/xds';
import { RouteTable, RouteTableError } from './routeTable.js';

type Plain = Record<string, unknown>;
type AdsCall = ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>;
interface AdsClient {
  StreamAggregatedResources(): AdsCall;
  close(): void;
}

/** Reconnection: the first retry after this, doubling up to the maximum, each within ±20 %. */
const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 10_000;

/** The types the ingress subscribes to, in the order services/xds pushes them. */
const SUBSCRIBED = [TYPE_URLS.cluster, TYPE_URLS.loadAssignment, TYPE_URLS.routeConfiguration] as const;
type Subscribed = (typeof SUBSCRIBED)[number];

const TYPE_NAMES: Record<Subscribed, string> = {
  [TYPE_URLS.cluster]: 'clusters',
  [TYPE_URLS.loadAssignment]: 'load assignments',
  [TYPE_URLS.routeConfiguration]: 'route configuration',
};
const MESSAGE_OF: Record<Subscribed, string> = {
  [TYPE_URLS.cluster]: MESSAGE_TYPES.cluster,
  [TYPE_URLS.loadAssignment]: MESSAGE_TYPES.loadAssignment,
  [TYPE_URLS.routeConfiguration]: MESSAGE_TYPES.routeConfiguration,
};

/** A resource the ingress cannot use; its message goes back to the control plane in the NACK. */
class UnusableResourceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnusableResourceError';
  }
}

export interface XdsRouteClientOptions {
  /** The control plane's ADS, `host:port`. */
  readonly address: string;
  readonly log: Logger;
  /** Told of every response the ingress refused (a NACK), with the reason it gave. */
  readonly onNack?: (typeUrl: string, message: string) => void;
  /** The node id the ingress gives itself; default `paddock-gateway-<host name>-<pid>`. */
  readonly nodeId?: string;
}

/** What the client has: for logs, health and tests. */
export interface XdsRouteStatus {
  /** A stream to the control plane is open. */
  readonly connected: boolean;
  /** The version applied (and acknowledged) of each type, by type URL. */
  readonly versions: Readonly<Record<string, string>>;
  /** The last response refused, and why. */
  readonly lastNack: { readonly typeUrl: string; readonly version: string; readonly message: string } | null;
}

/** One stream's nonces: an ACK or NACK names the response it answers. */
interface Stream {
  readonly call: AdsCall;
  readonly nonces: Map<string, string>;
  /** The clusters this stream's load-assignment subscription names. */
  edsNames: readonly string[] | null;
  /** The node goes in the stream's first request only; the server keeps it. */
  nodeSent: boolean;
  answered: boolean;
}

/**
 * The embedded ingress's ADS client of services/xds (node.cluster `paddock-ingress`), state of the world:
 * clusters (all of them: one per live broker), their load assignments (each broker's Relay address), and
 * the route configuration `paddock-edge` (hosts -> instance ports). State of the world rather than delta
 * because the routes are one resource that is sent whole either way, and the clusters are one per broker:
 * delta would save nothing worth its bookkeeping.
 *
 * Each response is checked before it is used: one the ingress cannot use is NACKed with the reason and the
 * previous configuration stays, as Envoy does. A lost stream is opened again with backoff; meanwhile (and
 * across a restart of the control plane) the last configuration keeps serving.
 */
export class XdsRouteClient {
  readonly #opts: XdsRouteClientOptions;
  readonly #protos: EnvoyProtos;
  readonly #node: XdsNode;
  readonly #client: AdsClient;
  readonly #versions = new Map<Subscribed, string>();
  readonly #listeners = new Set<(table: RouteTable) => void>();
  #table: RouteTable | null = null;
  #clusters: readonly string[] = [];
  #endpoints = new Map<string, HostPort | null>();
  #stream: Stream | undefined;
  #retries = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #lastNack: XdsRouteStatus['lastNack'] = null;
  #stopped = false;
  #firstTable: { promise: Promise<void>; resolve: () => void };

  constructor(opts: XdsRouteClientOptions) {
    this.#opts = opts;
    this.#protos = loadEnvoyProtos();
    this.#node = { id: opts.nodeId ?? `paddock-gateway-${hostname()}-${process.pid}`, cluster: NODE_GROUPS.ingress, userAgentName: 'paddock-gateway' };
    const Client = makeGenericClientConstructor(new AdsCodec(this.#protos).serviceDefinition(), 'AggregatedDiscoveryService');
    // Plain text: the control plane serves loopback only until it has mTLS (services/xds, "Security").
    this.#client = new Client(opts.address, credentials.createInsecure()) as unknown as AdsClient;
    let resolve!: () => void;
    this.#firstTable = { promise: new Promise<void>((r) => (resolve = r)), resolve };
  }

  start(): void {
    this.#connect();
  }

  /** Ends the stream and stops reconnecting; idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    const stream = this.#stream;
    this.#stream = undefined;
    stream?.call.cancel();
    this.#client.close();
  }

  /** The routes, once a route configuration has been applied; null before. */
  get table(): RouteTable | null {
    return this.#table;
  }

  /** Resolves once the first route configuration is applied (it may never be, while the control plane is away). */
  firstTable(): Promise<void> {
    return this.#firstTable.promise;
  }

  /**
   * Where `cluster`'s broker serves its Relay RPC: undefined for a cluster the control plane has not named
   * (or not given endpoints for yet), null for one it says has no endpoint.
   */
  endpointOf(cluster: string): HostPort | null | undefined {
    return this.#endpoints.get(cluster);
  }

  /** Calls `listener` with each route table applied from now on. */
  onTable(listener: (table: RouteTable) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  status(): XdsRouteStatus {
    return {
      connected: this.#stream?.answered ?? false,
      versions: Object.fromEntries(this.#versions),
      lastNack: this.#lastNack,
    };
  }

  #connect(): void {
    if (this.#stopped) return;
    const call = this.#client.StreamAggregatedResources();
    const stream: Stream = { call, nonces: new Map(), edsNames: null, nodeSent: false, answered: false };
    this.#stream = stream;
    call.on('data', (response: DiscoveryResponse) => this.#onResponse(stream, response));
    call.on('error', (err: ServiceError) => this.#lost(stream, err));
    call.on('end', () => this.#lost(stream, null));
    // Every cluster (an empty list is the wildcard), then the routes; load assignments once the clusters are known.
    this.#request(stream, TYPE_URLS.cluster, []);
    this.#request(stream, TYPE_URLS.routeConfiguration, [EDGE_ROUTE_CONFIG]);
    if (this.#clusters.length > 0) this.#subscribeEndpoints(stream);
  }

  #request(stream: Stream, typeUrl: Subscribed, resourceNames: readonly string[], nack?: string): void {
    stream.call.write({
      versionInfo: this.#versions.get(typeUrl) ?? '',
      node: stream.nodeSent ? null : this.#node,
      resourceNames,
      typeUrl,
      responseNonce: stream.nonces.get(typeUrl) ?? '',
      errorDetail: nack === undefined ? null : { code: status.INVALID_ARGUMENT, message: nack },
    });
    stream.nodeSent = true;
  }

  #subscribeEndpoints(stream: Stream): void {
    const names = [...this.#clusters].sort();
    if (stream.edsNames !== null && names.join('\n') === stream.edsNames.join('\n')) return;
    // The first load-assignment request must name something: an empty one would be the legacy wildcard.
    if (stream.edsNames === null && names.length === 0) return;
    stream.edsNames = names;
    this.#request(stream, TYPE_URLS.loadAssignment, names);
  }

  #subscription(stream: Stream, typeUrl: Subscribed): readonly string[] {
    if (typeUrl === TYPE_URLS.cluster) return [];
    if (typeUrl === TYPE_URLS.routeConfiguration) return [EDGE_ROUTE_CONFIG];
    return stream.edsNames ?? [];
  }

  #onResponse(stream: Stream, response: DiscoveryResponse): void {
    if (stream !== this.#stream) return;
    if (!stream.answered) {
      stream.answered = true;
      this.#retries = 0;
      this.#opts.log.info({ address: this.#opts.address }, 'ingress: following the routes of the control plane');
    }
    const typeUrl = response.typeUrl as Subscribed;
    if (!SUBSCRIBED.includes(typeUrl)) {
      this.#opts.log.warn({ typeUrl: response.typeUrl }, 'ingress: the control plane sent a type it was not asked for; ignored');
      return;
    }
    stream.nonces.set(typeUrl, response.nonce);
    try {
      const resources = response.resources.map((r, i) => {
        if (r.typeUrl !== typeUrl) throw new UnusableResourceError(`resource ${i} is a ${r.typeUrl} in a response of ${typeUrl}`);
        return this.#decode(typeUrl, r.value, i);
      });
      if (typeUrl === TYPE_URLS.cluster) this.#applyClusters(resources);
      else if (typeUrl === TYPE_URLS.loadAssignment) this.#applyEndpoints(stream, resources);
      else this.#applyRoutes(resources);
    } catch (err) {
      // Anything else is a bug of this client: refused all the same (a NACK keeps what works), and logged as one.
      if (!(err instanceof UnusableResourceError || err instanceof RouteTableError)) this.#opts.log.error({ err, typeUrl }, 'ingress: applying a response failed');
      const message = err instanceof Error ? err.message : String(err);
      this.#lastNack = { typeUrl, version: response.versionInfo, message };
      this.#opts.log.warn(
        { typeUrl, version: response.versionInfo, kept: this.#versions.get(typeUrl) ?? null, reason: message },
        `ingress: refused ${TYPE_NAMES[typeUrl]} version ${response.versionInfo} and keeps what it had: ${message}`,
      );
      this.#opts.onNack?.(typeUrl, message);
      this.#request(stream, typeUrl, this.#subscription(stream, typeUrl), message);
      return;
    }
    this.#versions.set(typeUrl, response.versionInfo);
    this.#request(stream, typeUrl, this.#subscription(stream, typeUrl));
    if (typeUrl === TYPE_URLS.cluster) this.#subscribeEndpoints(stream);
  }

  #decode(typeUrl: Subscribed, bytes: Uint8Array, index: number): Plain {
    try {
      return this.#protos.decode(MESSAGE_OF[typeUrl], bytes);
    } catch (err) {
      throw new UnusableResourceError(`resource ${index} does not decode as ${typeUrl}: ${(err as Error).message}`);
    }
  }

  #applyClusters(clusters: Plain[]): void {
    const names = clusters.map((c, i) => {
      const name = c['name'];
      if (typeof name !== 'string' || name === '') throw new UnusableResourceError(`cluster ${i} has no name`);
      if (c['type'] !== 'EDS') throw new UnusableResourceError(`cluster ${name} is of type ${String(c['type'])}: the ingress reaches brokers through EDS clusters only`);
      return name;
    });
    this.#clusters = names;
    // A cluster that is gone takes its endpoint with it: its broker is no longer alive.
    for (const cluster of [...this.#endpoints.keys()]) if (!names.includes(cluster)) this.#endpoints.delete(cluster);
  }

  #applyEndpoints(stream: Stream, assignments: Plain[]): void {
    const endpoints = new Map<string, HostPort | null>();
    for (const [i, cla] of assignments.entries()) {
      const cluster = cla['cluster_name'];
      if (typeof cluster !== 'string' || cluster === '') throw new UnusableResourceError(`load assignment ${i} names no cluster`);
      endpoints.set(cluster, relayEndpoint(cluster, cla));
    }
    // A state-of-the-world response holds every subscribed assignment that exists.
    const next = new Map(this.#endpoints);
    for (const name of stream.edsNames ?? []) next.delete(name);
    for (const [cluster, endpoint] of endpoints) next.set(cluster, endpoint);
    this.#endpoints = next;
  }

  #applyRoutes(configs: Plain[]): void {
    const config = configs.find((c) => c['name'] === EDGE_ROUTE_CONFIG);
    // Not there (yet): the control plane says nothing of it, so what the ingress has stays.
    if (!config) return;
    const table = RouteTable.build(config);
    this.#table = table;
    this.#firstTable.resolve();
    for (const listener of this.#listeners) listener(table);
  }

  #lost(stream: Stream, err: ServiceError | null): void {
    if (stream !== this.#stream) return;
    this.#stream = undefined;
    if (this.#stopped) return;
    const delayMs = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** this.#retries) * (0.8 + Math.random() * 0.4);
    this.#retries += 1;
    const why = err ? `${status[err.code] ?? err.code}: ${err.details || err.message}` : 'the control plane ended the stream';
    // The first failures while the control plane starts are expected; a lasting outage is worth a warning.
    const level = this.#retries > 3 ? 'warn' : 'info';
    this.#opts.log[level]({ address: this.#opts.address, retryInMs: Math.round(delayMs), why }, `ingress: lost the control plane (${why}); routes stay as they were, reconnecting`);
    this.#retryTimer = setTimeout(() => this.#connect(), delayMs);
    this.#retryTimer.unref();
  }
}

/** The Relay address of a broker's load assignment: its first endpoint with a socket address; null when it has none. */
function relayEndpoint(cluster: string, cla: Plain): HostPort | null {
  const localities = Array.isArray(cla['endpoints']) ? (cla['endpoints'] as Plain[]) : [];
  const lbEndpoints = localities.flatMap((l) => (Array.isArray(l['lb_endpoints']) ? (l['lb_endpoints'] as Plain[]) : []));
  if (lbEndpoints.length === 0) return null;
  for (const lb of lbEndpoints) {
    const socket = ((lb['endpoint'] as Plain | null)?.['address'] as Plain | null)?.['socket_address'] as Plain | null | undefined;
    const host = socket?.['address'];
    const port = socket?.['port_value'];
    if (typeof host === 'string' && host !== '' && typeof port === 'number' && port >= 1 && port <= 65_535) return { host, port };
  }
  throw new UnusableResourceError(`load assignment ${cluster} has endpoints but none with a socket address (host and port)`);
}
