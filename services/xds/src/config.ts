import { isIP } from 'node:net';
import { join } from 'node:path';
import { busSettingsFromEnv, type BusSettings } from '@paddock/bus';
import { commonConfig, EnvReader, type CommonConfig, type Env } from '@paddock/config';
import { ConfigError } from '@paddock/errors';
import { planeDir } from '@paddock/plane';
import type { EdgeProxyOptions } from './resource/edge.js';
import { AddressError, parseHostPort } from './resource/paddockState.js';

export interface XdsConfig extends CommonConfig {
  /** Where ADS is served: loopback unless mTLS protects it (README, "Security"). */
  readonly host: string;
  readonly port: number;
  /** `{id}-{port}.<baseDomain>`: lowercase, no leading or trailing dot. */
  readonly baseDomain: string;
  /** Where Envoy's edge listener binds. */
  readonly edgeHost: string;
  readonly edgePort: number;
  /** What Envoy at the edge is told beyond the routes: its certificates and the gateway that authorizes. */
  readonly edgeProxy: EdgeProxyOptions;
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

/** `host:port` of a setting; the host may be a name (Envoy resolves it). */
function address(read: EnvReader, name: string, fallback: string): { host: string; port: number } {
  try {
    return parseHostPort(read.string(name, fallback));
  } catch (err) {
    if (err instanceof AddressError) throw new ConfigError(name, err.message);
    throw err;
  }
}

/**
 * Envoy's side of the edge. The files are paths on Envoy's host, which Envoy reads itself; by default the
 * plane's own (`paddock up` issues `edge.crt` and `edge.key` beside the CA), for an Envoy on this machine.
 */
export function edgeProxyConfig(env: Env): EdgeProxyOptions {
  const read = new EnvReader(env);
  const plane = planeDir(commonConfig(env).home);
  const listenerCert = read.optional('PADDOCK_XDS_EDGE_LISTENER_CERT');
  const listenerKey = read.optional('PADDOCK_XDS_EDGE_LISTENER_KEY');
  if ((listenerCert === undefined) !== (listenerKey === undefined)) {
    const missing = listenerCert === undefined ? 'PADDOCK_XDS_EDGE_LISTENER_CERT' : 'PADDOCK_XDS_EDGE_LISTENER_KEY';
    throw new ConfigError(missing, 'TLS at the edge listener takes both PADDOCK_XDS_EDGE_LISTENER_CERT and PADDOCK_XDS_EDGE_LISTENER_KEY (or neither, for plain HTTP)');
  }
  return Object.freeze({
    relayTls: Object.freeze({
      caFile: read.string('PADDOCK_XDS_EDGE_TLS_CA', join(plane, 'ca.crt')),
      certFile: read.string('PADDOCK_XDS_EDGE_TLS_CERT', join(plane, 'edge.crt')),
      keyFile: read.string('PADDOCK_XDS_EDGE_TLS_KEY', join(plane, 'edge.key')),
    }),
    authz: Object.freeze(address(read, 'PADDOCK_XDS_EDGE_AUTHZ', '127.0.0.1:8080')),
    listenerTls: listenerCert !== undefined && listenerKey !== undefined ? Object.freeze({ certFile: listenerCert, keyFile: listenerKey }) : null,
  });
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
    edgeProxy: edgeProxyConfig(env),
    debounceMs,
    debounceMaxMs,
    warmupMs: 1_500,
    brokerStaleMs,
    instanceSettleMs: 2_000,
    bus: busSettingsFromEnv(env),
    metricsPort: read.int('PADDOCK_METRICS_PORT', 0, { min: 0, max: 65_535 }),
  });
}
