import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { Logger } from '@paddock/telemetry';

/**
 * Bytes from the instance handed to the WebSocket but not yet written to its TCP socket: above the high
 * mark the relay is paused (and through it the server inside), below the low one it resumes.
 */
export const TUNNEL_HIGH_WATER_BYTES = 1024 * 1024;
const TUNNEL_LOW_WATER_BYTES = 256 * 1024;
/** After the client closed, what it sent last still reaches the server inside within this time; then the relay is cut. */
const CLOSE_GRACE_MS = 5_000;

/**
 * Bridges one WebSocket to a TCP connection inside an instance (a Relay stream): every frame from the
 * client, binary or text, is bytes for the server inside; what the server sends comes back as binary
 * frames. Both directions respect backpressure. The server closing its side closes the socket (code 1000)
 * once everything it sent is out; the client closing the socket half-closes the connection inside.
 */
export function bridgeTunnel(socket: WebSocket, relay: Duplex, opts: { executionId: string; port: number; log: Logger }): void {
  let unsentBytes = 0;
  let relayPaused = false;
  let inputPaused = false;
  let closing = false;

  relay.on('data', (data: Buffer) => {
    if (socket.readyState !== socket.OPEN) return;
    unsentBytes += data.length;
    socket.send(data, { binary: true }, () => {
      unsentBytes -= data.length;
      if (relayPaused && unsentBytes <= TUNNEL_LOW_WATER_BYTES) {
        relayPaused = false;
        relay.resume();
      }
    });
    if (!relayPaused && unsentBytes > TUNNEL_HIGH_WATER_BYTES) {
      relayPaused = true;
      relay.pause();
    }
  });
  // A close frame goes out after the data frames queued before it.
  relay.once('end', () => {
    if (socket.readyState === socket.OPEN) socket.close(1000, 'the server inside closed the connection');
  });
  relay.once('error', (err: Error) => {
    opts.log.info({ executionId: opts.executionId, port: opts.port, err: err.message }, 'tunnel closed by an error');
    if (socket.readyState === socket.OPEN) socket.close(1011, err.message.slice(0, 120));
  });

  socket.on('message', (data: Buffer) => {
    if (closing) return;
    if (!relay.write(data) && !inputPaused) {
      inputPaused = true;
      socket.pause();
      relay.once('drain', () => {
        inputPaused = false;
        socket.resume();
      });
    }
  });
  const closed = () => {
    if (closing) return;
    closing = true;
    relay.end();
    const cut = setTimeout(() => relay.destroy(), CLOSE_GRACE_MS);
    cut.unref();
    relay.once('close', () => clearTimeout(cut));
  };
  socket.on('close', closed);
  socket.on('error', () => {
    closed();
    relay.destroy();
  });
}
