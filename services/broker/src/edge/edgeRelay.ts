import { request, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { status } from '@grpc/grpc-js';
import { peerServiceOf, tlsServerOptions, type ServiceTls } from '@paddock/plane';
import type { Logger } from '@paddock/telemetry';
import { LaunchError } from '../lifecycle/launchError.js';
import { PortNotListeningError } from '../relay/errors.js';
import { isUnavailable } from '../unavailable.js';
import { instanceHeaders, responseHeaders, targetOf, type EdgeTarget } from './edgeHeaders.js';
import { acceptsHtml, BAD_GATEWAY, badRequest, NOT_FOUND, nothingListens, rawAnswer, sendPage, UNAVAILABLE, type Page } from './edgePages.js';
import { EdgeUpstreams, type ReachPort } from './edgeUpstreams.js';

/** The one identity that may call the relay: the Envoy in front of Paddock (libs/plane's `edge`). */
const CALLER = 'edge';
/**
 * How long an idle connection from Envoy is kept: longer than Envoy keeps it (services/xds sets 50 s), so
 * that Envoy, not the relay, closes it, and never sends a request on one the relay is closing.
 */
const KEEP_ALIVE_MS = 60_000;

export interface EdgeRelayOptions {
  /** Where it listens; port 0 takes a free one (the heartbeat announces the address). */
  readonly host: string;
  readonly port: number;
  /** The broker's certificate, and the plane's CA a caller's must come from. */
  readonly tls: ServiceTls;
  readonly reachPort: ReachPort;
  readonly log: Logger;
}

export interface StartedEdgeRelay {
  /** `host:port` (`[v6]:port`), as the heartbeat announces it. */
  readonly address: string;
  readonly port: number;
  /** Stops listening and ends every connection, upgraded ones included; idempotent. */
  stop(): Promise<void>;
}

function hasBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');
}

function headerLines(raw: readonly string[]): string {
  let lines = '';
  for (let i = 0; i + 1 < raw.length; i += 2) lines += `${raw[i]}: ${raw[i + 1]}\r\n`;
  return lines;
}

/**
 * The broker's relay for an edge proxy: HTTP/1.1 over mutual TLS from Envoy only. Each request (the
 * target named by its x-paddock-* headers, which the edge routes set) is carried to the port of an
 * instance this broker runs through the same relay as the Relay RPC, a stream into the instance's network
 * namespace: keep-alive connections pooled per port of an instance, bodies streamed with backpressure both
 * ways, upgrades (WebSockets) spliced once the server inside answers 101.
 */
