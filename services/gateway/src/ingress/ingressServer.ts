import { createServer, request, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { isDatabaseUnavailable } from '@paddock/db';
import { UnavailableError } from '@paddock/errors';
import type { Logger } from '@paddock/telemetry';
import type { ShareGrant } from '../ports/shareLinks.js';
import { acceptsHtml, mayReach, needsOwner, needsProject, refusal, type Caller } from './access.js';
import { InstanceGoneError, NothingListensError } from './brokerRelays.js';
import { allowedHeaders, checkedTarget, checkedUpgrade } from './edgeAuthz.js';
import {
  cookieValues,
  downstreamHeaders,
  paddockBearer,
  safeNext,
  SESSION_COOKIE,
  SHARE_COOKIE,
  shareParams,
  splitTarget,
  upstreamHeaders,
  upstreamTarget,
  type Target,
} from './forwarding.js';
import { parseIngressHost, type IngressHost } from './ingressHost.js';
import { BAD_GATEWAY, brokerUnavailable, DATABASE_UNAVAILABLE, INTERNAL_ERROR, NOT_FOUND, nothingListens, rawAnswer, sendPage, STARTING, type Page } from './ingressPages.js';
import type { IngressTokens } from './ingressTokens.js';
import type { ClosedPortRoute, PortRoute, RouteTable } from './routeTable.js';
import type { UpstreamPool } from './upstreamPool.js';

/** Where a login ticket is exchanged for a session cookie, on the host it was issued for. */
export const LOGIN_PATH = '/__paddock/login';
/** Paths the ingress keeps for itself on every host: never sent to an instance. */
const RESERVED_PREFIX = '/__paddock/';
/** Owners of instances remembered (an execution's owner never changes); the oldest are forgotten first. */
const OWNER_CACHE_SIZE = 10_000;

export interface IngressServerOptions {
  readonly host: string;
  readonly port: number;
  readonly baseDomain: string;
  /** The routes as the control plane gives them (null until the first arrive). */
  readonly routes: { readonly table: RouteTable | null };
  readonly upstreams: UpstreamPool;
  readonly tokens: IngressTokens;
  /** The id of the user a Paddock user token (pdk_…) belongs to, or null. */
  readonly userOfToken: (token: string) => Promise<string | null>;
  /** The owner of an instance (the execution's), or null when there is no such execution. */
  readonly ownerOf: (instanceId: string) => Promise<string | null>;
  /** Whether the user is a member (any role) of the project the instance runs in: who may reach its `project` ports. */
  readonly inProjectOf: (instanceId: string, userId: string) => Promise<boolean>;
  /** The login page on the gateway's main listener, as browsers reach it (`?to=` is added). */
  readonly loginUrl: string;
  readonly log: Logger;
}

/** What of a request the decision reads. */
interface RequestView {
  readonly method: string;
  /** The request target (path and query). */
  readonly url: string | undefined;
  readonly headers: IncomingHttpHeaders;
  /** It asks for a WebSocket (or other) upgrade. */
  readonly upgrade: boolean;
}

/**
 * What to do with a request: forward it; tell the caller, who may see the instance, that nothing listens
 * on its port; or answer it here.
 */
type Resolution =
  | { readonly kind: 'forward'; readonly route: PortRoute; readonly target: Target }
  | { readonly kind: 'closed'; readonly route: ClosedPortRoute; readonly port: number; readonly target: Target }
  | { readonly kind: 'page'; readonly page: Page }
  | { readonly kind: 'redirect'; readonly location: string; readonly cookie?: string };

/** A request as the decision reads it. */
function viewOf(req: IncomingMessage, upgrade: boolean): RequestView {
  return { method: req.method ?? 'GET', url: req.url, headers: req.headers, upgrade };
}

function setCookie(name: string, value: string, maxAgeS: number): string {
  // Host-only (no Domain): another instance's host never gets it. Lax: sent when the user follows a link here.
  return `${name}=${value}; Path=/; Max-Age=${maxAgeS}; HttpOnly; SameSite=Lax`;
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
 * The ingress's HTTP listener: a request for `{id}-{port}.{baseDomain}` (or `{port}-{id}`) is checked
 * against who may reach that port and relayed there over HTTP/1.1, keep-alive connections pooled per port
 * of an instance, bodies streamed both ways with backpressure, WebSocket (and other) upgrades spliced
 * through. It also serves `/__paddock/login` (a login ticket for a session cookie), turns a share link
 * into a cookie of its host, and answers Envoy's checks (edgeAuthz.ts) with the same decision.
 */
export class IngressServer {
  readonly #server: Server;
  readonly #opts: IngressServerOptions;
  /** Upgraded connections: the HTTP server no longer tracks them, so stop() ends them itself. */
  readonly #spliced = new Set<Duplex>();
  readonly #owners = new Map<string, string>();
  #closed: Promise<void> | undefined;

  private constructor(server: Server, opts: IngressServerOptions) {
    this.#server = server;
    this.#opts = opts;
  }

  static async start(opts: IngressServerOptions): Promise<IngressServer> {
    // No limit on how long a request body may take to arrive: uploads stream through to the instance.
    const server = createServer({ requestTimeout: 0 });
    const ingress = new IngressServer(server, opts);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => ingress.#onRequest(req, res));
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => ingress.#onUpgrade(req, socket, head));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return ingress;
  }

  /** `http://host:port` it listens on. */
  get url(): string {
    const { address, port } = this.#server.address() as AddressInfo;
    return `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** Stops listening and ends every connection, upgraded ones included; idempotent. */
  stop(): Promise<void> {
    return (this.#closed ??= new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
      for (const socket of this.#spliced) socket.destroy();
    }));
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    const html = acceptsHtml(req.headers.accept);
    const checked = checkedTarget(req.url);
    if (checked !== undefined) return this.#check(req, res, checked, html);
    this.#resolve(viewOf(req, false)).then(
      (resolution) => {
        if (resolution.kind === 'forward') this.#forward(req, res, resolution.route, resolution.target, html, false);
        else if (resolution.kind === 'closed') sendPage(res, nothingListens(resolution.route.instanceId, resolution.port), html);
        else this.#answer(res, resolution, html);
      },
      (err: unknown) => {
        const page = this.#unresolved(err, req);
        if (!res.headersSent) sendPage(res, page, html);
        else res.destroy();
      },
    );
  }

  /** What a request is answered when checking it failed: the database away is expected now and then (503), anything else is a bug. */
  #unresolved(err: unknown, req: IncomingMessage): Page {
    if (isDatabaseUnavailable(err)) {
      this.#opts.log.warn({ err: (err as Error).message, host: req.headers.host }, 'ingress: PostgreSQL is away, the caller cannot be checked');
      return DATABASE_UNAVAILABLE;
    }
    this.#opts.log.error({ err, host: req.headers.host, url: req.url }, 'ingress: a request failed');
    return INTERNAL_ERROR;
  }

  /**
   * Envoy's check of a request for `target`: 200 with the headers the request goes on with when the
   * ingress would relay it (or, for a port nothing listens on, let the broker say so, as the route leads
   * there), else the very answer the ingress would give (the login redirect, 404). Envoy takes a 5xx for
   * its own failure, so the ingress's 503s reach the caller as Envoy's.
   */
  #check(req: IncomingMessage, res: ServerResponse, target: string, html: boolean): void {
    const view: RequestView = { method: req.method ?? 'GET', url: target, headers: req.headers, upgrade: checkedUpgrade(req.headers) };
    this.#resolve(view).then(
      (resolution) => {
        if (resolution.kind === 'forward' || resolution.kind === 'closed') {
          const port = resolution.kind === 'forward' ? resolution.route.port : resolution.port;
          res.writeHead(200, { ...allowedHeaders(req.headers, resolution.route.instanceId, port, resolution.target), 'cache-control': 'no-store', 'content-length': '0' });
          res.end();
        } else {
          this.#answer(res, resolution, html);
        }
      },
      (err: unknown) => sendPage(res, this.#unresolved(err, req), html),
    );
  }

  #answer(res: ServerResponse, resolution: Exclude<Resolution, { kind: 'forward' | 'closed' }>, html: boolean): void {
    if (resolution.kind === 'page') {
      sendPage(res, resolution.page, html);
      return;
    }
    res.writeHead(302, {
      location: resolution.location,
      'cache-control': 'no-store',
      'content-length': '0',
      ...(resolution.cookie ? { 'set-cookie': resolution.cookie } : {}),
    });
    res.end();
  }

  /** Where a request goes, or what it is answered, after checking its host and its caller. */
  async #resolve(req: RequestView): Promise<Resolution> {
    const { upgrade } = req;
    const host = parseIngressHost(req.headers.host, this.#opts.baseDomain);
    if (!host) return { kind: 'page', page: NOT_FOUND };
    const target = splitTarget(req.url);
    if (target.path === LOGIN_PATH && !upgrade) return this.#login(host, target, req.headers.host ?? host.hostname);
    if (target.path.startsWith(RESERVED_PREFIX)) return { kind: 'page', page: NOT_FOUND };
    const table = this.#opts.routes.table;
    if (!table) return { kind: 'page', page: STARTING };
    const { method } = req;
    const navigation = (method === 'GET' || method === 'HEAD') && !upgrade;

    const linked = shareParams(target.query).flatMap((token) => {
      const grant = this.#opts.tokens.share(token, host.instanceId, host.port);
      return grant ? [{ token, grant }] : [];
    });
    const link = linked[0];
    if (link && navigation && acceptsHtml(req.headers.accept)) {
      // In a browser the link becomes a cookie of this host, and the token leaves the address bar (and the
      // history); any other client (curl, a script) is let through with the link as it is.
      const maxAgeS = Math.max(1, Math.floor((link.grant.expiresAtMs - Date.now()) / 1000));
      return { kind: 'redirect', location: upstreamTarget(target), cookie: setCookie(SHARE_COOKIE, link.token, maxAgeS) };
    }

    const caller = await this.#caller(req, host, linked.map((l) => l.grant));
    const route = table.match(host.hostname, target.path);
    if (route && route.kind !== 'direct') {
      const port = route.kind === 'port' ? route.port : host.port;
      const owner = needsOwner(route, caller) ? await this.#ownerOf(route.instanceId) : null;
      const inProject = needsProject(route, caller, owner) && (await this.#opts.inProjectOf(route.instanceId, caller.userId!));
      if (mayReach(route, port, caller, owner, inProject)) return route.kind === 'port' ? { kind: 'forward', route, target } : { kind: 'closed', route, port, target };
    }
    if (refusal(caller, { method, acceptsHtml: acceptsHtml(req.headers.accept), upgrade }) === 'login') {
      return { kind: 'redirect', location: this.#loginLocation(`http://${req.headers.host}${target.path}${target.query === '' ? '' : `?${target.query}`}`) };
    }
    return { kind: 'page', page: NOT_FOUND };
  }

  #loginLocation(to: string): string {
    return `${this.#opts.loginUrl}?to=${encodeURIComponent(to)}`;
  }

  /** Every credential the request shows, each checked: a Paddock bearer token, session cookies, share links. */
  async #caller(req: RequestView, host: IngressHost, linked: readonly ShareGrant[]): Promise<Caller> {
    const { tokens } = this.#opts;
    let userId: string | null = null;
    const bearer = paddockBearer(req.headers.authorization);
    // A run token acts as its execution, never as the owner: it opens nothing here (and is not passed on).
    if (bearer?.startsWith('pdk_')) userId = await this.#opts.userOfToken(bearer);
    if (userId === null) {
      for (const value of cookieValues(req, SESSION_COOKIE)) {
        userId = tokens.session(value, host.hostname);
        if (userId !== null) break;
      }
    }
    const shares = [...linked];
    for (const value of cookieValues(req, SHARE_COOKIE)) {
      const grant = tokens.share(value, host.instanceId, host.port);
      if (grant) shares.push(grant);
    }
    return { userId, shares };
  }

  async #ownerOf(instanceId: string): Promise<string | null> {
    const cached = this.#owners.get(instanceId);
    if (cached !== undefined) return cached;
    const owner = await this.#opts.ownerOf(instanceId);
    if (owner !== null) {
      if (this.#owners.size >= OWNER_CACHE_SIZE) this.#owners.delete(this.#owners.keys().next().value!);
      this.#owners.set(instanceId, owner);
    }
    return owner;
  }

  /** `/__paddock/login?ticket=…&next=/path`: the ticket the login page got for this host becomes a session cookie. */
  #login(host: IngressHost, target: Target, hostHeader: string): Resolution {
    const params = new URLSearchParams(target.query);
    const next = safeNext(params.get('next') ?? undefined);
    const userId = this.#opts.tokens.redeemTicket(params.get('ticket') ?? '', host.hostname);
    if (userId === null) {
      return {
        kind: 'page',
        page: {
          status: 400,
          title: 'This login link is not valid',
          text: 'It has been used already, or it has expired: login links work once, within a minute.',
          link: { href: this.#loginLocation(`http://${hostHeader}${next}`), label: 'Log in again' },
        },
      };
    }
    const session = this.#opts.tokens.issueSession(userId, host.hostname);
    return { kind: 'redirect', location: next, cookie: setCookie(SESSION_COOKIE, session.value, session.maxAgeS) };
  }

  /** Relays one HTTP request to the instance and its response back, streaming both ways. */
  #forward(req: IncomingMessage, res: ServerResponse, route: PortRoute, target: Target, html: boolean, retried: boolean): void {
    const upstream = request({
      agent: this.#opts.upstreams.agentFor(route),
      // The Agent's pool key; the connection itself is a relay stream, and Host goes as the caller sent it.
      host: route.instanceId,
      port: route.port,
      setHost: false,
      method: req.method,
      path: upstreamTarget(target),
      headers: upstreamHeaders(req, { remoteAddress: req.socket.remoteAddress, proto: 'http' }),
    });
    let responded = false;
    upstream.on('response', (upRes: IncomingMessage) => {
      responded = true;
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, downstreamHeaders(upRes.rawHeaders, { upgraded: false }));
      upRes.pipe(res);
      upRes.once('error', () => res.destroy());
    });
    upstream.on('error', (err: Error) => {
      if (responded || res.headersSent) {
        res.destroy();
        return;
      }
      // A pooled connection the server inside had just closed: a request without a body is sent again, once.
      if (!retried && upstream.reusedSocket && !hasBody(req) && /ECONNRESET|socket hang up/i.test(`${(err as NodeJS.ErrnoException).code ?? ''} ${err.message}`)) {
        this.#forward(req, res, route, target, html, true);
        return;
      }
      sendPage(res, this.#failure(err, route), html);
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
  }

  /** The page for a relay that could not be used. */
  #failure(err: Error, route: PortRoute): Page {
    if (err instanceof NothingListensError) return nothingListens(route.instanceId, route.port);
    if (err instanceof InstanceGoneError) return NOT_FOUND;
    this.#opts.log.info({ instanceId: route.instanceId, port: route.port, err: err.message }, 'ingress: the relay failed');
    if (err instanceof UnavailableError) return brokerUnavailable(route.instanceId);
    return BAD_GATEWAY;
  }

  #onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    this.#resolve(viewOf(req, true)).then(
      (resolution) => {
        if (resolution.kind === 'forward') this.#forwardUpgrade(req, socket, head, resolution.route, resolution.target);
        else if (resolution.kind === 'closed') {
          const page = nothingListens(resolution.route.instanceId, resolution.port);
          socket.end(rawAnswer(page.status, page.title, page.text));
        } else if (resolution.kind === 'page') socket.end(rawAnswer(resolution.page.status, resolution.page.title, resolution.page.text));
        else socket.end(rawAnswer(404, NOT_FOUND.title, NOT_FOUND.text));
      },
      (err: unknown) => {
        const page = this.#unresolved(err, req);
        socket.end(rawAnswer(page.status, page.title, page.text));
      },
    );
  }

  /** Relays an upgrade (a WebSocket): once the server inside answers 101, the two connections are spliced. */
  #forwardUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, route: PortRoute, target: Target): void {
    const upstream: ClientRequest = request({
      agent: this.#opts.upstreams.agentFor(route),
      host: route.instanceId,
      port: route.port,
      setHost: false,
      method: req.method,
      path: upstreamTarget(target),
      headers: upstreamHeaders(req, { remoteAddress: req.socket.remoteAddress, proto: 'http', upgrade: String(req.headers.upgrade ?? 'websocket') }),
    });
    let upgraded = false;
    upstream.on('upgrade', (upRes: IncomingMessage, upSocket: Duplex, upHead: Buffer) => {
      upgraded = true;
      if (socket.destroyed) {
        upSocket.destroy();
        return;
      }
      socket.write(`HTTP/1.1 ${upRes.statusCode ?? 101} ${upRes.statusMessage ?? 'Switching Protocols'}\r\n${headerLines(downstreamHeaders(upRes.rawHeaders, { upgraded: true }))}\r\n`);
      if (upHead.length > 0) socket.write(upHead);
      if (head.length > 0) upSocket.write(head);
      this.#splice(socket, upSocket);
    });
    upstream.on('response', (upRes: IncomingMessage) => {
      // Refused inside: its answer goes back as it is, delimited by the end of the connection.
      socket.write(`HTTP/1.1 ${upRes.statusCode ?? 502} ${upRes.statusMessage ?? ''}\r\n${headerLines(downstreamHeaders(upRes.rawHeaders, { upgraded: false }))}Connection: close\r\n\r\n`);
      upRes.pipe(socket);
    });
    upstream.on('error', (err: Error) => {
      if (upgraded || socket.destroyed) return;
      const page = this.#failure(err, route);
      socket.end(rawAnswer(page.status, page.title, page.text));
    });
    socket.once('close', () => {
      if (!upgraded) upstream.destroy();
    });
    upstream.end();
  }

  /** Pipes two connections into each other until either closes; backpressure through pipe() both ways. */
  #splice(client: Duplex, inside: Duplex): void {
    this.#spliced.add(client);
    client.pipe(inside);
    inside.pipe(client);
    let done = false;
    const close = () => {
      if (done) return;
      done = true;
      this.#spliced.delete(client);
      client.destroy();
      inside.destroy();
    };
    client.once('close', close);
    inside.once('close', close);
    client.on('error', close);
    inside.on('error', close);
  }
}
