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

/**
 * A failure that trying again cannot fix: the same input fails the same way every time (a message larger
 * than the server accepts, a request that can never be valid). A bus consumer that throws one has its
 * message dead-lettered at once instead of retried; a caller that gets one stops retrying and records
 * `message` as the reason.
 */
export class PermanentError extends PaddockError {
  constructor(message: string, options?: ErrorOptions & { code?: string; status?: number }) {
    super(options?.code ?? 'permanent_failure', options?.status ?? 500, message, options);
  }
}

/** A message larger than NATS (its max payload) or its stream (max message size) accepts. */
export class MessageTooLargeError extends PermanentError {
  readonly subject: string;
  readonly sizeBytes: number;
  readonly limitBytes: number;

  constructor(subject: string, sizeBytes: number, limitBytes: number, limitName: string, options?: ErrorOptions) {
    super(
      `the message for ${subject} is ${sizeBytes} bytes but ${limitName} accepts at most ${limitBytes} bytes; ` +
        'send large content by reference instead of inline, or raise that limit',
      { ...options, code: 'payload_too_large', status: 413 },
    );
    this.subject = subject;
    this.sizeBytes = sizeBytes;
    this.limitBytes = limitBytes;
  }
}

/** nats-server cannot set aside the bytes a stream's limit asks for: its JetStream storage is too small. */
export class StreamStorageError extends PaddockError {
  readonly stream: string;
  readonly maxBytes: number;

  constructor(stream: string, maxBytes: number, setting: string, options?: ErrorOptions) {
    super(
      'insufficient_storage',
      507,
      `nats-server cannot reserve ${maxBytes} bytes for stream ${stream}: its JetStream storage is smaller than the streams' limits together. ` +
        `Free disk space where nats-server stores JetStream, raise its max_file_store, or lower ${setting}`,
      options,
    );
    this.stream = stream;
    this.maxBytes = maxBytes;
  }
}
