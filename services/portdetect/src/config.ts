import { busSettingsFromEnv, type BusSettings } from '@paddock/bus';
import { commonConfig, EnvReader, type CommonConfig, type Env } from '@paddock/config';

export interface PortdetectConfig extends CommonConfig {
  readonly dockerSocket: string;
  /** Where the host's /proc is: each instance's socket tables are read from `<procDir>/<pid>/net`. */
  readonly procDir: string;
  readonly intervalMs: number;
  readonly verifyMs: number;
  readonly busyMs: number;
  readonly bus: BusSettings;
  readonly metricsPort: number;
}

export function portdetectConfig(env: Env): PortdetectConfig {
  const read = new EnvReader(env);
  return Object.freeze({
    ...commonConfig(env),
    dockerSocket: read.string('DOCKER_SOCKET', '/var/run/docker.sock'),
    procDir: read.string('PADDOCK_PROC_DIR', '/proc'),
    intervalMs: read.int('PADDOCK_PORTDETECT_INTERVAL_MS', 100, { min: 10, max: 10_000 }),
    verifyMs: read.int('PADDOCK_PORTDETECT_VERIFY_MS', 10_000, { min: 100 }),
    busyMs: read.int('PADDOCK_PORTDETECT_BUSY_MS', 250, { min: 0 }),
    bus: busSettingsFromEnv(env),
    metricsPort: read.int('PADDOCK_METRICS_PORT', 0, { min: 0, max: 65_535 }),
  });
}
