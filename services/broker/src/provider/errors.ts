/**
 * How a provider fails. The lifecycle tries again only after a TransientProviderError; every other error
 * ends the launch at once, its message shown to the person who asked.
 */

/** The backend failed in a way that may pass: an engine's 5xx, a timeout, a refused connection. */
export class TransientProviderError extends Error {
  constructor(
    message: string,
    readonly provider: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TransientProviderError';
  }
}

/** The image asked for is not there, and the provider cannot make it. */
export class ImageUnavailableError extends Error {
  constructor(
    message: string,
    readonly image: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ImageUnavailableError';
  }
}

/** The spec asks for what this provider cannot give (a path outside the workspace, a limit it cannot enforce). */
export class UnsupportedSpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsupportedSpecError';
  }
}

/** The request's files do not fit in the workspace's disk limit. */
export class WorkspaceFullError extends Error {
  constructor(
    readonly diskLimitBytes: number,
    options?: { cause?: unknown },
  ) {
    super(`the request's files need more room than the workspace's ${Math.round(diskLimitBytes / (1024 * 1024))} MiB disk limit`, options);
    this.name = 'WorkspaceFullError';
  }
}

/** No instance of that execution exists (any more). */
export class InstanceNotFoundError extends Error {
  constructor(readonly executionId: string) {
    super(`execution ${executionId} has no instance`);
    this.name = 'InstanceNotFoundError';
  }
}
