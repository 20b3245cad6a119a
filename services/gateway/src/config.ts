import { join } from 'node:path';
import { busSettingsFromEnv, type BusSettings } from '@paddock/bus';
import { ConfigError } from '@paddock/errors';
import { llmKeyFile, planeDir, specKeyFile, tlsFilesFromEnv, type TlsFiles } from '@paddock/plane';
import { findRuntime, RUNTIME_NAMES } from '@paddock/runtimes';
import { adminTokenFile, artifactsDir, commonConfig, EnvReader, type CommonConfig, type Env } from '@paddock/config';

const DAY_MS = 24 * 60 * 60 * 1000;

export interface GatewayConfig extends CommonConfig {
  readonly host: string;
  readonly port: number;
  readonly adminTokenFile: string;
  readonly artifactsDir: string;
  /** Where a request's large inputs are stored once, by content (shared with the broker, which reads them). */
  readonly blobsDir: string;
  readonly bodyLimitBytes: number;
  /** Final executions (their rows and terminal tickets) and unused blobs older than this are removed. */
  readonly retentionMs: number;
  /** The key that seals users' stored secrets (base64, 32 bytes); created at the first start. The gateway's alone. */
  readonly secretKeyFile: string;
  /**
   * The key that seals what an execution's spec carries to the broker (its env values, its repository
   * token), shared with the broker through PADDOCK_HOME/plane; made by `paddock up`, or at the first start.
   */
  readonly specKeyFile: string;
  /**
   * The key that seals an execution's LLM provider keys for billing's metering proxy (ExecutionAccount),
   * shared with billing through PADDOCK_HOME/plane; made by `paddock up`, or at the first start.
   */
  readonly llmKeyFile: string;
  /**
   * Billing's metering proxy as an instance reaches it (the relay's loopback address inside it), without a
   * trailing slash: every execution's provider base URLs point under it.
   */
  readonly llmProxyUrl: string;
  /** billing's gRPC API (host:port, mutual TLS): costs, prices, budgets, and admission under hard budgets. */
  readonly billingAddress: string;
  /** How long a terminal ticket can be used (once). */
  readonly terminalTicketTtlMs: number;
  /** Applied to a request that names none. */
  readonly defaults: {
    readonly image: string;
    /** The agent runtime of an agent execution (and of POST /schedule {prompt}) that names none. */
    readonly runtime: string;
    readonly cpus: number;
    readonly memoryMb: number;
    /** The workspace's disk limit of a request that names none; 0 for none. */
    readonly diskMb: number;
    /** The container runtime of a request that names none. */
    readonly containerRuntime: 'runc' | 'gvisor';
    readonly timeoutS: number;
  };
  readonly limits: {
    readonly maxCpus: number;
    readonly maxMemoryMb: number;
    readonly maxDiskMb: number;
    readonly maxTimeoutS: number;
  };
  /** Stream limits, retention and redelivery of the bus, as every service connects with them. */
  readonly bus: BusSettings;
  /** The gateway's certificate and key for calling brokers, and the plane's CA their certificates must come from. */
  readonly tls: TlsFiles;
  /** The embedded ingress: `{id}-{port}.{baseDomain}` reaches port `port` of instance `id` (src/ingress/). */
  readonly ingress: IngressConfig;
  /**
   * Set when PADDOCK_XDS_URL names the control plane (the ingress's) and PADDOCK_BROKERS_VIA_XDS is not
   * `false`: brokers are dialled through it as `xds:///paddock-broker.<broker-id>`. Unset, at the address
   * each broker's heartbeat announces.
   */
  readonly brokerXdsAddress: string | undefined;
  /** The WS-TCP bridge (src/ports/bridge.ts): the tunnel route on a listener of its own; port 0: none. */
  readonly bridge: { readonly host: string; readonly port: number };
}

export interface IngressConfig {
  /** Where the ingress listens; port 0: no ingress. */
  readonly host: string;
  readonly port: number;
  /** Lowercase, no leading or trailing dot: the same PADDOCK_BASE_DOMAIN services/xds builds its routes with. */
  readonly baseDomain: string;
  /** The control plane's ADS, `host:port` (plain text, as services/xds serves it on loopback): where the routes come from. */
  readonly xdsAddress: string;
  /**
   * 32 random bytes (base64) that sign the ingress's login tickets and session cookies and the share links
   * (src/ports/shareLinks.ts); made at the first start, mode 0600. Replacing it ends every session and link.
   */
  readonly keyFile: string;
  /** How long a browser's login to one host lasts. */
  readonly sessionTtlMs: number;
  /**
   * The gateway's own URL as browsers reach it, for the login page the ingress sends them to; undefined:
   * the URL the gateway listens on.
   */
  readonly publicUrl: string | undefined;
  /**
   * Where browsers reach the ingress when that is not the ingress itself (a TLS proxy in front of it), as
   * `http(s)://{baseDomain}[:port]`: its scheme and port are those of every port's URL; undefined: plain
   * HTTP on `port`.
   */
  readonly publicIngressUrl: string | undefined;
}

