import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { Logger } from '@paddock/telemetry';

/** The one thing the bridge serves: the tunnel route of the API, `?port=P` (and `&ticket=` for browsers). */
const TUNNEL_PATH = /^\/api\/v1\/instances\/[^/]+\/tunnel$/;

const NOT_SERVED = JSON.stringify({
  error: { code: 'not_found', message: 'this is the WS-TCP bridge: it serves only WS /api/v1/instances/{id}/tunnel?port=P; the API is on the main port' },
});

export interface BridgeOptions {
  readonly host: string;
  /** A port to listen on; 0 takes any free one (PADDOCK_BRIDGE_PORT=0 means no bridge: then do not start it). */
  readonly port: number;
  readonly log: Logger;
}

/** A listening bridge. */
export interface StartedBridge {
  /** `http://host:port` it listens at. */
  readonly url: string;
  /** Stops listening and cuts the tunnels still open through it (after the app's own close, none are). */
  close(): Promise<void>;
}

/** The bridge's port is taken, or cannot be bound: a setting to change. */
export class BridgeListenError extends Error {
  constructor(host: string, port: number, cause: NodeJS.ErrnoException) {
    super(`the WS-TCP bridge cannot listen on ${host}:${port} (${cause.code ?? cause.message}): choose another PADDOCK_BRIDGE_PORT, or 0 for no bridge`, { cause });
    this.name = 'BridgeListenError';
  }
}

function isTunnel(req: IncomingMessage): boolean {
  return TUNNEL_PATH.test((req.url ?? '').split('?')[0] ?? '');
}

/**
 * The WS-TCP bridge: a second listener of the gateway (PADDOCK_BRIDGE_PORT, 8082) for the tunnel alone,
 * so that noVNC in a browser and `paddock port-forward` can have a port of their own, which a deployment
 * may expose where it would not expose the API. It is not a second implementation: every request on it
 * goes through the app's own tunnel route (`WS /api/v1/instances/{id}/tunnel?port=`), with the same
 * authentication (bearer token or `?ticket=`), refusals before the upgrade, binary frames and backpressure.
 * Any other path answers 404.
 */
export async function startBridge(app: FastifyInstance, opts: BridgeOptions): Promise<StartedBridge> {
  const sockets = new Set<Socket>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    // A plain request to the tunnel gets the route's own answer (401, 404, 426 "open it as a WebSocket").
    if (isTunnel(req)) return app.routing(req, res);
    res.writeHead(404, { 'content-type': 'application/json; charset=utf-8' }).end(NOT_SERVED);
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  // The app's WebSocket support listens for upgrades on its own server: an upgrade here is handed to it as
  // if it had come there, and from then on the socket is the app's.
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (isTunnel(req)) {
      app.server.emit('upgrade', req, socket, head);
      return;
    }
    socket.on('error', () => {});
    socket.end(`HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(NOT_SERVED)}\r\n\r\n${NOT_SERVED}`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new BridgeListenError(opts.host, opts.port, err)));
    server.listen(opts.port, opts.host, () => {
      server.removeAllListeners('error');
      server.on('error', (err) => opts.log.warn({ err }, 'WS-TCP bridge error'));
      resolve();
    });
  });
  const { address, port } = server.address() as AddressInfo;
  const url = `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
  opts.log.info({ url }, 'WS-TCP bridge listening');

  let closed: Promise<void> | undefined;
  return {
    url,
    close: () =>
      (closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      })),
  };
}
