import { isIP } from 'node:net';
import { spiffeId } from '@paddock/plane';
import type { JsonObject } from '../protos/protoJson.js';
import { EDGE_AUTHZ_HEADERS, EDGE_AUTHZ_PATH_PREFIX, EDGE_LISTENER, EDGE_ROUTE_CONFIG, GATEWAY_CLUSTER, RELAY_HEADERS, relayCluster, ROUTE_METADATA_KEY } from './names.js';
import type { BrokerState, HostPort, InstanceState, OpenPort, PaddockState } from './paddockState.js';
import { Generations } from './generations.js';
import { ADS_SOURCE, edsCluster, HTTP_CONNECTION_MANAGER_TYPE, lbEndpoint, loadAssignment, ROUTER_FILTER, type ResourceJson } from './resourceJson.js';
import { TYPE_URLS, type TypeUrl } from './typeUrls.js';

/** Files on Envoy's host, which Envoy reads itself. */
export interface EdgeRelayTls {
  /** The plane's CA: a broker's certificate must come from it. */
  readonly caFile: string;
  /** The certificate (naming spiffe://paddock/edge) and key Envoy shows the brokers' HTTP relays. */
  readonly certFile: string;
  readonly keyFile: string;
}

/** What Envoy at the edge is told beyond the routes themselves. */
export interface EdgeProxyOptions {
  /** How Envoy proves itself to the brokers' HTTP relays, and checks that it reached a broker. */
  readonly relayTls: EdgeRelayTls;
  /** The gateway's ingress listener, which answers Envoy's ext_authz checks; the host may be a name. */
  readonly authz: { readonly host: string; readonly port: number };
  /** The certificate (for `*.<baseDomain>`) and key of the edge listener itself; null serves plain HTTP. */
  readonly listenerTls: { readonly certFile: string; readonly keyFile: string } | null;
}

export interface EdgeOptions {
  /** `{id}-{port}.<baseDomain>` and `{port}-{id}.<baseDomain>`. Lowercase. */
  readonly baseDomain: string;
  /** Where Envoy's edge listener binds. */
  readonly listen: HostPort;
  /** Which address of a broker its relay cluster leads to: the HTTP relay (Envoy) or the Relay RPC (the gateway). */
  readonly relayOf: (broker: BrokerState) => HostPort | null;
  /**
   * For Envoy (the `paddock-edge` group): the listener asks the gateway who may reach each URL (ext_authz)
   * and relay clusters speak mutual TLS. The gateway's ingress (`paddock-ingress`) gets neither: it decides
   * itself and reaches brokers over their Relay RPC.
   */
  readonly proxy: EdgeProxyOptions | null;
}

/**
 * Envoy's circuit breakers default to 1024 connections and requests per cluster; one relay cluster carries
 * every port of every instance of its broker (WebSockets held open for hours included), so the limits are
 * set far above what one broker serves.
 */
const RELAY_LIMIT = 100_000;

/**
 * Envoy closes an idle connection to a broker's HTTP relay after this long, before the relay itself would
 * (60 s): otherwise a request could be sent on a connection the broker is closing at that very moment.
 */
const RELAY_IDLE_TIMEOUT = '50s';

/** How long Envoy waits for the gateway's answer: a check may look up a token and an owner in PostgreSQL. */
const AUTHZ_TIMEOUT = '5s';

