import { Snapshot } from '../cache/snapshot.js';
import { edgeProxyConfig } from '../config.js';
import type { EnvoyProtos } from '../protos/envoyProtos.js';
import { edgeResources, VirtualHosts, type EdgeProxyOptions } from './edge.js';
import { grpcClientResources } from './grpcClients.js';
import { NODE_GROUPS, type NodeGroup } from './names.js';
import type { HostPort, PaddockState } from './paddockState.js';
import { ResourceEncoder } from './resourceEncoder.js';
import type { ResourceJson } from './resourceJson.js';

export interface SnapshotOptions {
  /** `{id}-{port}.<baseDomain>`; lowercase. */
  readonly baseDomain: string;
  /** Where Envoy's edge listener binds. */
  readonly edgeListen: HostPort;
  /**
   * Envoy's certificates and the gateway that authorizes its requests (the service's config.edgeProxy);
   * left out, the defaults of the settings (edgeProxyConfig of an empty environment).
   */
  readonly edgeProxy?: EdgeProxyOptions;
}

/**
 * Each group's resources as JSON: what a SnapshotBuilder encodes. The edge and ingress groups share their
 * virtual hosts (the same objects, encoded once).
 */
export function resourcesByGroup(state: PaddockState, options: SnapshotOptions, hosts = new VirtualHosts()): Map<NodeGroup, ResourceJson[]> {
  const edge = { baseDomain: options.baseDomain, listen: options.edgeListen };
  return new Map<NodeGroup, ResourceJson[]>([
    [NODE_GROUPS.edge, edgeResources(state, { ...edge, relayOf: (b) => b.relay, proxy: options.edgeProxy ?? edgeProxyConfig({}) }, hosts)],
    [NODE_GROUPS.ingress, edgeResources(state, { ...edge, relayOf: (b) => b.grpc, proxy: null }, hosts)],
    [NODE_GROUPS.grpc, grpcClientResources(state)],
  ]);
}

/**
 * Builds one snapshot per node group from each state it is given. What it encoded for the last snapshot
 * is kept (ResourceEncoder), so a change costs about what it changed: the groups share most of their
 * resources, and one port that opens re-encodes one virtual host of the route configuration.
 */
export class SnapshotBuilder {
  readonly #options: SnapshotOptions;
  readonly #encoder: ResourceEncoder;
  readonly #hosts = new VirtualHosts();

  constructor(options: SnapshotOptions, protos: EnvoyProtos) {
    this.#options = { ...options, edgeProxy: options.edgeProxy ?? edgeProxyConfig({}) };
    this.#encoder = new ResourceEncoder(protos);
  }

  build(state: PaddockState): Map<NodeGroup, Snapshot> {
    this.#encoder.nextBuild();
    this.#hosts.next();
    const snapshots = new Map<NodeGroup, Snapshot>();
    for (const [group, resources] of resourcesByGroup(state, this.#options, this.#hosts)) snapshots.set(group, new Snapshot(resources.map((r) => this.#encoder.encode(r))));
    return snapshots;
  }
}

/** One snapshot per node group, built from `state` alone (every resource encoded, strictly). */
export function buildSnapshots(state: PaddockState, options: SnapshotOptions, protos: EnvoyProtos): Map<NodeGroup, Snapshot> {
  return new SnapshotBuilder(options, protos).build(state);
}
