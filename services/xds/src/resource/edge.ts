import type { JsonObject } from '../protos/protoJson.js';
import { EDGE_LISTENER, EDGE_ROUTE_CONFIG, RELAY_HEADERS, relayCluster, ROUTE_METADATA_KEY } from './names.js';
import type { BrokerState, HostPort, InstanceState, OpenPort, PaddockState } from './paddockState.js';
import { ADS_SOURCE, edsCluster, HTTP_CONNECTION_MANAGER_TYPE, lbEndpoint, loadAssignment, ROUTER_FILTER, type ResourceJson } from './resourceJson.js';
import { TYPE_URLS } from './typeUrls.js';

export interface EdgeOptions {
  /** `{id}-{port}.<baseDomain>` and `{port}-{id}.<baseDomain>`. Lowercase. */
  readonly baseDomain: string;
  /** Where Envoy's edge listener binds. */
  readonly listen: HostPort;
  /** Which address of a broker its relay cluster leads to: the HTTP relay (Envoy) or the Relay RPC (the gateway). */
  readonly relayOf: (broker: BrokerState) => HostPort | null;
}

/**
 * Envoy's circuit breakers default to 1024 connections and requests per cluster; one relay cluster carries
 * every port of every instance of its broker (WebSockets held open for hours included), so the limits are
 * set far above what one broker serves.
 */
const RELAY_LIMIT = 100_000;

function overwrite(key: string, value: string): JsonObject {
  return { header: { key, value }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' };
}

function listener(options: EdgeOptions): ResourceJson {
  return {
    name: EDGE_LISTENER,
    typeUrl: TYPE_URLS.listener,
    json: {
      name: EDGE_LISTENER,
      address: { socket_address: { address: options.listen.host, port_value: options.listen.port } },
      filter_chains: [
        {
          filters: [
            {
              name: 'envoy.filters.network.http_connection_manager',
              typed_config: {
                '@type': HTTP_CONNECTION_MANAGER_TYPE,
                stat_prefix: 'paddock_edge',
                codec_type: 'AUTO',
                rds: { route_config_name: EDGE_ROUTE_CONFIG, config_source: ADS_SOURCE },
                http_filters: [ROUTER_FILTER],
                // Every route may be upgraded to a WebSocket (dev servers' hot reload, terminals, notebooks).
                upgrade_configs: [{ upgrade_type: 'websocket' }],
                // `abc-3000.localhost:8080` is the virtual host `abc-3000.localhost`, whatever port Envoy listens on.
                strip_any_host_port: true,
                // Envoy is the edge: the caller's address is the peer's, not an X-Forwarded-For it sent.
                use_remote_address: true,
              },
            },
          ],
        },
      ],
    },
    references: new Map([[TYPE_URLS.routeConfiguration, [EDGE_ROUTE_CONFIG]]]),
  };
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

function portVirtualHost(instance: InstanceState, { port, visibility }: OpenPort, domains: string[]): JsonObject {
  return {
    name: `${instance.id}-${port}`,
    domains,
    routes: [
      {
        name: `${instance.id}-${port}`,
        match: { prefix: '/' },
        route: {
          cluster: relayCluster(instance.brokerId),
          // No request timeout: a WebSocket, a download or server-sent events last as long as they last.
          timeout: '0s',
          upgrade_configs: [{ upgrade_type: 'websocket' }],
        },
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

function directVirtualHost(name: string, domains: string[], status: number, body: string): JsonObject {
  return {
    name,
    domains,
    routes: [{ name, match: { prefix: '/' }, direct_response: { status, body: { inline_string: body } } }],
  };
}

function routeConfiguration(options: EdgeOptions, instances: readonly InstanceState[]): ResourceJson {
  const base = options.baseDomain;
  const domains = new Domains();
  const portHosts: JsonObject[] = [];
  // Paddock's own form first: on the (theoretical) clash with E2B's form of another instance, it wins.
  const ported = instances.flatMap((i) => [...i.ports.values()].sort((a, b) => a.port - b.port).map((open) => ({ instance: i, open })));
  const paddockForm = ported.map(({ instance, open }) => domains.claim([`${instance.id}-${open.port}.${base}`]));
  ported.forEach(({ instance, open }, n) => {
    const claimed = [...(paddockForm[n] ?? []), ...domains.claim([`${open.port}-${instance.id}.${base}`])];
    if (claimed.length > 0) portHosts.push(portVirtualHost(instance, open, claimed));
  });
  // A running instance's other ports: Envoy prefers exact domains, then suffix, then prefix wildcards.
  const closedHosts = instances.flatMap((i) => {
    const claimed = domains.claim([`*-${i.id}.${base}`, `${i.id}-*`]);
    return claimed.length === 0 ? [] : [directVirtualHost(`${i.id}-closed`, claimed, 502, `instance ${i.id} is running but nothing listens on this port\n`)];
  });
  const clusters = [...new Set(instances.filter((i) => i.ports.size > 0).map((i) => relayCluster(i.brokerId)))];
  return {
    name: EDGE_ROUTE_CONFIG,
    typeUrl: TYPE_URLS.routeConfiguration,
    json: {
      name: EDGE_ROUTE_CONFIG,
      virtual_hosts: [...portHosts, ...closedHosts, directVirtualHost('unknown', ['*'], 404, `no Paddock instance port at this host (expected {instance-id}-{port}.${base})\n`)],
    },
    references: new Map([[TYPE_URLS.cluster, clusters]]),
  };
}

function relayResources(broker: BrokerState, options: EdgeOptions): ResourceJson[] {
  const name = relayCluster(broker.id);
  const relay = options.relayOf(broker);
  return [
    edsCluster(name, {
      connect_timeout: '5s',
      circuit_breakers: {
        thresholds: [{ priority: 'DEFAULT', max_connections: RELAY_LIMIT, max_pending_requests: RELAY_LIMIT, max_requests: RELAY_LIMIT }],
      },
      metadata: { filter_metadata: { [ROUTE_METADATA_KEY]: { broker_id: broker.id } } },
    }),
    loadAssignment(name, relay ? [lbEndpoint(relay.host, relay.port, { broker_id: broker.id })] : []),
  ];
}

/**
 * The edge's configuration: one listener, one route configuration with a virtual host per open port (and
 * per running instance, for its closed ports), and one relay cluster with its endpoint per live broker.
 * Instances whose broker is not alive get no route: nothing would reach them.
 */
export function edgeResources(state: PaddockState, options: EdgeOptions): ResourceJson[] {
  const brokers = [...state.brokers.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
  const instances = [...state.instances.values()].filter((i) => state.brokers.has(i.brokerId)).sort((a, b) => (a.id < b.id ? -1 : 1));
  return [listener(options), routeConfiguration(options, instances), ...brokers.flatMap((b) => relayResources(b, options))];
}