function overwrite(key: string, value: string): JsonObject {
  return { header: { key, value }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' };
}

const exactly = (names: readonly string[]): JsonObject => ({ patterns: names.map((exact) => ({ exact })) });

/**
 * Envoy's ext_authz filter, asking the gateway's ingress over HTTP. The check is the request itself, as the
 * ingress would receive it (method, Host, path and query under EDGE_AUTHZ_PATH_PREFIX, credentials,
 * Accept), so the ingress decides with the code that decides its own requests. A 200 lets the request
 * through with the headers the ingress sets for the instance; any other answer (the login redirect, 404)
 * is what the caller gets. A 5xx from it, or no answer, is Envoy's 503.
 */
function authzFilter(proxy: EdgeProxyOptions): JsonObject {
  const host = proxy.authz.host.includes(':') ? `[${proxy.authz.host}]` : proxy.authz.host;
  return {
    name: 'envoy.filters.http.ext_authz',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz',
      http_service: {
        server_uri: { uri: `http://${host}:${proxy.authz.port}`, cluster: GATEWAY_CLUSTER, timeout: AUTHZ_TIMEOUT },
        path_prefix: EDGE_AUTHZ_PATH_PREFIX,
        authorization_request: {
          // Whether the request asks for an upgrade, under a name of its own: an `Upgrade` header on the
          // check (a plain request) would be taken for an upgrade by HTTP/1.1 servers.
          headers_to_add: [{ key: EDGE_AUTHZ_HEADERS.upgrade, value: '%REQ(upgrade)%' }],
        },
        authorization_response: {
          allowed_upstream_headers: exactly([RELAY_HEADERS.instanceId, RELAY_HEADERS.port, RELAY_HEADERS.path, 'cookie']),
          allowed_client_headers: exactly(['content-type', 'cache-control', 'content-security-policy', 'x-content-type-options', 'referrer-policy', 'set-cookie']),
        },
      },
      // Host, method, path and Authorization always go; these are what else the decision reads.
      allowed_headers: exactly(['cookie', 'accept']),
      status_on_error: { code: 'ServiceUnavailable' },
    },
  };
}

function listenerTransportSocket(tls: NonNullable<EdgeProxyOptions['listenerTls']>): JsonObject {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
      common_tls_context: {
        tls_certificates: [{ certificate_chain: { filename: tls.certFile }, private_key: { filename: tls.keyFile } }],
        alpn_protocols: ['h2', 'http/1.1'],
      },
    },
  };
}

function listener(options: EdgeOptions): ResourceJson {
  const { proxy } = options;
  const filterChain: JsonObject = {
    filters: [
      {
        name: 'envoy.filters.network.http_connection_manager',
        typed_config: {
          '@type': HTTP_CONNECTION_MANAGER_TYPE,
          stat_prefix: 'paddock_edge',
          codec_type: 'AUTO',
          rds: { route_config_name: EDGE_ROUTE_CONFIG, config_source: ADS_SOURCE },
          http_filters: proxy ? [authzFilter(proxy), ROUTER_FILTER] : [ROUTER_FILTER],
          // Every route may be upgraded to a WebSocket (dev servers' hot reload, terminals, notebooks).
          upgrade_configs: [{ upgrade_type: 'websocket' }],
          // WebSockets over HTTP/2 (extended CONNECT), which browsers use on an h2 connection.
          http2_protocol_options: { allow_connect: true },
          // `abc-3000.localhost:8080` is the virtual host `abc-3000.localhost`, whatever port Envoy listens on.
          strip_any_host_port: true,
          // Envoy is the edge: the caller's address is the peer's, not an X-Forwarded-For it sent.
          use_remote_address: true,
        },
      },
    ],
  };
  if (proxy?.listenerTls) filterChain['transport_socket'] = listenerTransportSocket(proxy.listenerTls);
  const references = new Map<TypeUrl, string[]>([[TYPE_URLS.routeConfiguration, [EDGE_ROUTE_CONFIG]]]);
  if (proxy) references.set(TYPE_URLS.cluster, [GATEWAY_CLUSTER]);
  return {
    name: EDGE_LISTENER,
    typeUrl: TYPE_URLS.listener,
    json: {
      name: EDGE_LISTENER,
      address: { socket_address: { address: options.listen.host, port_value: options.listen.port } },
      filter_chains: [filterChain],
    },
    references,
  };
}

/**
 * The virtual hosts of the route configuration, kept between snapshots by what each is made of: an
 * unchanged port gives the very object it gave before, whose encoding the ResourceEncoder keeps. Each is
 * frozen, as an older snapshot still holds it.
 */
export class VirtualHosts {
  readonly #hosts = new Generations<JsonObject>();

  /** Starts a new snapshot. */
  next(): void {
    this.#hosts.next();
  }

  /** The host made of what `key` says (every input of `make`), made by `make` the first time. */
  of(key: string, make: () => JsonObject): JsonObject {
    return this.#hosts.get(key, () => Object.freeze(make()));
  }
}

