import { join, resolve } from 'node:path';
import { adminTokenFile, commonConfig, databaseUrlFile, EnvReader, type Env } from '@paddock/config';
import { ConfigError } from '@paddock/errors';

export const SERVICES = ['scheduler', 'broker', 'portdetect', 'xds', 'billing', 'gateway'] as const;

/** What `paddock up` runs and where, compiled once from the environment. */
export interface UpConfig {
  readonly home: string;
  readonly logsDir: string;
  readonly repoRoot: string;
  readonly services: readonly string[];
  /** DATABASE_URL when set: then no embedded PostgreSQL is started. */
  readonly databaseUrl: string | undefined;
  readonly databaseUrlFile: string;
  readonly postgresDir: string;
  readonly postgresPort: number;
  /** NATS_URL when set: then it is used as it is. */
  readonly natsUrl: string | undefined;
  readonly natsDir: string;
  readonly natsPort: number;
  readonly httpHost: string;
  readonly httpPort: number;
  /** Where to reach the gateway from this machine (a wildcard listen address becomes 127.0.0.1). */
  readonly publicUrl: string;
  readonly adminTokenFile: string;
  /**
   * The loopback port each service serves `GET /metrics` on by itself (PADDOCK_METRICS_PORT of that
   * service), 0 for none. The gateway has none: it serves /metrics on the API port, to the admin.
   */
  readonly metricsPorts: Readonly<Record<string, number>>;
  /** services/xds's ADS port (loopback): the gateway's ingress follows it. */
  readonly xdsPort: number;
  /** The gateway's embedded ingress ({id}-{port}.{BASE_DOMAIN}) and its WS-TCP bridge; 0 for none. */
  readonly ingressPort: number;
  readonly bridgePort: number;
  /** billing's gRPC API (loopback): the gateway asks it for costs, prices, budgets and admission. */
  readonly billingPort: number;
  /** The broker's HTTP relay for an Envoy at the edge (mutual TLS, the plane's `edge` certificate); 0 for a free one. */
  readonly brokerRelayPort: number;
  /**
   * The unix socket of billing's LLM metering proxy; the broker offers it inside every instance at
   * 127.0.0.1:4000 (relay endpoint `llm`).
   */
  readonly llmProxySocket: string;
  readonly serviceStopGraceMs: number;
  readonly infraStopGraceMs: number;
}

export function upConfig(env: Env, repoRoot: string): UpConfig {
  const read = new EnvReader(env);
  const home = resolve(commonConfig(env).home);
  const httpHost = read.string('PADDOCK_HOST', '127.0.0.1');
  const httpPort = read.int('PADDOCK_PORT', 7070, { min: 1, max: 65535 });
  const reachable = httpHost === '0.0.0.0' || httpHost === '::' ? '127.0.0.1' : httpHost;
  const metricsPorts = {
    scheduler: read.int('PADDOCK_SCHEDULER_METRICS_PORT', 7072, { min: 0, max: 65535 }),
    broker: read.int('PADDOCK_BROKER_METRICS_PORT', 7073, { min: 0, max: 65535 }),
    portdetect: read.int('PADDOCK_PORTDETECT_METRICS_PORT', 0, { min: 0, max: 65535 }),
    xds: read.int('PADDOCK_XDS_METRICS_PORT', 0, { min: 0, max: 65535 }),
    billing: read.int('PADDOCK_BILLING_METRICS_PORT', 0, { min: 0, max: 65535 }),
    gateway: 0,
  };
  const xdsPort = read.int('PADDOCK_XDS_PORT', 18_000, { min: 1, max: 65535 });
  const ingressPort = read.int('PADDOCK_INGRESS_PORT', 8080, { min: 0, max: 65535 });
  const bridgePort = read.int('PADDOCK_BRIDGE_PORT', 8082, { min: 0, max: 65535 });
  const billingPort = read.int('PADDOCK_BILLING_PORT', 7074, { min: 1, max: 65535 });
  const brokerRelayPort = read.int('PADDOCK_BROKER_RELAY_PORT', 7075, { min: 0, max: 65535 });
  const taken = new Map<number, string>([[httpPort, 'PADDOCK_PORT']]);
  for (const [setting, port] of [
    ['PADDOCK_XDS_PORT', xdsPort],
    ['PADDOCK_INGRESS_PORT', ingressPort],
    ['PADDOCK_BRIDGE_PORT', bridgePort],
    ['PADDOCK_BILLING_PORT', billingPort],
    ['PADDOCK_BROKER_RELAY_PORT', brokerRelayPort],
    ['PADDOCK_SCHEDULER_METRICS_PORT', metricsPorts.scheduler],
    ['PADDOCK_BROKER_METRICS_PORT', metricsPorts.broker],
    ['PADDOCK_PORTDETECT_METRICS_PORT', metricsPorts.portdetect],
    ['PADDOCK_XDS_METRICS_PORT', metricsPorts.xds],
    ['PADDOCK_BILLING_METRICS_PORT', metricsPorts.billing],
  ] as const) {
    if (port === 0) continue;
    const other = taken.get(port);
    if (other !== undefined) throw new ConfigError(setting, `port ${port} is already ${other}'s; give each its own port${setting === 'PADDOCK_XDS_PORT' || setting === 'PADDOCK_BILLING_PORT' ? '' : ' (or 0 for none)'}`);
    taken.set(port, setting);
  }
  return Object.freeze({
    home,
    logsDir: join(home, 'logs'),
    repoRoot,
    services: SERVICES,
    databaseUrl: read.optional('DATABASE_URL'),
    databaseUrlFile: databaseUrlFile(home),
    postgresDir: join(home, 'postgres'),
    postgresPort: read.int('PADDOCK_DB_PORT', 7432, { min: 1, max: 65535 }),
    natsUrl: read.optional('NATS_URL'),
    natsDir: join(home, 'nats'),
    natsPort: read.int('PADDOCK_NATS_PORT', 4222, { min: 1, max: 65535 }),
    httpHost,
    httpPort,
    publicUrl: `http://${reachable.includes(':') ? `[${reachable}]` : reachable}:${httpPort}`,
    adminTokenFile: adminTokenFile(home),
    metricsPorts: Object.freeze(metricsPorts),
    xdsPort,
    ingressPort,
    bridgePort,
    billingPort,
    brokerRelayPort,
    llmProxySocket: join(home, 'run', 'llm-proxy.sock'),
    serviceStopGraceMs: 15_000,
    infraStopGraceMs: 10_000,
  });
}
