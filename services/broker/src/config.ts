import { busSettingsFromEnv, type BusSettings } from '@paddock/bus';
import { artifactsDir, commonConfig, EnvReader, type CommonConfig, type Env } from '@paddock/config';
import { ConfigError } from '@paddock/errors';
import { specKeyFile, tlsFilesFromEnv, type TlsFiles } from '@paddock/plane';
import { hostname, cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseRelayEndpoints, type RelayEndpoint } from './relay/endpoints.js';

/** The images/ folder of the checkout this broker runs from. */
const CHECKOUT_IMAGES_DIR = fileURLToPath(new URL('../../../../images/', import.meta.url));

export interface BrokerConfig extends CommonConfig {
  readonly brokerId: string;
  readonly grpcHost: string;
  readonly grpcPort: number;
  /** Where the HTTP relay for the edge proxy (Envoy) listens; port 0 takes a free one, which the heartbeat announces. */
  readonly relayHost: string;
  readonly relayPort: number;
  /** Containers this broker runs at once. */
  readonly capacity: number;
  readonly artifactsDir: string;
  readonly dockerSocket: string;
  readonly defaultImage: string;
  /** Between SIGTERM and SIGKILL on cancel and timeout. */
  readonly stopGraceMs: number;
  /** Output kept per execution; the rest is dropped with a note in the log. */
  readonly maxOutputBytes: number;
  readonly pidsLimit: number;
  /** Where images/<name>/build.sh are, to build a runtime's image the first time it is asked for. */
  readonly imagesDir: string;
  /**
   * TCP ports of this host that bridged instances may open, as host.docker.internal (a model server such
   * as Ollama); nothing else of the host answers them. Empty by default.
   */
  readonly instanceHostPorts: readonly number[];
  /** Paddock's own endpoints offered at 127.0.0.1:<port> inside every running instance (see relay/). */
  readonly relayEndpoints: readonly RelayEndpoint[];
  /**
   * Whether an egress allowlist may lead to addresses of this host or of private networks. Off: the proxy
   * runs on this host, and such a name would reach Paddock's own services.
   */
  readonly egressAllowInternal: boolean;
  /**
   * `bind`: /workspace is a folder of this host (under workspacesDir), filled and zipped without the engine;
   * needs root (the folder is handed to uid 1000) and the engine on this host. `archive`: through the engine.
   */
  readonly workspaceMode: 'bind' | 'archive';
  readonly workspacesDir: string;
  /**
   * The key the gateway seals specs' secrets with (the same file, shared through PADDOCK_HOME/plane); the
   * broker opens specs and seals its own SSH passwords with it, and never holds the key of users' stored secrets.
   */
  readonly specKeyFile: string;
  /** The broker's certificate and key, and the plane's CA its callers' certificates must come from. */
  readonly tls: TlsFiles;
  /** The blob store the gateway writes large inputs to (the same folder, shared through PADDOCK_HOME). */
  readonly blobsDir: string;
  /** How long artifacts, ended instances' rows and unused blobs are kept. */
  readonly retentionMs: number;
  /** How long a provider failure that may pass (an engine 5xx, a timeout) is retried, from the first attempt. */
  readonly provisionRetryMs: number;
  /** How often the provider's instances and the table are brought back in line. */
  readonly reconcileIntervalMs: number;
  /** Between two compute usage events of a running instance (memory is looked at every second regardless). */
  readonly usageIntervalMs: number;
  /** A loopback port serving `GET /metrics` for Prometheus; 0 serves none. */
  readonly metricsPort: number;
  /** Stream limits, retention and redelivery of the bus, as every service connects with them. */
  readonly bus: BusSettings;
}

const DAY_MS = 24 * 60 * 60 * 1000;

function workspaceMode(value: string): 'bind' | 'archive' {
  if (value !== 'bind' && value !== 'archive') throw new ConfigError('PADDOCK_WORKSPACE_MODE', `must be bind or archive, got "${value}"`);
  return value;
}