/** Domains are unique within a route configuration (Envoy refuses one that repeats a domain): first come wins. */
class Domains {
  readonly #taken = new Set<string>();

  claim(domains: readonly string[]): string[] {
    const free = domains.map((d) => d.toLowerCase()).filter((d) => !this.#taken.has(d));
    for (const d of free) this.#taken.add(d);
    return free;
  }
}

/** A route to the relay of the instance's broker, for as long as the connection lasts. */
function relayRoute(instance: InstanceState): JsonObject {
  return {
    cluster: relayCluster(instance.brokerId),
    // No request timeout: a WebSocket, a download or server-sent events last as long as they last.
    timeout: '0s',
    upgrade_configs: [{ upgrade_type: 'websocket' }],
  };
}

function portVirtualHost(instance: InstanceState, { port, visibility }: OpenPort, domains: string[]): JsonObject {
  return {
    name: `${instance.id}-${port}`,
    domains,
    routes: [
      {
        name: `${instance.id}-${port}`,
        match: { prefix: '/' },
        route: relayRoute(instance),
        request_headers_to_add: [
          overwrite(RELAY_HEADERS.instanceId, instance.id),
          overwrite(RELAY_HEADERS.port, String(port)),
          overwrite(RELAY_HEADERS.visibility, visibility),
        ],
        metadata: {
          filter_metadata: { [ROUTE_METADATA_KEY]: { instance_id: instance.id, port, broker_id: instance.brokerId, visibility } },
        },
      },
    ],
  };
}

/**
 * The other ports of a running instance (`<id>-*`, `*-<id>.<base>`): nothing listens there as far as the
 * control plane knows. The route still leads to the instance's broker, so that its relay answers (a 502
 * saying that nothing listens, or the server that has just started); the port is the one the gateway's
 * authorization read from the Host. Its metadata names the instance and no port: what the gateway's
 * ingress reads as "running, nothing listens".
 */
function closedVirtualHost(instance: InstanceState, domains: string[]): JsonObject {
  const name = `${instance.id}-closed`;
  return {
    name,
    domains,
    routes: [
      {
        name,
        match: { prefix: '/' },
        route: relayRoute(instance),
        request_headers_to_add: [overwrite(RELAY_HEADERS.instanceId, instance.id)],
        metadata: { filter_metadata: { [ROUTE_METADATA_KEY]: { instance_id: instance.id, broker_id: instance.brokerId } } },
      },
    ],
  };
}

function directVirtualHost(name: string, domains: string[], status: number, body: string): JsonObject {
  return {
    name,
    domains,
    routes: [{ name, match: { prefix: '/' }, direct_response: { status, body: { inline_string: body } } }],
  };
}

function routeConfiguration(options: EdgeOptions, instances: readonly InstanceState[], hosts: VirtualHosts): ResourceJson {
  const base = options.baseDomain;
  const domains = new Domains();
  const portHosts: JsonObject[] = [];
  // Paddock's own form first: on the (theoretical) clash with E2B's form of another instance, it wins.
  const ported = instances.flatMap((i) => [...i.ports.values()].sort((a, b) => a.port - b.port).map((open) => ({ instance: i, open })));
  const paddockForm = ported.map(({ instance, open }) => domains.claim([`${instance.id}-${open.port}.${base}`]));
  ported.forEach(({ instance, open }, n) => {
    const claimed = [...(paddockForm[n] ?? []), ...domains.claim([`${open.port}-${instance.id}.${base}`])];
    if (claimed.length === 0) return;
    const key = `port\0${instance.id}\0${instance.brokerId}\0${open.port}\0${open.visibility}\0${claimed.join(' ')}`;
    portHosts.push(hosts.of(key, () => portVirtualHost(instance, open, claimed)));
  });
  // A running instance's other ports: Envoy prefers exact domains, then suffix, then prefix wildcards.
  const closedHosts = instances.flatMap((i) => {
    const claimed = domains.claim([`*-${i.id}.${base}`, `${i.id}-*`]);
    return claimed.length === 0 ? [] : [hosts.of(`closed\0${i.id}\0${i.brokerId}\0${claimed.join(' ')}`, () => closedVirtualHost(i, claimed))];
  });
  const clusters = [...new Set(instances.map((i) => relayCluster(i.brokerId)))];
  return {
    name: EDGE_ROUTE_CONFIG,
    typeUrl: TYPE_URLS.routeConfiguration,
    json: {
      name: EDGE_ROUTE_CONFIG,
      virtual_hosts: [...portHosts, ...closedHosts, directVirtualHost('unknown', ['*'], 404, `no Paddock instance port at this host (expected {instance-id}-{port}.${base})\n`)],
    },
    references: new Map([[TYPE_URLS.cluster, clusters]]),
    // One entry per open port of every instance: encoded one by one, so that a change re-encodes only its own.
    itemized: 'virtual_hosts',
  };
}

/** Mutual TLS to a broker's HTTP relay: Envoy shows the edge's certificate, and accepts only a broker's. */
function relayTransportSocket(tls: EdgeRelayTls): JsonObject {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
      common_tls_context: {
        tls_certificates: [{ certificate_chain: { filename: tls.certFile }, private_key: { filename: tls.keyFile } }],
        validation_context: {
          trusted_ca: { filename: tls.caFile },
          // Brokers are dialled by the address they announce: which service answers is what is checked.
          match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: spiffeId('broker') } }],
        },
      },
      sni: 'broker',
    },
  };
}

