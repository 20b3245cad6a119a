import type { Duplex } from 'node:stream';
import { status, type ServerDuplexStream, type ServiceError } from '@grpc/grpc-js';
import type { RelayFrame } from '@paddock/proto';
import type { Logger } from '@paddock/telemetry';
import { LaunchError } from '../lifecycle/launchError.js';
import { InstanceNotFoundError } from '../provider/errors.js';
import { isUnavailable } from '../unavailable.js';
import { PortNotListeningError, RelayFailedError, RelayRequestError } from './errors.js';

/** A caller that opens a Relay call must name its port within this time. */
const FIRST_FRAME_TIMEOUT_MS = 10_000;

/** Opens the stream to a port of a running instance (InstanceManager.reachPort). */
export type ReachPort = (executionId: string, port: number) => Promise<Duplex>;

function statusError(code: status, details: string): ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: undefined as never });
}

/** How a failure is told to the caller. */
function asStatus(err: unknown, log: Logger, executionId: string): ServiceError {
  if (err instanceof RelayRequestError) return statusError(status.INVALID_ARGUMENT, err.message);
  if (err instanceof LaunchError) return statusError(err.code, err.details);
  if (err instanceof PortNotListeningError) return statusError(status.FAILED_PRECONDITION, err.message);
  if (err instanceof InstanceNotFoundError) return statusError(status.NOT_FOUND, `execution ${executionId} has no running instance`);
  if (isUnavailable(err)) return statusError(status.UNAVAILABLE, err.message);
  if (!(err instanceof RelayFailedError)) log.error({ err, executionId }, 'Relay failed');
  return statusError(status.INTERNAL, (err as Error).message);
}

/**
 * The Relay RPC: the first frame names the execution and the port; the broker answers an empty frame once
 * the connection inside is open (or ends the call with why it is not), and bytes then go both ways. Each direction
 * takes only what the other end can take: a caller that does not read pauses the relay process (and so the
 * server inside, through TCP), and a server inside that does not read pauses the reading of the call (and so
 * the caller, through HTTP/2 flow control). The caller's end of stream half-closes the connection inside;
 * the server's close arrives as a frame with `eof`; the call ends once both sides have.
 */
export function relayCall(reachPort: ReachPort, log: Logger): (call: ServerDuplexStream<RelayFrame, RelayFrame>) => void {
  return (call) => {
    let executionId = '';
    let connection: Duplex | undefined;
    let settled = false;
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      connection?.destroy();
      // grpc-js sends an error emitted on the call as its status (destroy() would send none).
      call.emit('error', asStatus(err, log, executionId));
    };
    const firstFrameTimer = setTimeout(() => fail(new RelayRequestError(`no first frame naming the execution and the port within ${FIRST_FRAME_TIMEOUT_MS} ms`)), FIRST_FRAME_TIMEOUT_MS);
    const endedEarly = () => fail(new RelayRequestError('the call ended before its first frame named the execution and the port'));
    // The caller went away: nobody reads what the connection would carry.
    call.once('cancelled', () => {
      settled = true;
      connection?.destroy();
    });
    call.on('error', () => connection?.destroy());
    call.once('end', endedEarly);
    call.once('data', (first: RelayFrame) => {
      clearTimeout(firstFrameTimer);
      call.off('end', endedEarly);
      // Nothing more is read until the connection inside can take it.
      call.pause();
      executionId = first.open?.executionId ?? '';
      const port = first.open?.port ?? 0;
      if (!executionId) return fail(new RelayRequestError('the first frame must name the execution (open.execution_id)'));
      if (!Number.isInteger(port) || port < 1 || port > 65535) return fail(new RelayRequestError(`port ${port} is not a TCP port (1-65535)`));
      reachPort(executionId, port).then(
        (conn) => {
          if (settled) return void conn.destroy();
          connection = conn;
          pipe(conn, first.data);
        },
        fail,
      );
    });

    function pipe(conn: Duplex, firstData: Uint8Array): void {
      let fromCallerEnded = false;
      let fromInstanceEnded = false;
      if (firstData.length > 0) conn.write(firstData);
      // Tells the caller the connection inside is open, before any byte comes from it.
      conn.once('connect', () => call.write({ open: undefined, data: Buffer.alloc(0), eof: false }));
      conn.on('data', (data: Buffer) => {
        if (!call.write({ open: undefined, data, eof: false })) {
          conn.pause();
          call.once('drain', () => conn.resume());
        }
      });
      conn.once('end', () => {
        fromInstanceEnded = true;
        call.write({ open: undefined, data: Buffer.alloc(0), eof: true });
      });
      conn.once('error', fail);
      conn.once('close', () => {
        if (settled) return;
        settled = true;
        // Both sides done (or the relay ended cleanly): the call's status is OK.
        call.end();
        if (!fromCallerEnded || !fromInstanceEnded) log.debug({ executionId, fromCallerEnded, fromInstanceEnded }, 'relay closed before both sides ended');
      });
      call.on('data', (frame: RelayFrame) => {
        if (frame.data.length === 0) return;
        if (!conn.write(frame.data)) {
          call.pause();
          conn.once('drain', () => call.resume());
        }
      });
      call.once('end', () => {
        fromCallerEnded = true;
        conn.end();
      });
      call.resume();
    }
  };
}
