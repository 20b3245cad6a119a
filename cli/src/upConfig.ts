import { join, resolve } from 'node:path';
import { adminTokenFile, commonConfig, databaseUrlFile, EnvReader, type Env } from '@paddock/config';

export const SERVICES = ['scheduler', 'broker', 'gateway'] as const;

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
  readonly serviceStopGraceMs: number;
  readonly infraStopGraceMs: number;
}

export function upConfig(env: Env, repoRoot: string): UpConfig {
  const read = new EnvReader(env);
  const home = resolve(commonConfig(env).home);
  const httpHost = read.string('PADDOCK_HOST', '127.0.0.1');
  const httpPort = read.int('PADDOCK_PORT', 7070, { min: 1, max: 65535 });
  const reachable = httpHost === '0.0.0.0' || httpHost === '::' ? '127.0.0.1' : httpHost;
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
    serviceStopGraceMs: 15_000,
    infraStopGraceMs: 10_000,
  });
}
