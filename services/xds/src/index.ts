export { startXds, type StartedXds, type XdsOptions } from './xds.js';
export { xdsConfig, edgeProxyConfig, type XdsConfig } from './config.js';
export { ControlPlane, type ControlPlaneOptions, type StateFeed } from './controlPlane.js';
export { StateSource, type Heartbeat, type PortEvent, type StateSourceOptions } from './state/stateSource.js';
export { SnapshotCache, sotwResponse, deltaResponse } from './cache/snapshotCache.js';
export { Snapshot, SnapshotInconsistentError, cachedResource, type CachedResource } from './cache/snapshot.js';
export { NodeRefusedError, ABSENT, type ConfigWatcher, type XdsNode } from './cache/watch.js';
export { startAdsServer, AdsListenError, type AdsServerOptions, type StartedAdsServer } from './server/adsServer.js';
export {
  AdsCodec,
  type DiscoveryRequest,
  type DiscoveryResponse,
  type DeltaDiscoveryRequest,
  type DeltaDiscoveryResponse,
} from './server/messages.js';
export type { AdsObserver, StreamStatus, TypeStatus, AckEvent, NackEvent, PushEvent } from './server/streamStatus.js';
export { loadEnvoyProtos, envoyProtoDirs, EnvoyProtos, ENVOY_PROTO_FILES } from './protos/envoyProtos.js';
export { ProtoJsonError, type JsonObject, type JsonValue } from './protos/protoJson.js';
export { TYPE_URLS, MESSAGE_TYPES, PUSH_ORDER, type TypeUrl } from './resource/typeUrls.js';
export {
  NODE_GROUPS,
  nodeGroupOf,
  EDGE_LISTENER,
  EDGE_ROUTE_CONFIG,
  RELAY_CLUSTER_PREFIX,
  relayCluster,
  BROKER_SERVICE,
  brokerService,
  ROUTE_METADATA_KEY,
  RELAY_HEADERS,
  GATEWAY_CLUSTER,
  EDGE_AUTHZ_PATH_PREFIX,
  EDGE_AUTHZ_HEADERS,
  type NodeGroup,
} from './resource/names.js';
export {
  EMPTY_STATE,
  PORT_VISIBILITIES,
  parseHostPort,
  type PaddockState,
  type BrokerState,
  type InstanceState,
  type OpenPort,
  type HostPort,
  type PortVisibility,
} from './resource/paddockState.js';
export { buildSnapshots, resourcesByGroup, SnapshotBuilder, type SnapshotOptions } from './resource/snapshots.js';
export { ResourceEncoder } from './resource/resourceEncoder.js';
export type { EdgeProxyOptions, EdgeRelayTls } from './resource/edge.js';
export { grpcClientBootstrap, type GrpcBootstrapOptions } from './resource/grpcBootstrap.js';
