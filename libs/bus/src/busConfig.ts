import { EnvReader, type Env } from '@paddock/config';
import { ConfigError } from '@paddock/errors';
import { isNatsUser, NATS_USERS, type NatsUser } from './natsPermissions.js';
import { DAY_MS, streams, type StreamName } from './subjects.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** What one JetStream stream may hold; the oldest messages go first when a limit is reached. */
export interface StreamLimits {
  /** All the stream's messages together. nats-server sets this much aside when the stream is made. */
  readonly maxBytes: number;
  /** One message, headers included. Publishers above it get a MessageTooLargeError. */
  readonly maxMsgSizeBytes: number;
  /** Messages older than this are removed. */
  readonly maxAgeMs: number;
}

/**
 * The bus's limits and retry policy as a person writes them: every field is optional. `compileBusConfig`
 * fills the defaults and rejects contradictions; `busSettingsFromEnv` reads them from the environment.
 */
export interface BusSettings {
  /** How long stored messages are kept (executions, instances, output): 30 days. */
  readonly retentionMs?: number;
  /** How long dead letters are kept, so that a person can look at them and replay them: 90 days. */
  readonly deadLetterRetentionMs?: number;
  /** Per stream: its byte limit and the largest message it stores. */
  readonly streamLimits?: { readonly [K in StreamName]?: { readonly maxBytes?: number; readonly maxMsgSizeBytes?: number } };
  /** Deliveries of one message to a consumer before it is dead-lettered: 20 (about 13 minutes of retries). */
  readonly maxDeliver?: number;
  /** The pause before the second delivery after a handler failed; it doubles each time: 500 ms. */
  readonly retryInitialDelayMs?: number;
  /** The longest pause between two deliveries: 60 s. */
  readonly retryMaxDelayMs?: number;
  /**
   * The file holding the seed of this process's NATS user key (`NATS_NKEY_FILE`); none to connect without
   * credentials, to a nats-server that asks for none.
   */
  readonly nkeyFile?: string;
  /** The NATS user that key belongs to (`PADDOCK_NATS_USER`): the service's name; required with `nkeyFile`. */
  readonly natsUser?: NatsUser;
}

export interface BusConfig {
  readonly streams: Readonly<Record<StreamName, StreamLimits>>;
  /** Where this process's NATS identity is kept, or null to connect without one. */
  readonly nkey: { readonly file: string; readonly user: NatsUser } | null;
  readonly maxDeliver: number;
  readonly retryInitialDelayMs: number;
  readonly retryMaxDelayMs: number;
}

export const DEFAULT_RETENTION_DAYS = 30;
export const DEFAULT_DEADLETTER_RETENTION_DAYS = 90;
export const DEFAULT_MAX_DELIVER = 20;

/**
 * Output is the bulk of what the bus stores; requests and instance events are small (large inputs travel
 * by reference). One MiB per message is nats-server's default max payload: a larger stream limit would
 * only move the rejection from the stream to the connection.
 */
const DEFAULT_LIMITS: Readonly<Record<StreamName, { maxBytes: number; maxMsgSizeBytes: number }>> = {
  PADDOCK_EXECUTIONS: { maxBytes: 1 * GiB, maxMsgSizeBytes: 1 * MiB },
  PADDOCK_INSTANCES: { maxBytes: 1 * GiB, maxMsgSizeBytes: 256 * 1024 },
  PADDOCK_OUTPUT: { maxBytes: 8 * GiB, maxMsgSizeBytes: 1 * MiB },
  PADDOCK_PORTS: { maxBytes: 256 * MiB, maxMsgSizeBytes: 256 * 1024 },
  // Billing's ledger is the durable record; the stream only carries events until billing has stored them.
  PADDOCK_USAGE: { maxBytes: 1 * GiB, maxMsgSizeBytes: 64 * 1024 },
  PADDOCK_BUDGETS: { maxBytes: 64 * MiB, maxMsgSizeBytes: 64 * 1024 },
  PADDOCK_DEADLETTER: { maxBytes: 1 * GiB, maxMsgSizeBytes: 1 * MiB },
};

/** The environment variable that sets a stream's limit, as error messages name it. */
export function streamSetting(stream: StreamName, limit: 'maxBytes' | 'maxMsgSizeBytes'): string {
  return `PADDOCK_STREAM_${stream.replace(/^PADDOCK_/, '')}_${limit === 'maxBytes' ? 'MAX_BYTES' : 'MAX_MSG_BYTES'}`;
}

function positiveInt(setting: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new ConfigError(setting, `expected a positive integer, got ${value}`);
  return value;
}

