import { busSettingsFromEnv, type BusSettings } from '@paddock/bus';
import { commonConfig, EnvReader, type CommonConfig, type Env } from '@paddock/config';
import { ConfigError } from '@paddock/errors';
import { tlsFilesFromEnv, type TlsFiles } from '@paddock/plane';
import type { ReconcilePolicy } from './reconciler.js';

export interface ReconcileConfig extends ReconcilePolicy {
  /** How often the scheduler's view is compared with the brokers' heartbeats. */
  readonly everyMs: number;
  /** The same repair of the same execution is not repeated sooner than this. */
  readonly repeatAfterMs: number;
}

export interface SchedulerConfig extends CommonConfig {
  /** Containers one owner may have provisioning or executing at once; the rest wait in the queue. */
  readonly maxRunningPerOwner: number;
  /** What happens to a request over the owner's limit: wait in the queue, or fail at once. */
  readonly overLimit: 'queue' | 'reject';
  /** A broker silent this long (while the scheduler itself is connected) is considered gone, and its executions failed. */
  readonly brokerLostAfterMs: number;
  /** How long a launch is retried against an unreachable or full broker, from its first attempt, before the execution fails. */
  readonly launchRetryForMs: number;
  readonly cancelGraceMs: number;
  /** Final executions older than this are deleted from scheduler_jobs. */
  readonly retentionDays: number;
  readonly reconcile: ReconcileConfig;
  /** Stream limits, retention and redelivery of the bus, as every service connects with them. */
  readonly bus: BusSettings;
  /** A loopback port serving `GET /metrics` for Prometheus; 0 serves none. */
  readonly metricsPort: number;
  /** The scheduler's certificate and key for calling brokers, and the plane's CA their certificates must come from. */
  readonly tls: TlsFiles;
  /**
   * The control plane (services/xds, `host:port`, plain text on loopback) through which brokers are dialled
   * as `xds:///paddock-broker.<broker-id>`: PADDOCK_XDS_URL, unless PADDOCK_BROKERS_VIA_XDS is false.
   * Undefined: each broker at the address its heartbeat announces.
   */
  readonly xdsAddress: string | undefined;
}

/** Through the control plane whenever one is named, unless turned off; asked for without one, a mistake. */
function brokerXdsAddress(read: EnvReader): string | undefined {
  if (!read.bool('PADDOCK_BROKERS_VIA_XDS', true)) return undefined;
  const address = xdsAddressOf(read);
  if (address === undefined && read.optional('PADDOCK_BROKERS_VIA_XDS') !== undefined) {
    throw new ConfigError('PADDOCK_BROKERS_VIA_XDS', 'needs PADDOCK_XDS_URL, the control plane to find brokers through');
  }
  return address;
}

/** `host:port` as grpc-js dials it; a grpc:// or http:// prefix (plain text either way) is taken too, as the gateway takes it. */
function xdsAddressOf(read: EnvReader): string | undefined {
  const url = read.optional('PADDOCK_XDS_URL');
  if (url === undefined) return undefined;
  const address = url.replace(/^(grpc|http):\/\//, '').replace(/\/$/, '');
  const port = Number(address.slice(address.lastIndexOf(':') + 1));
  if (!/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(address) || port < 1 || port > 65_535) {
    throw new ConfigError('PADDOCK_XDS_URL', `expected the control plane's host:port (such as 127.0.0.1:18000), got "${url}"`);
  }
  return address;
}

export function schedulerConfig(env: Env): SchedulerConfig {
  const read = new EnvReader(env);
  const overLimit = read.string('PADDOCK_OVER_LIMIT', 'queue');
  if (overLimit !== 'queue' && overLimit !== 'reject') throw new ConfigError('PADDOCK_OVER_LIMIT', 'expected "queue" or "reject"');
  const brokerLostAfterMs = read.int('PADDOCK_BROKER_LOST_AFTER_MS', 120_000, { min: 5_000 });
  return Object.freeze({
    ...commonConfig(env),
    maxRunningPerOwner: read.int('PADDOCK_MAX_RUNNING_PER_OWNER', 64, { min: 1 }),
    overLimit,
    brokerLostAfterMs,
    launchRetryForMs: read.int('PADDOCK_LAUNCH_RETRY_FOR_MS', 120_000, { min: 1_000 }),
    cancelGraceMs: read.int('PADDOCK_CANCEL_GRACE_MS', 5_000),
    retentionDays: read.int('PADDOCK_RETENTION_DAYS', 30, { min: 1, max: 36_500 }),
    // Brokers beat every second: a stray is stopped about 2 s after it is first seen, a missing launch is
    // sent again 3 heartbeats after it settled, a missing instance is failed after 10 s of absence.
    reconcile: Object.freeze({
      everyMs: 2_000,
      repeatAfterMs: 15_000,
      strayAfterSightings: 2,
      missingAfterSightings: 3,
      instanceLostAfterMs: 10_000,
      settleMs: 3_000,
      brokerLostAfterMs,
    }),
    bus: busSettingsFromEnv(env),
    metricsPort: read.int('PADDOCK_METRICS_PORT', 0, { min: 0, max: 65_535 }),
    tls: tlsFilesFromEnv(env, 'scheduler'),
    xdsAddress: brokerXdsAddress(read),
  });
}
