import { status } from '@grpc/grpc-js';

/**
 * The kind an error is counted under in `paddock_errors_total`: its class name, or for a gRPC call's error
 * (always a plain Error) its status, e.g. `GrpcUnavailable`. The set of values stays small: never a message.
 */
export function errorKind(err: unknown): string {
  if (!(err instanceof Error)) return 'NonError';
  const code = (err as { code?: unknown }).code;
  if (err.name === 'Error' && typeof code === 'number' && status[code] !== undefined) {
    return `Grpc${status[code].toLowerCase().replace(/(^|_)([a-z])/g, (_m, _sep: string, c: string) => c.toUpperCase())}`;
  }
  return err.name;
}
