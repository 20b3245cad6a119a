import { cachedResource, Snapshot, type CachedResource } from '../cache/snapshot.js';
import type { EnvoyProtos } from '../protos/envoyProtos.js';
import { edgeResources } from './edge.js';
import { grpcClientResources } from './grpcClients.js';
import { NODE_GROUPS, type NodeGroup } from './names.js';
import type { HostPort, PaddockState } from './paddockState.js';
import type { ResourceJson } from './resourceJson.js';
import { messageTypeOf } from './typeUrls.js';

export interface SnapshotOptions {
  /** `{id}-{port}.<baseDomain>`; lowercase. */
  readonly baseDomain: string;
  /** Where Envoy's edge listener binds. */
  readonly edgeListen: HostPort;
}

/** Each group's resources as JSON: what `buildSnapshots` encodes. */
export function resourcesByGroup(state: PaddockState, options: SnapshotOptions): Map<NodeGroup, ResourceJson[]> {
  const edge = { baseDomain: options.baseDomain, listen: options.edgeListen };
  return new Map<NodeGroup, ResourceJson[]>([
    [NODE_GROUPS.edge, edgeResources(state, { ...edge, relayOf: (b) => b.relay })],
    [NODE_GROUPS.ingress, edgeResources(state, { ...edge, relayOf: (b) => b.grpc })],
    [NODE_GROUPS.grpc, grpcClientResources(state)],
  ]);
}

/**
 * One snapshot per node group, built from `state`. Every resource is encoded here, strictly
 * (ProtoJsonError for anything its message does not have); the edge and ingress groups share most of their
 * resources, which are encoded once.
 */
export function buildSnapshots(state: PaddockState, options: SnapshotOptions, protos: EnvoyProtos): Map<NodeGroup, Snapshot> {
  const encoded = new Map<string, CachedResource>();
  const encode = (r: ResourceJson): CachedResource => {
    const key = `${r.typeUrl}\n${JSON.stringify(r.json)}`;
    let cached = encoded.get(key);
    if (!cached) {
      cached = cachedResource({ ...r, body: protos.encodeJson(messageTypeOf(r.typeUrl), r.json) });
      encoded.set(key, cached);
    }
    return cached;
  };
  const snapshots = new Map<NodeGroup, Snapshot>();
  for (const [group, resources] of resourcesByGroup(state, options)) snapshots.set(group, new Snapshot(resources.map(encode)));
  return snapshots;
}