/** Fills the defaults and checks that the settings agree with each other; the result is frozen. */
export function compileBusConfig(settings: BusSettings = {}): BusConfig {
  const retentionMs = positiveInt('PADDOCK_RETENTION_DAYS', settings.retentionMs ?? DEFAULT_RETENTION_DAYS * DAY_MS);
  const deadLetterRetentionMs = positiveInt('PADDOCK_DEADLETTER_RETENTION_DAYS', settings.deadLetterRetentionMs ?? DEFAULT_DEADLETTER_RETENTION_DAYS * DAY_MS);
  const limits = {} as Record<StreamName, StreamLimits>;
  for (const { name } of streams) {
    const given = settings.streamLimits?.[name];
    const maxBytes = positiveInt(streamSetting(name, 'maxBytes'), given?.maxBytes ?? DEFAULT_LIMITS[name].maxBytes);
    const maxMsgSizeBytes = positiveInt(streamSetting(name, 'maxMsgSizeBytes'), given?.maxMsgSizeBytes ?? DEFAULT_LIMITS[name].maxMsgSizeBytes);
    // nats-server takes max_msg_size as a 32-bit integer.
    if (maxMsgSizeBytes > 2 ** 31 - 1) throw new ConfigError(streamSetting(name, 'maxMsgSizeBytes'), `at most ${2 ** 31 - 1} bytes, got ${maxMsgSizeBytes}`);
    if (maxBytes < maxMsgSizeBytes) {
      throw new ConfigError(
        streamSetting(name, 'maxBytes'),
        `${maxBytes} bytes cannot hold one message of the ${maxMsgSizeBytes} bytes ${streamSetting(name, 'maxMsgSizeBytes')} allows`,
      );
    }
    limits[name] = Object.freeze({ maxBytes, maxMsgSizeBytes, maxAgeMs: name === 'PADDOCK_DEADLETTER' ? deadLetterRetentionMs : retentionMs });
  }
  const maxDeliver = positiveInt('PADDOCK_BUS_MAX_DELIVER', settings.maxDeliver ?? DEFAULT_MAX_DELIVER);
  const retryInitialDelayMs = positiveInt('retryInitialDelayMs', settings.retryInitialDelayMs ?? 500);
  const retryMaxDelayMs = positiveInt('retryMaxDelayMs', settings.retryMaxDelayMs ?? 60_000);
  if (retryMaxDelayMs < retryInitialDelayMs) {
    throw new ConfigError('retryMaxDelayMs', `the longest pause (${retryMaxDelayMs} ms) is shorter than the first (${retryInitialDelayMs} ms)`);
  }
  return Object.freeze({ streams: Object.freeze(limits), nkey: compileNkey(settings), maxDeliver, retryInitialDelayMs, retryMaxDelayMs });
}

function compileNkey(settings: BusSettings): BusConfig['nkey'] {
  const { nkeyFile: file, natsUser: user } = settings;
  if (file === undefined && user === undefined) return null;
  if (file === undefined || file === '') throw new ConfigError('NATS_NKEY_FILE', `required with PADDOCK_NATS_USER (${user}): the file that holds that user's nkey seed`);
  if (user === undefined) throw new ConfigError('PADDOCK_NATS_USER', `required with NATS_NKEY_FILE (${file}): the NATS user the key belongs to, one of ${NATS_USERS.join(', ')}`);
  if (!isNatsUser(user)) throw new ConfigError('PADDOCK_NATS_USER', `expected one of ${NATS_USERS.join(', ')}, got "${String(user)}"`);
  return Object.freeze({ file, user });
}

/**
 * The bus's settings from environment variables, for a service's main.ts (which alone reads the
 * environment): PADDOCK_RETENTION_DAYS, PADDOCK_DEADLETTER_RETENTION_DAYS, PADDOCK_BUS_MAX_DELIVER, per
 * stream PADDOCK_STREAM_<EXECUTIONS|INSTANCES|OUTPUT|PORTS|USAGE|BUDGETS|DEADLETTER>_MAX_BYTES and _MAX_MSG_BYTES, and the NATS
 * identity: NATS_NKEY_FILE (the seed's file) with PADDOCK_NATS_USER (whose key it is).
 */
export function busSettingsFromEnv(env: Env): BusSettings {
  const read = new EnvReader(env);
  const streamLimits: Partial<Record<StreamName, { maxBytes?: number; maxMsgSizeBytes?: number }>> = {};
  for (const { name } of streams) {
    const maxBytes = read.optional(streamSetting(name, 'maxBytes')) === undefined ? undefined : read.int(streamSetting(name, 'maxBytes'), 0, { min: 1 });
    const maxMsgSizeBytes =
      read.optional(streamSetting(name, 'maxMsgSizeBytes')) === undefined ? undefined : read.int(streamSetting(name, 'maxMsgSizeBytes'), 0, { min: 1 });
    streamLimits[name] = { ...(maxBytes === undefined ? {} : { maxBytes }), ...(maxMsgSizeBytes === undefined ? {} : { maxMsgSizeBytes }) };
  }
  const natsUser = read.optional('PADDOCK_NATS_USER');
  if (natsUser !== undefined && !isNatsUser(natsUser)) throw new ConfigError('PADDOCK_NATS_USER', `expected one of ${NATS_USERS.join(', ')}, got "${natsUser}"`);
  const nkeyFile = read.optional('NATS_NKEY_FILE');
  return {
    ...(nkeyFile === undefined ? {} : { nkeyFile }),
    ...(natsUser === undefined ? {} : { natsUser }),
    retentionMs: read.int('PADDOCK_RETENTION_DAYS', DEFAULT_RETENTION_DAYS, { min: 1, max: 36_500 }) * DAY_MS,
    deadLetterRetentionMs: read.int('PADDOCK_DEADLETTER_RETENTION_DAYS', DEFAULT_DEADLETTER_RETENTION_DAYS, { min: 1, max: 36_500 }) * DAY_MS,
    maxDeliver: read.int('PADDOCK_BUS_MAX_DELIVER', DEFAULT_MAX_DELIVER, { min: 1, max: 10_000 }),
    streamLimits,
  };
}