export async function startEdgeRelay(opts: EdgeRelayOptions): Promise<StartedEdgeRelay> {
  const { log } = opts;
  const upstreams = new EdgeUpstreams(opts.reachPort);
  /** Upgraded connections: the HTTP server no longer tracks them, so stop() ends them itself. */
  const spliced = new Set<Duplex>();
  // No limit on how long a request body may take to arrive: uploads stream through to the instance.
  const server: Server = createServer({ ...tlsServerOptions(opts.tls), requestTimeout: 0, keepAliveTimeout: KEEP_ALIVE_MS });
  // Before the HTTP parser reads a byte: any certificate of the plane passes the handshake, only the edge's gets in.
  server.prependListener('secureConnection', (socket: TLSSocket) => {
    const caller = peerServiceOf(socket);
    if (caller === CALLER) return;
    log.warn({ caller: caller ?? null, remote: socket.remoteAddress }, `edge relay: refused ${caller ?? 'a certificate that names no Paddock identity'}; it takes the edge's certificate only`);
    socket.destroy();
  });
  server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
    log.debug({ err: err.message, remote: socket.remoteAddress }, 'edge relay: a TLS handshake failed');
  });

  /** The page for a relay that could not be opened. */
  const failure = (err: unknown, target: EdgeTarget): Page => {
    if (err instanceof PortNotListeningError) return nothingListens(target.instanceId, target.port);
    if (err instanceof LaunchError && err.code === status.NOT_FOUND) return NOT_FOUND;
    if (isUnavailable(err)) {
      log.warn({ err: (err as Error).message, executionId: target.instanceId }, 'edge relay: the instance cannot be checked now');
      return UNAVAILABLE;
    }
    log.info({ err: (err as Error).message, executionId: target.instanceId, port: target.port }, 'edge relay: the relay failed');
    return BAD_GATEWAY;
  };

  const forward = (req: IncomingMessage, res: ServerResponse, target: EdgeTarget, retried: boolean): void => {
    const html = acceptsHtml(req.headers.accept);
    const upstream = request({
      agent: upstreams.agentFor(target.instanceId, target.port),
      // The Agent's pool key; the connection itself is a relay stream, and Host goes as Envoy sent it.
      host: target.instanceId,
      port: target.port,
      setHost: false,
      method: req.method,
      path: target.path,
      headers: instanceHeaders(req),
    });
    let responded = false;
    upstream.on('response', (upRes: IncomingMessage) => {
      responded = true;
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, responseHeaders(upRes.rawHeaders, { upgraded: false }));
      upRes.pipe(res);
      upRes.once('error', () => res.destroy());
    });
    upstream.on('error', (err: Error) => {
      if (responded || res.headersSent) return void res.destroy();
      // A pooled connection the server inside had just closed: a request without a body is sent again, once.
      if (!retried && upstream.reusedSocket && !hasBody(req) && /ECONNRESET|socket hang up/i.test(`${(err as NodeJS.ErrnoException).code ?? ''} ${err.message}`)) {
        return forward(req, res, target, true);
      }
      sendPage(res, failure(err, target), html);
    });
    res.once('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.once('error', () => upstream.destroy());
    if (hasBody(req)) {
      // The head goes now: the server inside may answer before the body comes (or while it streams).
      upstream.flushHeaders();
      req.pipe(upstream);
    } else {
      upstream.end();
    }
  };

  const splice = (client: Duplex, inside: Duplex): void => {
    spliced.add(client);
    client.pipe(inside);
    inside.pipe(client);
    let done = false;
    const close = () => {
      if (done) return;
      done = true;
      spliced.delete(client);
      client.destroy();
      inside.destroy();
    };
    client.once('close', close);
    inside.once('close', close);
    client.on('error', close);
    inside.on('error', close);
  };

  const forwardUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer, target: EdgeTarget): void => {
    const upstream: ClientRequest = request({
      agent: upstreams.agentFor(target.instanceId, target.port),
      host: target.instanceId,
      port: target.port,
      setHost: false,
      method: req.method,
      path: target.path,
      headers: instanceHeaders(req, String(req.headers.upgrade ?? 'websocket')),
    });
    let upgraded = false;
    upstream.on('upgrade', (upRes: IncomingMessage, upSocket: Duplex, upHead: Buffer) => {
      upgraded = true;
      if (socket.destroyed) return void upSocket.destroy();
      socket.write(`HTTP/1.1 ${upRes.statusCode ?? 101} ${upRes.statusMessage ?? 'Switching Protocols'}\r\n${headerLines(responseHeaders(upRes.rawHeaders, { upgraded: true }))}\r\n`);
      if (upHead.length > 0) socket.write(upHead);
      if (head.length > 0) upSocket.write(head);
      splice(socket, upSocket);
    });
    upstream.on('response', (upRes: IncomingMessage) => {
      // Refused inside: its answer goes back as it is, delimited by the end of the connection.
      socket.write(`HTTP/1.1 ${upRes.statusCode ?? 502} ${upRes.statusMessage ?? ''}\r\n${headerLines(responseHeaders(upRes.rawHeaders, { upgraded: false }))}Connection: close\r\n\r\n`);
      upRes.pipe(socket);
    });
    upstream.on('error', (err: Error) => {
      if (upgraded || socket.destroyed) return;
      socket.end(rawAnswer(failure(err, target)));
    });
    socket.once('close', () => {
      if (!upgraded) upstream.destroy();
    });
    upstream.end();
  };

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const target = targetOf(req);
    if (typeof target === 'string') sendPage(res, badRequest(target), acceptsHtml(req.headers.accept));
    else forward(req, res, target, false);
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const target = targetOf(req);
    if (typeof target === 'string') socket.end(rawAnswer(badRequest(target)));
    else forwardUpgrade(req, socket, head, target);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err: unknown) => {
    upstreams.destroy();
    throw new EdgeRelayListenError(opts.host, opts.port, { cause: err });
  });
  const { port } = server.address() as AddressInfo;
  const address = opts.host.includes(':') ? `[${opts.host}]:${port}` : `${opts.host}:${port}`;
  let stopped: Promise<void> | undefined;
  return {
    address,
    port,
    stop: () =>
      (stopped ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        for (const socket of spliced) socket.destroy();
        upstreams.destroy();
      })),
  };
}

/** The relay cannot listen where it is told to. */
export class EdgeRelayListenError extends Error {
  constructor(host: string, port: number, options: { cause: unknown }) {
    super(`the edge relay cannot listen on ${host}:${port} (PADDOCK_BROKER_RELAY_HOST, PADDOCK_BROKER_RELAY_PORT): ${(options.cause as Error).message}`, options);
    this.name = 'EdgeRelayListenError';
  }
}
