import type { JsonObject } from '../protos/protoJson.js';
import { ROUTE_METADATA_KEY } from './names.js';
import { TYPE_URLS, type TypeUrl } from './typeUrls.js';

/** A resource as the builders write it: proto3 JSON, not yet encoded. */
export interface ResourceJson {
  readonly name: string;
  readonly typeUrl: TypeUrl;
  readonly json: JsonObject;
  /** The resources it names, by type (checked by the cache before a snapshot is set). */
  readonly references: ReadonlyMap<TypeUrl, readonly string[]>;
  /**
   * A repeated message field at the top of `json` whose items are encoded one by one and kept between
   * snapshots (see ResourceEncoder): for a resource with many entries of which a change touches few.
   */
  readonly itemized?: string;
}

/** The typed_config of Envoy's router, the last HTTP filter of every connection manager. */
export const ROUTER_FILTER: JsonObject = {
  name: 'envoy.filters.http.router',
  typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' },
};

export const HTTP_CONNECTION_MANAGER_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

/** A ConfigSource that says "over the same ADS stream": how every RDS and EDS reference here is fetched. */
export const ADS_SOURCE: JsonObject = { ads: {}, resource_api_version: 'V3' };

/** An EDS cluster whose load assignment has the cluster's own name. */
export function edsCluster(name: string, extra: JsonObject = {}): ResourceJson {
  return {
    name,
    typeUrl: TYPE_URLS.cluster,
    json: {
      name,
      type: 'EDS',
      eds_cluster_config: { eds_config: ADS_SOURCE, service_name: name },
      lb_policy: 'ROUND_ROBIN',
      ...extra,
    },
    references: new Map([[TYPE_URLS.loadAssignment, [name]]]),
  };
}

/** One locality (gRPC ignores localities without a weight) holding `endpoints`, or none when empty. */
export function loadAssignment(clusterName: string, endpoints: readonly JsonObject[]): ResourceJson {
  return {
    name: clusterName,
    typeUrl: TYPE_URLS.loadAssignment,
    json: {
      cluster_name: clusterName,
      endpoints: endpoints.length === 0 ? [] : [{ locality: {}, lb_endpoints: [...endpoints], load_balancing_weight: 1 }],
    },
    references: new Map(),
  };
}

/** An lb_endpoint at `host:port` (an IP address), with Paddock's metadata. */
export function lbEndpoint(host: string, port: number, metadata: JsonObject): JsonObject {
  return {
    endpoint: { address: { socket_address: { address: host, port_value: port } } },
    metadata: { filter_metadata: { [ROUTE_METADATA_KEY]: metadata } },
  };
}