export function gatewayConfig(env: Env): GatewayConfig {
  const read = new EnvReader(env);
  const common = commonConfig(env);
  const defaultRuntime = read.string('PADDOCK_DEFAULT_RUNTIME', 'task');
  if (!findRuntime(defaultRuntime)) throw new ConfigError('PADDOCK_DEFAULT_RUNTIME', `must be one of ${RUNTIME_NAMES.join(', ')}, got "${defaultRuntime}"`);
  const ingress = ingressConfig(read, common.home);
  const config: GatewayConfig = {
    ...common,
    host: read.string('PADDOCK_HOST', '127.0.0.1'),
    port: read.int('PADDOCK_PORT', 7070, { max: 65535 }),
    adminTokenFile: read.string('PADDOCK_ADMIN_TOKEN_FILE', adminTokenFile(common.home)),
    artifactsDir: read.string('PADDOCK_ARTIFACTS_DIR', artifactsDir(common.home)),
    blobsDir: read.string('PADDOCK_BLOBS_DIR', join(common.home, 'blobs')),
    bodyLimitBytes: read.int('PADDOCK_BODY_LIMIT_BYTES', 10 * 1024 * 1024, { min: 1024 }),
    retentionMs: read.int('PADDOCK_RETENTION_DAYS', 30, { min: 1, max: 36_500 }) * DAY_MS,
    secretKeyFile: read.string('PADDOCK_SECRET_KEY_FILE', join(common.home, 'secret-key')),
    specKeyFile: read.string('PADDOCK_SPEC_KEY_FILE', specKeyFile(common.home)),
    llmKeyFile: read.string('PADDOCK_LLM_KEY_FILE', llmKeyFile(common.home)),
    llmProxyUrl: llmProxyUrl(read.string('PADDOCK_LLM_PROXY_URL', 'http://127.0.0.1:4000')),
    billingAddress: read.string('PADDOCK_BILLING_URL', '127.0.0.1:7074'),
    terminalTicketTtlMs: read.int('PADDOCK_TERMINAL_TICKET_TTL_MS', 60_000, { min: 1000, max: 3_600_000 }),
    defaults: Object.freeze({
      image: read.string('PADDOCK_DEFAULT_IMAGE', 'paddock/base:latest'),
      runtime: defaultRuntime,
      cpus: read.int('PADDOCK_DEFAULT_CPUS', 1, { min: 1 }),
      memoryMb: read.int('PADDOCK_DEFAULT_MEMORY_MB', 1024, { min: 16 }),
      diskMb: read.int('PADDOCK_DEFAULT_DISK_MB', 0, { min: 0 }),
      containerRuntime: containerRuntimeOf(read.string('PADDOCK_CONTAINER_RUNTIME', 'runc')),
      timeoutS: read.int('PADDOCK_DEFAULT_TIMEOUT_S', 3600, { min: 1 }),
    }),
    limits: Object.freeze({
      maxCpus: read.int('PADDOCK_MAX_CPUS', 16, { min: 1 }),
      maxMemoryMb: read.int('PADDOCK_MAX_MEMORY_MB', 65536, { min: 16 }),
      maxDiskMb: read.int('PADDOCK_MAX_DISK_MB', 1024 * 1024, { min: 16 }),
      maxTimeoutS: read.int('PADDOCK_MAX_TIMEOUT_S', 7 * 24 * 3600, { min: 1 }),
    }),
    bus: busSettingsFromEnv(env),
    tls: tlsFilesFromEnv(env, 'gateway'),
    ingress,
    brokerXdsAddress: read.bool('PADDOCK_BROKERS_VIA_XDS', true) && read.optional('PADDOCK_XDS_URL') !== undefined ? ingress.xdsAddress : undefined,
    bridge: Object.freeze({ host: read.string('PADDOCK_BRIDGE_HOST', '127.0.0.1'), port: read.int('PADDOCK_BRIDGE_PORT', 8082, { max: 65_535 }) }),
  };
  const ports: [string, number][] = [
    ['PADDOCK_PORT', config.port],
    ['PADDOCK_INGRESS_PORT', config.ingress.port],
    ['PADDOCK_BRIDGE_PORT', config.bridge.port],
  ];
  for (const [i, [setting, port]] of ports.entries()) {
    const other = ports.slice(0, i).find(([, p]) => p === port);
    if (port !== 0 && other) throw new ConfigError(setting, `${port} is ${other[0]} too: each listener needs a port of its own (0 turns the ingress or the bridge off)`);
  }
  const { defaults, limits } = config;
  for (const [setting, value, max, maxSetting] of [
    ['PADDOCK_DEFAULT_CPUS', defaults.cpus, limits.maxCpus, 'PADDOCK_MAX_CPUS'],
    ['PADDOCK_DEFAULT_MEMORY_MB', defaults.memoryMb, limits.maxMemoryMb, 'PADDOCK_MAX_MEMORY_MB'],
    ['PADDOCK_DEFAULT_DISK_MB', defaults.diskMb, limits.maxDiskMb, 'PADDOCK_MAX_DISK_MB'],
    ['PADDOCK_DEFAULT_TIMEOUT_S', defaults.timeoutS, limits.maxTimeoutS, 'PADDOCK_MAX_TIMEOUT_S'],
  ] as const) {
    if (value > max) throw new ConfigError(setting, `${value} is above ${maxSetting} (${max}): every request without its own value would be refused`);
  }
  return Object.freeze(config);
}

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