export function brokerConfig(env: Env): BrokerConfig {
  const read = new EnvReader(env);
  const common = commonConfig(env);
  const brokerId = read.string('PADDOCK_BROKER_ID', `docker-${hostname().toLowerCase().replace(/[^a-z0-9-]/g, '-')}`);
  if (!/^[A-Za-z0-9_-]+$/.test(brokerId)) throw new ConfigError('PADDOCK_BROKER_ID', 'use letters, digits, "-" and "_" only');
  const config: BrokerConfig = {
    ...common,
    brokerId,
    grpcHost: read.string('PADDOCK_BROKER_HOST', '127.0.0.1'),
    grpcPort: read.int('PADDOCK_BROKER_PORT', 7071, { max: 65535 }),
    relayHost: read.string('PADDOCK_BROKER_RELAY_HOST', '127.0.0.1'),
    relayPort: read.int('PADDOCK_BROKER_RELAY_PORT', 0, { max: 65535 }),
    capacity: read.int('PADDOCK_BROKER_CAPACITY', Math.max(8, cpus().length * 8), { min: 1 }),
    artifactsDir: read.string('PADDOCK_ARTIFACTS_DIR', artifactsDir(common.home)),
    dockerSocket: read.string('DOCKER_SOCKET', '/var/run/docker.sock'),
    defaultImage: read.string('PADDOCK_DEFAULT_IMAGE', 'paddock/base:latest'),
    stopGraceMs: read.int('PADDOCK_STOP_GRACE_MS', 5_000),
    maxOutputBytes: read.int('PADDOCK_MAX_OUTPUT_BYTES', 64 * 1024 * 1024, { min: 1024 }),
    pidsLimit: read.int('PADDOCK_PIDS_LIMIT', 512, { min: 16 }),
    imagesDir: read.string('PADDOCK_IMAGES_DIR', CHECKOUT_IMAGES_DIR),
    instanceHostPorts: hostPorts(read.string('PADDOCK_INSTANCE_HOST_PORTS', '')),
    egressAllowInternal: read.bool('PADDOCK_EGRESS_ALLOW_INTERNAL', false),
    relayEndpoints: parseRelayEndpoints('PADDOCK_RELAY_ENDPOINTS', read.string('PADDOCK_RELAY_ENDPOINTS', '')),
    workspaceMode: workspaceMode(read.string('PADDOCK_WORKSPACE_MODE', process.getuid?.() === 0 ? 'bind' : 'archive')),
    workspacesDir: read.string('PADDOCK_WORKSPACES_DIR', `${common.home}/workspaces`),
    specKeyFile: read.string('PADDOCK_SPEC_KEY_FILE', specKeyFile(common.home)),
    tls: tlsFilesFromEnv(env, 'broker'),
    blobsDir: read.string('PADDOCK_BLOBS_DIR', `${common.home}/blobs`),
    retentionMs: read.int('PADDOCK_RETENTION_DAYS', 30, { min: 1, max: 36_500 }) * DAY_MS,
    provisionRetryMs: read.int('PADDOCK_PROVISION_RETRY_MS', 5_000, { max: 60_000 }),
    reconcileIntervalMs: read.int('PADDOCK_RECONCILE_INTERVAL_MS', 30_000, { min: 1_000 }),
    usageIntervalMs: read.int('PADDOCK_USAGE_INTERVAL_MS', 10_000, { min: 100 }),
    metricsPort: read.int('PADDOCK_METRICS_PORT', 0, { min: 0, max: 65_535 }),
    bus: busSettingsFromEnv(env),
  };
  return Object.freeze(config);
}

function hostPorts(value: string): readonly number[] {
  const ports = value.split(',').map((p) => p.trim()).filter((p) => p !== '');
  return Object.freeze(
    ports.map((p) => {
      const port = Number(p);
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ConfigError('PADDOCK_INSTANCE_HOST_PORTS', `"${p}" is not a TCP port; give ports separated by commas, e.g. 11434,8000`);
      return port;
    }),
  );
}
