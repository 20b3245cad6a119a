import { isIP } from 'node:net';
import { busSettingsFromEnv, type BusSettings } from '@paddock/bus';
import { commonConfig, EnvReader, type CommonConfig, type Env } from '@paddock/config';
import { ConfigError } from '@paddock/errors';

export interface XdsConfig extends CommonConfig {
  /** Where ADS is served: loopback unless mTLS protects it (README, "Security"). */
  readonly host: string;
  readonly port: number;
  /** `{id}-{port}.<baseDomain>`: lowercase, no leading or trailing dot. */
  readonly baseDomain: string;
  /** Where Envoy's edge listener binds. */
  readonly edgeHost: string;
  readonly edgePort: number;
  readonly debounceMs: number;
  readonly debounceMaxMs: number;
  /** The first configuration waits this long, for every broker's heartbeat. */
  readonly warmupMs: number;
  /** A broker silent this long is gone. */
  readonly brokerStaleMs: number;
  /** How long a port event keeps an instance its broker's heartbeat does not list yet. */
  readonly instanceSettleMs: number;
  readonly bus: BusSettings;
  /** A loopback port serving `GET /metrics`; 0 serves none. */
  readonly metricsPort: number;
}

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

function ip(read: EnvReader, name: string, fallback: string): string {
  const value = read.string(name, fallback);
  if (isIP(value) === 0) throw new ConfigError(name, `expected an IP address to bind (e.g. 127.0.0.1 or 0.0.0.0), got "${value}"`);
  return value;
}

export function xdsConfig(env: Env): XdsConfig {
  const read = new EnvReader(env);
  const baseDomain = read.string('PADDOCK_BASE_DOMAIN', 'localhost').toLowerCase();
  if (baseDomain.length > 200 || !baseDomain.split('.').every((label) => LABEL.test(label))) {
    throw new ConfigError('PADDOCK_BASE_DOMAIN', `expected a DNS name such as localhost or paddock.example.com, got "${baseDomain}"`);
  }
  const debounceMs = read.int('PADDOCK_XDS_DEBOUNCE_MS', 100, { min: 0, max: 60_000 });
  const debounceMaxMs = read.int('PADDOCK_XDS_DEBOUNCE_MAX_MS', 1_000, { min: 0, max: 600_000 });
  if (debounceMaxMs < debounceMs) {
    throw new ConfigError('PADDOCK_XDS_DEBOUNCE_MAX_MS', `${debounceMaxMs} ms is shorter than PADDOCK_XDS_DEBOUNCE_MS (${debounceMs} ms)`);
  }
  // Brokers beat every second: fewer than two missed beats would drop a broker on one late message.
  const brokerStaleMs = read.int('PADDOCK_XDS_BROKER_STALE_MS', 5_000, { min: 2_000 });
  return Object.freeze({
    ...commonConfig(env),
    host: ip(read, 'PADDOCK_XDS_HOST', '127.0.0.1'),
    port: read.int('PADDOCK_XDS_PORT', 18_000, { min: 1, max: 65_535 }),
    baseDomain,
    edgeHost: ip(read, 'PADDOCK_XDS_EDGE_HOST', '127.0.0.1'),
    edgePort: read.int('PADDOCK_XDS_EDGE_PORT', 8_080, { min: 1, max: 65_535 }),
    debounceMs,
    debounceMaxMs,
    warmupMs: 1_500,
    brokerStaleMs,
    instanceSettleMs: 2_000,
    bus: busSettingsFromEnv(env),
    metricsPort: read.int('PADDOCK_METRICS_PORT', 0, { min: 0, max: 65_535 }),
  });
}
