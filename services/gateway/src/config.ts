import { adminTokenFile, artifactsDir, commonConfig, EnvReader, type CommonConfig, type Env } from '@paddock/config';

export interface GatewayConfig extends CommonConfig {
  readonly host: string;
  readonly port: number;
  readonly adminTokenFile: string;
  readonly artifactsDir: string;
  readonly bodyLimitBytes: number;
  /** Applied to a request that names none. */
  readonly defaults: {
    readonly image: string;
    readonly cpus: number;
    readonly memoryMb: number;
    readonly timeoutS: number;
  };
  readonly limits: {
    readonly maxCpus: number;
    readonly maxMemoryMb: number;
    readonly maxTimeoutS: number;
  };
}

export function gatewayConfig(env: Env): GatewayConfig {
  const read = new EnvReader(env);
  const common = commonConfig(env);
  return Object.freeze({
    ...common,
    host: read.string('PADDOCK_HOST', '127.0.0.1'),
    port: read.int('PADDOCK_PORT', 7070, { max: 65535 }),
    adminTokenFile: read.string('PADDOCK_ADMIN_TOKEN_FILE', adminTokenFile(common.home)),
    artifactsDir: read.string('PADDOCK_ARTIFACTS_DIR', artifactsDir(common.home)),
    bodyLimitBytes: read.int('PADDOCK_BODY_LIMIT_BYTES', 10 * 1024 * 1024, { min: 1024 }),
    defaults: Object.freeze({
      image: read.string('PADDOCK_DEFAULT_IMAGE', 'paddock/base:latest'),
      cpus: read.int('PADDOCK_DEFAULT_CPUS', 1, { min: 1 }),
      memoryMb: read.int('PADDOCK_DEFAULT_MEMORY_MB', 1024, { min: 16 }),
      timeoutS: read.int('PADDOCK_DEFAULT_TIMEOUT_S', 3600, { min: 1 }),
    }),
    limits: Object.freeze({
      maxCpus: read.int('PADDOCK_MAX_CPUS', 16, { min: 1 }),
      maxMemoryMb: read.int('PADDOCK_MAX_MEMORY_MB', 65536, { min: 16 }),
      maxTimeoutS: read.int('PADDOCK_MAX_TIMEOUT_S', 7 * 24 * 3600, { min: 1 }),
    }),
  });
}
