import { setTimeout as sleep } from 'node:timers/promises';
import type { Pool } from './pool.js';

/** The part of a logger (pino's, among others) that a wait reports through. */
export interface WaitLog {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
}

export interface WaitForDatabaseOptions {
  /** Says "waiting for PostgreSQL at host:port" at the first failure, then once every `noticeEveryMs`. */
  readonly log?: WaitLog;
  /** Ends the wait (rejecting with the signal's reason), e.g. when the service is asked to stop meanwhile. */
  readonly signal?: AbortSignal;
  readonly initialDelayMs?: number;
  readonly maxDelayMs?: number;
  readonly noticeEveryMs?: number;
}

/** PostgreSQL answered, and refused in a way that waiting does not fix: a wrong password or user. */
export class DatabaseRefusedError extends Error {
  constructor(
    readonly address: string,
    readonly sqlState: string,
    options: ErrorOptions,
  ) {
    super(`PostgreSQL at ${address} refused the connection (${(options.cause as Error).message}); check the user and password in DATABASE_URL`, options);
    this.name = 'DatabaseRefusedError';
  }
}

// invalid_authorization_specification, invalid_password: the server is there, the credentials are wrong.
const REFUSALS = new Set(['28000', '28P01']);

/**
 * Waits until PostgreSQL answers a query through `pool`, retrying with backoff (doubling from
 * `initialDelayMs` to `maxDelayMs`) for as long as it takes: a server that is down, restarting, still
 * starting up, or without the database yet is waited for; credentials it rejects fail at once.
 * Resolves with how long it waited.
 */
export async function waitForDatabase(pool: Pool, opts: WaitForDatabaseOptions = {}): Promise<number> {
  const initialDelayMs = opts.initialDelayMs ?? 200;
  const maxDelayMs = opts.maxDelayMs ?? 5_000;
  const noticeEveryMs = opts.noticeEveryMs ?? 10_000;
  const address = databaseAddress(pool);
  const startedAt = Date.now();
  let delayMs = initialDelayMs;
  let noticedAt: number | undefined;
  for (let attempt = 1; ; attempt++) {
    opts.signal?.throwIfAborted();
    try {
      await pool.query('SELECT 1');
      const waitedMs = Date.now() - startedAt;
      if (noticedAt !== undefined) opts.log?.info({ address, waitedMs, attempts: attempt }, `PostgreSQL at ${address} answers; waited ${Math.round(waitedMs / 1000)} s`);
      return waitedMs;
    } catch (err) {
      const sqlState = (err as { code?: unknown }).code;
      if (typeof sqlState === 'string' && REFUSALS.has(sqlState)) throw new DatabaseRefusedError(address, sqlState, { cause: err });
      const now = Date.now();
      if (noticedAt === undefined || now - noticedAt >= noticeEveryMs) {
        noticedAt = now;
        opts.log?.warn({ address, attempts: attempt, waitedMs: now - startedAt, reason: reasonOf(err) }, `waiting for PostgreSQL at ${address}: ${reasonOf(err)}`);
      }
    }
    await sleep(delayMs, undefined, { signal: opts.signal });
    delayMs = Math.min(delayMs * 2, maxDelayMs);
  }
}

/** host:port of the pool's server, for people to read (never the password). */
export function databaseAddress(pool: Pool): string {
  const { host, port, connectionString } = pool.options;
  if (connectionString !== undefined) {
    try {
      const url = new URL(connectionString);
      return `${url.hostname || 'localhost'}:${url.port || '5432'}`;
    } catch {
      return 'the address in DATABASE_URL';
    }
  }
  return `${host ?? 'localhost'}:${port ?? 5432}`;
}

/** pg's connection errors have an empty message when several addresses failed (AggregateError); their code says it. */
function reasonOf(err: unknown): string {
  const { message, code } = err as { message?: string; code?: string };
  return message || code || String(err);
}
