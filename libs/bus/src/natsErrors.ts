import { ErrorCode, NatsError } from 'nats';
import { PaddockError, PermanentError } from '@paddock/errors';

/**
 * nats-server refused something this connection's user is not allowed: its permissions come from the
 * subject registry (topics[*].owners in subjects.ts), so either the code does what the registry does not
 * declare, or the server runs with permissions of another version. Retrying cannot help.
 */
export class NatsPermissionError extends PermanentError {
  constructor(
    /** The NATS user of the connection, or undefined for one without credentials. */
    readonly user: string | undefined,
    /** `publish` or `subscription`, as nats-server says it. */
    readonly operation: string,
    readonly subject: string,
    options?: ErrorOptions,
  ) {
    super(
      `nats-server refused ${user ?? 'this connection'} the ${operation} to ${subject}: ` +
        'declare it for that service in the subject registry (@paddock/bus subjects.ts) and restart nats-server with the config made from it',
      { ...options, code: 'bus_forbidden', status: 500 },
    );
  }
}

/** nats-server did not let the connection in: no credentials, or a key it does not list. */
export class NatsAuthError extends PaddockError {
  constructor(
    readonly url: string,
    /** The NATS user the connection claimed to be, or undefined when it had no credentials. */
    readonly user: string | undefined,
    /** The public key it signed with, when it had one. */
    readonly publicKey: string | undefined,
    options?: ErrorOptions,
  ) {
    super(
      'bus_unauthorized',
      500,
      user === undefined
        ? `nats-server at ${url} asks for credentials: set NATS_NKEY_FILE and PADDOCK_NATS_USER to this service's nkey seed file and name`
        : `nats-server at ${url} refused user ${user} (key ${publicKey}): its config does not list that key; write it again from the identities in use and restart it`,
      options,
    );
  }
}

export function isPermissionsViolation(err: unknown): err is NatsError & { permissionContext?: { operation: string; subject: string } } {
  return err instanceof NatsError && err.code === ErrorCode.PermissionsViolation;
}

export function isAuthorizationViolation(err: unknown): boolean {
  return err instanceof NatsError && (err.code === ErrorCode.AuthorizationViolation || err.code === ErrorCode.AuthenticationExpired);
}

/** The NatsPermissionError for a NATS permissions violation; anything else as it is. */
export function withPermissionContext(err: unknown, user: string | undefined, fallbackSubject: string): unknown {
  if (!isPermissionsViolation(err)) return err;
  const ctx = err.permissionContext;
  return new NatsPermissionError(user, ctx?.operation ?? 'publish', ctx?.subject ?? fallbackSubject, { cause: err });
}
