import { isDatabaseUnavailable } from '@paddock/db';
import { PermanentError } from '@paddock/errors';

/**
 * The failures of a dependency that is briefly away (PostgreSQL restarting, NATS restarting): the same call
 * is expected to work again later. The lifecycle never turns one of them into an execution's end; a gRPC
 * caller gets UNAVAILABLE and tries again.
 */

/** PostgreSQL could not be reached, or dropped the connection, while the broker used its table. */
export class DatabaseUnavailableError extends Error {
  constructor(
    readonly operation: string,
    options: { cause: unknown },
  ) {
    super(`the broker's database is unavailable (${operation}): ${describe(options.cause)}`, options);
    this.name = 'DatabaseUnavailableError';
  }
}

/** NATS did not take a message or answer a request in time (restarting, or cut off). */
export class BusUnavailableError extends Error {
  constructor(
    readonly operation: string,
    options: { cause: unknown },
  ) {
    super(`NATS is unavailable (${operation}): ${describe(options.cause)}`, options);
    this.name = 'BusUnavailableError';
  }
}

export function isUnavailable(err: unknown): err is DatabaseUnavailableError | BusUnavailableError {
  return err instanceof DatabaseUnavailableError || err instanceof BusUnavailableError;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message || err.name : String(err);
}

/**
 * Runs a query; a failure of the server (refused or dropped connection, a server shutting down or starting
 * up, a connect timeout) becomes a DatabaseUnavailableError. An error of the statement itself (a SQLSTATE
 * outside the classes above) is passed on as it is: trying again would fail the same way.
 */
export async function onDatabase<T>(operation: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    // The server's own answer (pg's DatabaseError) carries a severity and a SQLSTATE; a socket error (ECONNREFUSED,
    // EPIPE) or pg's "Connection terminated" carries neither.
    const { code, severity } = err as { code?: unknown; severity?: unknown };
    if (typeof severity === 'string' && typeof code === 'string' && !isDatabaseUnavailable(err)) throw err;
    throw new DatabaseUnavailableError(operation, { cause: err });
  }
}

/**
 * Runs a bus call; every failure but a PermanentError (a message NATS can never take) becomes a
 * BusUnavailableError: the bus's own failures are timeouts, refused connections and JetStream not ready.
 */
export async function onBus<T>(operation: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof PermanentError) throw err;
    throw new BusUnavailableError(operation, { cause: err });
  }
}
