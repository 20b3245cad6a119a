import { setTimeout as sleep } from 'node:timers/promises';
import { UnavailableError } from '@paddock/errors';
import type { ServiceTls } from '@paddock/plane';
import type { Logger } from '@paddock/telemetry';
import type { HostPort } from '@paddock/xds';
import type { IngressConfig } from '../config.js';
import { addressOf, BrokerRelays } from './brokerRelays.js';
import { IngressServer } from './ingressServer.js';
import type { IngressTokens } from './ingressTokens.js';
import type { PortRoute } from './routeTable.js';
import { UpstreamPool } from './upstreamPool.js';
import { XdsRouteClient } from './xdsRouteClient.js';

/**
 * How long a request waits for the load assignment of a cluster the routes just named: the control plane
 * sends it right after the clusters, but a route may be applied a moment before it.
 */
const ENDPOINT_WAIT_MS = 2_000;

export interface IngressOptions {
  readonly config: IngressConfig;
  readonly tokens: IngressTokens;
  /** The gateway's certificate, for the brokers' Relay RPC. */
  readonly tls: ServiceTls;
  /** The id of the user a Paddock user token belongs to, or null. */
  readonly userOfToken: (token: string) => Promise<string | null>;
  /** The owner of an instance (its execution's), or null. */
  readonly ownerOf: (instanceId: string) => Promise<string | null>;
  /** Whether the user is a member of the instance's project (for its `project` ports). */
  readonly inProjectOf: (instanceId: string, userId: string) => Promise<boolean>;
  /** The login page, as browsers reach the gateway. */
  readonly loginUrl: string;
  readonly log: Logger;
  /** Told of each configuration the ingress refused (for the gateway's error metrics). */
  readonly onNack?: (typeUrl: string, message: string) => void;
}

export interface StartedIngress {
  /** `http://host:port` it listens on. */
  readonly url: string;
  readonly port: number;
  readonly routes: XdsRouteClient;
  /** Stops listening, ends every connection and the control plane's stream; idempotent. */
  stop(): Promise<void>;
}

/**
 * The embedded ingress, whole: the routes from services/xds, the HTTP listener on PADDOCK_INGRESS_PORT,
 * and the relays to the brokers at the addresses the control plane gives. Pools of ports that close and
 * clients of brokers that go are dropped as the routes change.
 */
export async function startIngress(opts: IngressOptions): Promise<StartedIngress> {
  const { config, log } = opts;
  const routes = new XdsRouteClient({
    address: config.xdsAddress,
    log,
    ...(opts.onNack ? { onNack: opts.onNack } : {}),
  });
  const relays = new BrokerRelays(opts.tls);
  const endpointOf = async (route: PortRoute): Promise<HostPort> => {
    for (let waitedMs = 0; ; waitedMs += 50) {
      const endpoint = routes.endpointOf(route.cluster);
      if (endpoint) return endpoint;
      if (endpoint === null || waitedMs >= ENDPOINT_WAIT_MS) throw new UnavailableError(`broker ${route.brokerId} announces no relay address`);
      await sleep(50);
    }
  };
  const upstreams = new UpstreamPool(async (route) => relays.open(await endpointOf(route), route.instanceId, route.port));
  routes.onTable((table) => {
    upstreams.retain(table.ports);
    const live = new Set<string>();
    for (const cluster of table.clusters()) {
      const endpoint = routes.endpointOf(cluster);
      if (endpoint) live.add(addressOf(endpoint));
    }
    relays.retain(live);
  });
  let server: IngressServer;
  try {
    server = await IngressServer.start({
      host: config.host,
      port: config.port,
      baseDomain: config.baseDomain,
      routes,
      upstreams,
      tokens: opts.tokens,
      userOfToken: opts.userOfToken,
      ownerOf: opts.ownerOf,
      inProjectOf: opts.inProjectOf,
      loginUrl: opts.loginUrl,
      log,
    });
  } catch (err) {
    relays.close();
    throw new IngressListenError(config.host, config.port, { cause: err });
  }
  routes.start();
  log.info({ url: server.url, baseDomain: config.baseDomain, xds: config.xdsAddress }, `ingress listening: http://{id}-{port}.${config.baseDomain}:${server.port}/`);

  let stopped: Promise<void> | undefined;
  return {
    url: server.url,
    port: server.port,
    routes,
    stop: () =>
      (stopped ??= (async () => {
        await routes.stop();
        await server.stop();
        upstreams.destroy();
        relays.close();
      })()),
  };
}

/** The ingress cannot listen where it is told to. */
export class IngressListenError extends Error {
  constructor(host: string, port: number, options: { cause: unknown }) {
    super(`the ingress cannot listen on ${host}:${port} (PADDOCK_INGRESS_HOST, PADDOCK_INGRESS_PORT; 0 turns it off): ${(options.cause as Error).message}`, options);
    this.name = 'IngressListenError';
  }
}
