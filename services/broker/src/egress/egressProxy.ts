import { rm } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '@paddock/telemetry';
import type { EgressAllowlist } from './allowlist.js';
import { destinationOf } from './destination.js';

/** How long a connection to an allowed host may take to open before the client is told it failed. */
const UPSTREAM_CONNECT_TIMEOUT_MS = 10_000;

/** Headers meant for the proxy or for one hop only: not passed on to the host. */
const HOP_HEADERS = new Set(['proxy-connection', 'proxy-authorization', 'connection', 'keep-alive', 'te', 'trailer', 'upgrade']);

/** Where a request wants to go, from a CONNECT authority (`host:port`) or an absolute URI. */
function targetOf(authority: string, defaultPort: number): { host: string; port: number } | null {
  try {
    const url = new URL(`http://${authority}`);
    if (url.username || url.password || (url.pathname !== '/' && url.pathname !== '')) return null;
    return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: url.port === '' ? defaultPort : Number(url.port) };
  } catch {
    return null;
  }
}

function refusal(allowlist: EgressAllowlist, host: string, port: number): string {
  return `egress to ${host}:${port} is not allowed; this execution may reach: ${allowlist.describe()}\n`;
}

function rawResponse(status: string, body: string): string {
  return `HTTP/1.1 ${status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

/** A running egress proxy; `close` stops it with every connection it carries and removes its socket. */
export class StartedEgressProxy {
  #closed: Promise<void> | null = null;

  constructor(
    readonly socketPath: string,
    private readonly server: Server,
    private readonly tunnels: Set<Duplex>,
  ) {}

  close(): Promise<void> {
    this.#closed ??= (async () => {
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.server.closeAllConnections();
      for (const socket of this.tunnels) socket.destroy();
      await closed;
      await rm(this.socketPath, { force: true });
    })();
    return this.#closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * An HTTP proxy on a unix socket that lets one execution reach the hosts of its allowlist and nothing
 * else: CONNECT `host:port` (HTTPS, or any TCP) is tunnelled, a request with an absolute URI (plain
 * HTTP) is forwarded. Anything else is answered 403 with a body that names the list, before any
 * connection is attempted. The host names are resolved here, on the broker's host.
 */
export async function startEgressProxy(
  socketPath: string,
  allowlist: EgressAllowlist,
  log: Logger,
  opts: { readonly allowInternal?: boolean } = {},
): Promise<StartedEgressProxy> {
  const allowInternal = opts.allowInternal ?? false;
  const tunnels = new Set<Duplex>();
  const track = (socket: Duplex) => {
    tunnels.add(socket);
    socket.once('close', () => tunnels.delete(socket));
  };

  const forward = async (req: IncomingMessage, res: ServerResponse) => {
    let url: URL | null = null;
    try {
      url = new URL(req.url ?? '');
    } catch {
      url = null;
    }
    if (!url || url.protocol !== 'http:') {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
      res.end('this is an HTTP proxy: send an absolute http:// URI, or CONNECT host:port for HTTPS\n');
      return;
    }
    const target = targetOf(url.host, 80);
    if (!target || !allowlist.allows(target.host, target.port)) {
      const body = refusal(allowlist, target?.host ?? url.host, target?.port ?? 80);
      res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
      res.end(body);
      return;
    }
    const destination = await destinationOf(target.host, allowInternal);
    if ('refused' in destination) {
      res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
      res.end(`egress to ${target.host}:${target.port} is not allowed: ${destination.refused}\n`);
      return;
    }
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(req.headers)) if (value !== undefined && !HOP_HEADERS.has(name)) headers[name] = value;
    const upstream = httpRequest({ host: destination.address, port: target.port, method: req.method, path: `${url.pathname}${url.search}`, headers, timeout: UPSTREAM_CONNECT_TIMEOUT_MS });
    upstream.on('response', (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('timeout', () => upstream.destroy(new Error(`no answer from ${target.host}:${target.port} within ${UPSTREAM_CONNECT_TIMEOUT_MS} ms`)));
    upstream.on('error', (err) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      res.writeHead(502, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
      res.end(`egress to ${target.host}:${target.port} failed: ${err.message}\n`);
    });
    req.pipe(upstream);
  };

  const tunnel = async (req: IncomingMessage, client: Duplex, head: Buffer) => {
    track(client);
    client.on('error', () => client.destroy());
    const target = targetOf(req.url ?? '', 443);
    if (!target || !allowlist.allows(target.host, target.port)) {
      client.end(rawResponse('403 Forbidden', refusal(allowlist, target?.host ?? req.url ?? '', target?.port ?? 443)));
      return;
    }
    const destination = await destinationOf(target.host, allowInternal);
    if ('refused' in destination) {
      client.end(rawResponse('403 Forbidden', `egress to ${target.host}:${target.port} is not allowed: ${destination.refused}\n`));
      return;
    }
    const upstream: Socket = connect({ host: destination.address, port: target.port, timeout: UPSTREAM_CONNECT_TIMEOUT_MS });
    track(upstream);
    upstream.once('timeout', () => upstream.destroy(new Error(`no connection to ${target.host}:${target.port} within ${UPSTREAM_CONNECT_TIMEOUT_MS} ms`)));
    let established = false;
    upstream.once('connect', () => {
      established = true;
      // From here on the timeout would cut a quiet but healthy tunnel.
      upstream.setTimeout(0);
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', (err) => {
      if (!established) {
        if (client.writable) client.end(rawResponse('502 Bad Gateway', `egress to ${target.host}:${target.port} failed: ${err.message}\n`));
      } else {
        client.destroy();
      }
    });
    upstream.on('close', () => client.end());
    client.on('close', () => upstream.destroy());
  };

  const server = createServer((req, res) => void forward(req, res));
  server.on('connect', (req: IncomingMessage, client: Duplex, head: Buffer) => void tunnel(req, client, head));
  server.on('clientError', (err, socket) => {
    log.debug({ err: err.message }, 'egress proxy: a malformed request');
    socket.destroy();
  });
  // A socket left by a broker that died is in the way of listening again.
  await rm(socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return new StartedEgressProxy(socketPath, server, tunnels);
}