function ingressConfig(read: EnvReader, home: string): IngressConfig {
  // As services/xds reads it: both must agree, or the ingress would look for hosts xds never routes.
  const baseDomain = read.string('PADDOCK_BASE_DOMAIN', 'localhost').toLowerCase();
  if (baseDomain.length > 200 || !baseDomain.split('.').every((label) => DNS_LABEL.test(label))) {
    throw new ConfigError('PADDOCK_BASE_DOMAIN', `expected a DNS name such as localhost or paddock.example.com, got "${baseDomain}"`);
  }
  // host:port as grpc-js dials it; a grpc:// or http:// prefix (plain text either way) is taken too.
  const xdsUrl = read.string('PADDOCK_XDS_URL', '127.0.0.1:18000');
  const xdsAddress = xdsUrl.replace(/^(grpc|http):\/\//, '').replace(/\/$/, '');
  if (!/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(xdsAddress) || Number(xdsAddress.slice(xdsAddress.lastIndexOf(':') + 1)) > 65_535) {
    throw new ConfigError('PADDOCK_XDS_URL', `expected the control plane's host:port (such as 127.0.0.1:18000), got "${xdsUrl}"`);
  }
  const publicUrl = read.optional('PADDOCK_PUBLIC_URL');
  if (publicUrl !== undefined && !/^https?:\/\/[^/?#]+$/.test(publicUrl.replace(/\/$/, ''))) {
    throw new ConfigError('PADDOCK_PUBLIC_URL', `expected the gateway's origin as browsers reach it (such as https://paddock.example.com), with no path, got "${publicUrl}"`);
  }
  const publicIngressUrl = read.optional('PADDOCK_PUBLIC_INGRESS_URL');
  if (publicIngressUrl !== undefined) {
    const url = URL.canParse(publicIngressUrl) ? new URL(publicIngressUrl) : undefined;
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || (url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '' || url.username !== '') {
      throw new ConfigError('PADDOCK_PUBLIC_INGRESS_URL', `expected an http(s) URL with a host and a port only (such as https://${baseDomain}), got "${publicIngressUrl}"`);
    }
    if (url.hostname !== baseDomain) {
      throw new ConfigError('PADDOCK_PUBLIC_INGRESS_URL', `its host "${url.hostname}" must be PADDOCK_BASE_DOMAIN ("${baseDomain}"): ports are served at {id}-{port}.${baseDomain}`);
    }
  }
  return Object.freeze({
    host: read.string('PADDOCK_INGRESS_HOST', '127.0.0.1'),
    port: read.int('PADDOCK_INGRESS_PORT', 8080, { max: 65_535 }),
    baseDomain,
    xdsAddress,
    keyFile: read.string('PADDOCK_INGRESS_KEY_FILE', join(planeDir(home), 'ingress-key')),
    sessionTtlMs: read.int('PADDOCK_INGRESS_SESSION_HOURS', 12, { min: 1, max: 24 * 30 }) * 60 * 60 * 1000,
    publicUrl: publicUrl?.replace(/\/$/, ''),
    publicIngressUrl: publicIngressUrl?.replace(/\/$/, ''),
  });
}

function llmProxyUrl(value: string): string {
  const url = URL.canParse(value) ? new URL(value) : undefined;
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.search !== '' || url.hash !== '' || url.username !== '') {
    throw new ConfigError('PADDOCK_LLM_PROXY_URL', `expected the metering proxy's URL inside an instance, such as http://127.0.0.1:4000, got "${value}"`);
  }
  return value.replace(/\/+$/, '');
}

function containerRuntimeOf(value: string): 'runc' | 'gvisor' {
  if (value !== 'runc' && value !== 'gvisor') throw new ConfigError('PADDOCK_CONTAINER_RUNTIME', `must be runc or gvisor, got "${value}"`);
  return value;
}
