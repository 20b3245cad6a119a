import { PaddockError } from '@paddock/errors';

/** The command line itself is wrong (unknown option, missing argument): exit status 2. */
export class UsageError extends Error {
  readonly command: string | undefined;

  constructor(message: string, command?: string) {
    super(message);
    this.name = 'UsageError';
    this.command = command;
  }
}

/** The Paddock API answered with an error body `{error: {code, message}}`. */
export class ApiError extends PaddockError {
  constructor(code: string, status: number, message: string) {
    super(code, status, message);
  }
}

/** Nothing answered at PADDOCK_URL, or the connection broke. */
export class ConnectionError extends Error {
  readonly url: string;

  constructor(url: string, cause: unknown) {
    super(`cannot reach Paddock at ${url}: ${describeCause(cause)} (is \`paddock up\` running? is PADDOCK_URL right?)`, { cause });
    this.name = 'ConnectionError';
    this.url = url;
  }
}

/** A command could not do what was asked, for a reason its message explains: exit status 1. */
export class CommandError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'CommandError';
  }
}

function describeCause(cause: unknown): string {
  // fetch wraps the socket error ("fetch failed"); the useful part is the code underneath.
  let current: unknown = cause;
  while (current instanceof Error) {
    const code = (current as NodeJS.ErrnoException).code;
    if (typeof code === 'string') return code;
    if (current.cause === undefined) return current.message;
    current = current.cause;
  }
  return String(cause);
}
