import { NODE_GROUPS } from './names.js';

export interface GrpcBootstrapOptions {
  /** The control plane, `host:port` (PADDOCK_XDS_HOST:PADDOCK_XDS_PORT). */
  readonly serverUri: string;
  /** Who the client is, in the control plane's logs and status: e.g. `gateway-<pid>`. */
  readonly nodeId: string;
}

/**
 * The bootstrap a @grpc/grpc-js-xds client needs to find brokers as `xds:///paddock-broker`: as JSON, for
 * GRPC_XDS_BOOTSTRAP_CONFIG (or a file named by GRPC_XDS_BOOTSTRAP). Plaintext to a loopback control plane
 * (README, "Security"). grpc-js-xds reads it once per process, when the first xds: channel resolves, so a
 * service's main.ts sets it before registering the resolver (README, "How the scheduler and the gateway
 * consume it").
 */
export function grpcClientBootstrap(options: GrpcBootstrapOptions): string {
  return JSON.stringify({
    xds_servers: [{ server_uri: options.serverUri, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: { id: options.nodeId, cluster: NODE_GROUPS.grpc, locality: {} },
  });
}
