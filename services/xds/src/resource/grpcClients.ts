import type { JsonObject } from '../protos/protoJson.js';
import { BROKER_SERVICE, brokerService } from './names.js';
import type { BrokerState, PaddockState } from './paddockState.js';
import { ADS_SOURCE, edsCluster, HTTP_CONNECTION_MANAGER_TYPE, lbEndpoint, loadAssignment, ROUTER_FILTER, type ResourceJson } from './resourceJson.js';
import { TYPE_URLS } from './typeUrls.js';

/** A gRPC client's listener: an api_listener whose connection manager takes its routes over RDS. */
function apiListener(name: string): ResourceJson {
  return {
    name,
    typeUrl: TYPE_URLS.listener,
    json: {
      name,
      api_listener: {
        api_listener: {
          '@type': HTTP_CONNECTION_MANAGER_TYPE,
          stat_prefix: name.replace(/[^A-Za-z0-9_]/g, '_'),
          rds: { route_config_name: BROKER_SERVICE, config_source: ADS_SOURCE },
          http_filters: [ROUTER_FILTER],
        },
      },
    },
    references: new Map([[TYPE_URLS.routeConfiguration, [BROKER_SERVICE]]]),
  };
}

/** gRPC matches a virtual host's domains against the target's name (`paddock-broker`, `paddock-broker.<id>`). */
function virtualHost(name: string): JsonObject {
  return { name, domains: [name], routes: [{ name, match: { prefix: '' }, route: { cluster: name } }] };
}

function endpointOf(broker: BrokerState): JsonObject {
  return lbEndpoint(broker.grpc.host, broker.grpc.port, { broker_id: broker.id });
}

/**
 * What @grpc/grpc-js-xds needs for `xds:///paddock-broker` (round robin over every live broker) and
 * `xds:///paddock-broker.<broker-id>` (that broker): a listener per name, one route configuration, and an
 * EDS cluster per name. A broker that goes takes its listener with it, so a channel to it fails at once
 * (the resource no longer exists) instead of waiting on an address that does not answer.
 */
export function grpcClientResources(state: PaddockState): ResourceJson[] {
  const brokers = [...state.brokers.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
  const services = [BROKER_SERVICE, ...brokers.map((b) => brokerService(b.id))];
  return [
    ...services.map(apiListener),
    {
      name: BROKER_SERVICE,
      typeUrl: TYPE_URLS.routeConfiguration,
      json: { name: BROKER_SERVICE, virtual_hosts: services.map(virtualHost) },
      references: new Map([[TYPE_URLS.cluster, services]]),
    },
    edsCluster(BROKER_SERVICE),
    loadAssignment(BROKER_SERVICE, brokers.map(endpointOf)),
    ...brokers.flatMap((b) => [edsCluster(brokerService(b.id)), loadAssignment(brokerService(b.id), [endpointOf(b)])]),
  ];
}
