import { NodeRefusedError, type XdsNode } from '../cache/watch.js';

/**
 * The node groups: a client says which configuration it wants with its node's `cluster`. Each group has a
 * snapshot of its own, since Envoy (which takes every listener it is given as one to bind) and gRPC (which
 * takes api_listeners only) cannot share one.
 */
export const NODE_GROUPS = {
  /** Envoy at the edge: relay clusters lead to the brokers' HTTP relay. */
  edge: 'paddock-edge',
  /** The gateway's embedded ingress: the same routes, relay clusters lead to the brokers' Relay RPC. */
  ingress: 'paddock-ingress',
  /** @grpc/grpc-js-xds clients of the brokers' gRPC API. */
  grpc: 'paddock-grpc',
} as const;

export type NodeGroup = (typeof NODE_GROUPS)[keyof typeof NODE_GROUPS];
const GROUPS: readonly string[] = Object.values(NODE_GROUPS);

/** The group that serves `node`, from its `cluster`; NodeRefusedError names the choices for any other. */
export function nodeGroupOf(node: XdsNode): NodeGroup {
  if (GROUPS.includes(node.cluster)) return node.cluster as NodeGroup;
  const who = `node "${node.id}"${node.userAgentName ? ` (${node.userAgentName})` : ''}`;
  throw new NodeRefusedError(
    `${who} has cluster "${node.cluster}": set node.cluster in its bootstrap to ${NODE_GROUPS.edge} (Envoy), ${NODE_GROUPS.ingress} (the gateway's ingress) or ${NODE_GROUPS.grpc} (gRPC clients)`,
  );
}

/** The edge listener and the route configuration it takes over RDS. */
export const EDGE_LISTENER = 'paddock-edge';
export const EDGE_ROUTE_CONFIG = 'paddock-edge';
/** `paddock-relay.<broker-id>`: the cluster (and load assignment) of one broker's relay. */
export const RELAY_CLUSTER_PREFIX = 'paddock-relay.';

export function relayCluster(brokerId: string): string {
  return `${RELAY_CLUSTER_PREFIX}${brokerId}`;
}

/** `xds:///paddock-broker`: any live broker. Also its route configuration, cluster and load assignment. */
export const BROKER_SERVICE = 'paddock-broker';

/** `xds:///paddock-broker.<broker-id>`: that broker. Its listener, virtual host, cluster and load assignment. */
export function brokerService(brokerId: string): string {
  return `${BROKER_SERVICE}.${brokerId}`;
}

/** The filter_metadata key under which edge routes and relay endpoints say what they lead to. */
export const ROUTE_METADATA_KEY = 'io.paddock';

/**
 * Request headers that tell a broker's HTTP relay where a request goes, set over anything the caller sent:
 * the instance and port by each edge route (and by the gateway's authorization, which reads the port from
 * the Host for the other ports of a running instance), the target by the authorization alone.
 */
export const RELAY_HEADERS = {
  instanceId: 'x-paddock-instance-id',
  port: 'x-paddock-port',
  visibility: 'x-paddock-visibility',
  /** The path and query the instance gets: the caller's, with Paddock's share parameter taken out. */
  path: 'x-paddock-path',
} as const;

/** The cluster of the gateway's ingress, which Envoy asks who may reach each URL (ext_authz). */
export const GATEWAY_CLUSTER = 'paddock-gateway';

/**
 * Where the gateway's ingress answers Envoy's checks: Envoy puts the request's own path and query after it,
 * and sends the check to the request's Host.
 */
export const EDGE_AUTHZ_PATH_PREFIX = '/__paddock/edge-authz';

/** Headers Envoy adds to each check (the caller cannot set them: Envoy overwrites them). */
export const EDGE_AUTHZ_HEADERS = {
  /** The request's Upgrade header (a WebSocket), or empty. */
  upgrade: 'x-paddock-upgrade',
} as const;
