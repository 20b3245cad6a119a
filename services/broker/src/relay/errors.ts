/** How the relay fails; the gRPC surface maps each to a status (see relayCall.ts). */

/** The instance runs, but nothing listens on the port asked for inside it. */
export class PortNotListeningError extends Error {
  constructor(
    readonly executionId: string,
    readonly port: number,
    options?: { cause?: unknown },
  ) {
    super(`nothing listens on port ${port} in execution ${executionId}`, options);
    this.name = 'PortNotListeningError';
  }
}

/** The relay's own tool (nsenter, socat) failed: the host lacks it, or it died. Says what it printed. */
export class RelayFailedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RelayFailedError';
  }
}

/** The first frame of a Relay call did not name an execution and a TCP port. */
export class RelayRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RelayRequestError';
  }
}
