import { join } from 'node:path';
import { busSettingsFromEnv, type BusSettings } from '@paddock/bus';
import { ConfigError } from '@paddock/errors';
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
  /** The key that seals users' secrets (base64, 32 bytes); created at the first start. */
  readonly secretKeyFile: string;
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
}

export function gatewayConfig(env: Env): GatewayConfig {
  const read = new EnvReader(env);
  const common = commonConfig(env);
  const defaultRuntime = read.string('PADDOCK_DEFAULT_RUNTIME', 'task');
  if (!findRuntime(defaultRuntime)) throw new ConfigError('PADDOCK_DEFAULT_RUNTIME', `must be one of ${RUNTIME_NAMES.join(', ')}, got "${defaultRuntime}"`);
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
  };
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

function containerRuntimeOf(value: string): 'runc' | 'gvisor' {
  if (value !== 'runc' && value !== 'gvisor') throw new ConfigError('PADDOCK_CONTAINER_RUNTIME', `must be runc or gvisor, got "${value}"`);
  return value;
}
