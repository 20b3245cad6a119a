import { PaddockError } from '@paddock/errors';
import { ExecutionRequested } from '@paddock/proto';

/**
 * The most an execution request may take on the bus once its large files and script went to the blob store:
 * a quarter of NATS's default 1 MiB max payload, which leaves room for headers, and for the scheduler's
 * own messages and the broker's gRPC Launch that carry the same spec.
 */
export const REQUEST_MESSAGE_MAX_BYTES = 256 * 1024;

/** A request (or a part of it) larger than Paddock can carry; answered 413 before anything is stored. */
export class RequestTooLargeError extends PaddockError {
  constructor(
    message: string,
    readonly sizeBytes: number,
    readonly maxBytes: number,
  ) {
    super('request_too_large', 413, message);
  }
}

const KIB = 1024;

function kib(bytes: number): string {
  return bytes >= KIB ? `${Math.ceil(bytes / KIB)} KiB` : `${bytes} bytes`;
}

/**
 * The encoded message, refused with the parts that make it large when it is over the limit: the env, the
 * prompt, the command and the file paths travel inline whatever their size.
 */
export function encodeRequested(message: ExecutionRequested): Uint8Array {
  const encoded = ExecutionRequested.encode(message).finish();
  if (encoded.length <= REQUEST_MESSAGE_MAX_BYTES) return encoded;
  const spec = message.spec;
  const parts: [string, number][] = [
    ['env', spec ? spec.sealed.length + Object.entries(spec.env).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0) : 0],
    ['prompt', Buffer.byteLength(spec?.agent?.prompt ?? '')],
    ['command', Buffer.byteLength(spec?.command ?? '')],
    ['file paths', spec ? [...Object.keys(spec.files), ...Object.keys(spec.fileRefs)].reduce((n, p) => n + Buffer.byteLength(p), 0) : 0],
  ];
  const large = parts.filter(([, n]) => n >= KIB).sort((a, b) => b[1] - a[1]);
  throw new RequestTooLargeError(
    `the request takes ${kib(encoded.length)} besides its file contents and script, more than the ${kib(REQUEST_MESSAGE_MAX_BYTES)} allowed` +
      (large.length > 0 ? ` (${large.map(([what, n]) => `${what}: ${kib(n)}`).join(', ')})` : '') +
      '; put large data in "files", which are stored apart and may fill the whole request body',
    encoded.length,
    REQUEST_MESSAGE_MAX_BYTES,
  );
}
