const PREFIX = 'type.googleapis.com/';

/** The message types of the resources Paddock serves (xDS type URLs name them with PREFIX). */
export const MESSAGE_TYPES = {
  listener: 'envoy.config.listener.v3.Listener',
  routeConfiguration: 'envoy.config.route.v3.RouteConfiguration',
  cluster: 'envoy.config.cluster.v3.Cluster',
  loadAssignment: 'envoy.config.endpoint.v3.ClusterLoadAssignment',
} as const;

/** The type URL of each resource type, as requests and responses carry it. */
export const TYPE_URLS = {
  listener: `${PREFIX}${MESSAGE_TYPES.listener}`,
  routeConfiguration: `${PREFIX}${MESSAGE_TYPES.routeConfiguration}`,
  cluster: `${PREFIX}${MESSAGE_TYPES.cluster}`,
  loadAssignment: `${PREFIX}${MESSAGE_TYPES.loadAssignment}`,
} as const;

export type TypeUrl = (typeof TYPE_URLS)[keyof typeof TYPE_URLS];

/**
 * The order in which one change is pushed over ADS, as go-control-plane and Envoy's documentation have it:
 * clusters before the endpoints they use, both before the listeners and routes that send traffic to them,
 * so that no client is told of a reference before what it names.
 */
export const PUSH_ORDER: readonly TypeUrl[] = [TYPE_URLS.cluster, TYPE_URLS.loadAssignment, TYPE_URLS.listener, TYPE_URLS.routeConfiguration];

/**
 * Types whose state-of-the-world responses hold every subscribed resource: a name left out does not exist
 * (the client drops it, or fails what waits for it). For the others, leaving a name out says nothing.
 */
export const FULL_STATE_TYPES: ReadonlySet<TypeUrl> = new Set([TYPE_URLS.listener, TYPE_URLS.cluster]);

/** How each type is named in messages for people. */
export const TYPE_LABELS: Readonly<Record<TypeUrl, string>> = {
  [TYPE_URLS.listener]: 'listener',
  [TYPE_URLS.routeConfiguration]: 'route configuration',
  [TYPE_URLS.cluster]: 'cluster',
  [TYPE_URLS.loadAssignment]: 'load assignment',
};

export function isTypeUrl(value: string): value is TypeUrl {
  return (PUSH_ORDER as readonly string[]).includes(value);
}

/** The message type a type URL names: the part after its last '/'. */
export function messageTypeOf(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
}