function relayResources(broker: BrokerState, options: EdgeOptions): ResourceJson[] {
  const name = relayCluster(broker.id);
  const relay = options.relayOf(broker);
  const extra: JsonObject = {
    connect_timeout: '5s',
    circuit_breakers: {
      thresholds: [{ priority: 'DEFAULT', max_connections: RELAY_LIMIT, max_pending_requests: RELAY_LIMIT, max_requests: RELAY_LIMIT }],
    },
    metadata: { filter_metadata: { [ROUTE_METADATA_KEY]: { broker_id: broker.id } } },
  };
  if (options.proxy) {
    extra['transport_socket'] = relayTransportSocket(options.proxy.relayTls);
    extra['typed_extension_protocol_options'] = {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        common_http_protocol_options: { idle_timeout: RELAY_IDLE_TIMEOUT },
        explicit_http_config: { http_protocol_options: {} },
      },
    };
  }
  return [edsCluster(name, extra), loadAssignment(name, relay ? [lbEndpoint(relay.host, relay.port, { broker_id: broker.id })] : [])];
}

/** The gateway's ingress, for ext_authz: an address (STATIC) or a name Envoy resolves (STRICT_DNS). */
function gatewayCluster(proxy: EdgeProxyOptions): ResourceJson {
  return {
    name: GATEWAY_CLUSTER,
    typeUrl: TYPE_URLS.cluster,
    json: {
      name: GATEWAY_CLUSTER,
      type: isIP(proxy.authz.host) ? 'STATIC' : 'STRICT_DNS',
      connect_timeout: '2s',
      lb_policy: 'ROUND_ROBIN',
      load_assignment: {
        cluster_name: GATEWAY_CLUSTER,
        endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: proxy.authz.host, port_value: proxy.authz.port } } } }] }],
      },
    },
    references: new Map(),
  };
}

/**
 * The edge's configuration: one listener, one route configuration with a virtual host per open port (and
 * per running instance, for its other ports), one relay cluster with its endpoint per live broker, and for
 * Envoy the gateway's cluster. Instances whose broker is not alive get no route: nothing would reach them.
 * `hosts` keeps virtual hosts between snapshots (a SnapshotBuilder's); a fresh one makes every host anew.
 */
export function edgeResources(state: PaddockState, options: EdgeOptions, hosts = new VirtualHosts()): ResourceJson[] {
  const brokers = [...state.brokers.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
  const instances = [...state.instances.values()].filter((i) => state.brokers.has(i.brokerId)).sort((a, b) => (a.id < b.id ? -1 : 1));
  return [
    listener(options),
    routeConfiguration(options, instances, hosts),
    ...brokers.flatMap((b) => relayResources(b, options)),
    ...(options.proxy ? [gatewayCluster(options.proxy)] : []),
  ];
}
