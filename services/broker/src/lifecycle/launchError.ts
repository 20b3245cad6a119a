import type { status as GrpcStatus } from '@grpc/grpc-js';

/** A gRPC-shaped error: grpc-js sends `code` and `details` to the caller as they are. */
export class LaunchError extends Error {
  constructor(
    readonly code: GrpcStatus,
    readonly details: string,
  ) {
    super(details);
    this.name = 'LaunchError';
  }
}
