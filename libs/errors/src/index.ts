/**
 * One error class per kind of failure. `code` is stable and machine-readable (it reaches API callers),
 * `status` is the HTTP status the gateway answers with, and the message says what to fix.
 */
export class PaddockError extends Error {
  readonly code: string;
  readonly status: number;

  constructor(code: string, status: number, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.status = status;
  }
}

export class ValidationError extends PaddockError {
  constructor(message: string, options?: ErrorOptions) {
    super('invalid_request', 400, message, options);
  }
}

export class UnauthorizedError extends PaddockError {
  constructor(message = 'missing or invalid bearer token: send "Authorization: Bearer <token>"') {
    super('unauthorized', 401, message);
  }
}

export class ForbiddenError extends PaddockError {
  constructor(message: string) {
    super('forbidden', 403, message);
  }
}

export class NotFoundError extends PaddockError {
  constructor(what: string, id: string) {
    super('not_found', 404, `${what} ${id} not found`);
  }
}

export class ConflictError extends PaddockError {
  constructor(message: string) {
    super('conflict', 409, message);
  }
}

export class UnavailableError extends PaddockError {
  constructor(message: string, options?: ErrorOptions) {
    super('unavailable', 503, message, options);
  }
}

/** A setting that is missing, malformed or contradicts another; raised when a config is compiled. */
export class ConfigError extends PaddockError {
  readonly setting: string;

  constructor(setting: string, message: string) {
    super('invalid_config', 500, `${setting}: ${message}`);
    this.setting = setting;
  }
}
