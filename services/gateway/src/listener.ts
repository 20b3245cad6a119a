import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describeHealth, type ServiceHealth } from '@paddock/service';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** How soon a client told "starting" should ask again. */
const RETRY_AFTER_S = 2;

/**
 * The gateway's HTTP listener, open from the first moment of its start: while the gateway waits for
 * PostgreSQL or NATS, `/healthz` answers 503 saying what it waits for (rather than the port refusing
 * connections, which tells a person nothing) and every other request 503 with a Retry-After. Once the app
 * is ready, `serve()` hands every request to it, on the same socket: no gap in which the port is closed.
 */
export class GatewayListener {
  readonly #server: Server;
  readonly #health: () => ServiceHealth;
  #app: Handler | undefined;
  #serving = false;
  #closed: Promise<void> | undefined;

  private constructor(server: Server, health: () => ServiceHealth) {
    this.#server = server;
    this.#health = health;
  }

  /** Listens on `host:port` at once; `health` says what the gateway is doing meanwhile. */
  static async open(host: string, port: number, health: () => ServiceHealth): Promise<GatewayListener> {
    const server = createServer();
    const listener = new GatewayListener(server, health);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => listener.#handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return listener;
  }

  get url(): string {
    const { address, port } = this.#server.address() as AddressInfo;
    return `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
  }

  /**
   * For Fastify's `serverFactory`: the app is built on this listener's server (WebSocket upgrades included)
   * and gets its requests once `serve()` is called.
   */
  readonly serverFactory = (handler: Handler): Server => {
    this.#app = handler;
    return this.#server;
  };

  /** From now on every request goes to the app; call it once the app is ready. */
  serve(): void {
    if (this.#app === undefined) throw new Error('no app was built on this listener (pass serverFactory to Fastify)');
    this.#serving = true;
  }

  /** Stops listening; connections that are idle close now, the others when their request ends. */
  close(): Promise<void> {
    return (this.#closed ??= new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeIdleConnections();
    }));
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    if (this.#serving && this.#app !== undefined) {
      this.#app(req, res);
      return;
    }
    const health = this.#health();
    const doing = describeHealth(health);
    const path = (req.url ?? '').split('?')[0];
    // The body is not read: the answer does not depend on it, and the connection closes after it.
    res.setHeader('connection', 'close');
    res.setHeader('retry-after', String(RETRY_AFTER_S));
    res.setHeader('content-type', 'application/json; charset=utf-8');
    if (path === '/healthz') {
      const waitingFor = health.state === 'waiting' ? health.dependency : undefined;
      res.writeHead(503).end(
        JSON.stringify({
          status: 'unavailable',
          message: `the gateway is ${doing}`,
          checks: { gateway: doing },
          ...(waitingFor === undefined ? {} : { waitingFor }),
        }),
      );
      return;
    }
    res.writeHead(503).end(
      JSON.stringify({
        error: { code: 'starting', message: `the gateway is not ready yet (${doing}); try again in a few seconds` },
      }),
    );
  }
}
