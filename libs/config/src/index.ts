import { homedir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '@paddock/errors';

export type Env = Readonly<Record<string, string | undefined>>;

/**
 * Typed reads of environment variables. Services compile their options once, in main.ts, into a frozen
 * config; every malformed value is a ConfigError that names the variable.
 */
export class EnvReader {
  constructor(private readonly env: Env) {}

  string(name: string, fallback: string): string {
    const value = this.env[name];
    return value === undefined || value === '' ? fallback : value;
  }

  optional(name: string): string | undefined {
    const value = this.env[name];
    return value === undefined || value === '' ? undefined : value;
  }

  int(name: string, fallback: number, { min = 0, max = Number.MAX_SAFE_INTEGER } = {}): number {
    const raw = this.optional(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new ConfigError(name, `expected an integer in [${min}, ${max}], got "${raw}"`);
    }
    return value;
  }

  bool(name: string, fallback: boolean): boolean {
    const raw = this.optional(name);
    if (raw === undefined) return fallback;
    if (['1', 'true', 'yes', 'on'].includes(raw.toLowerCase())) return true;
    if (['0', 'false', 'no', 'off'].includes(raw.toLowerCase())) return false;
    throw new ConfigError(name, `expected true or false, got "${raw}"`);
  }
}

/** Settings every service shares. */
export interface CommonConfig {
  readonly home: string;
  readonly natsUrl: string;
  readonly databaseUrl: string | undefined;
  readonly logLevel: string;
  readonly otlpEndpoint: string | undefined;
}

export function commonConfig(env: Env): CommonConfig {
  const read = new EnvReader(env);
  const home = read.string('PADDOCK_HOME', join(env['HOME'] ?? homedir(), '.paddock'));
  return Object.freeze({
    home,
    natsUrl: read.string('NATS_URL', 'nats://127.0.0.1:4222'),
    databaseUrl: read.optional('DATABASE_URL'),
    logLevel: read.string('LOG_LEVEL', 'info'),
    otlpEndpoint: read.optional('OTEL_EXPORTER_OTLP_ENDPOINT'),
  });
}

/** Where a running `paddock up` keeps the URL of the database it started, for services and tools. */
export function databaseUrlFile(home: string): string {
  return join(home, 'database-url');
}

export function adminTokenFile(home: string): string {
  return join(home, 'admin-token');
}

export function artifactsDir(home: string): string {
  return join(home, 'artifacts');
}
