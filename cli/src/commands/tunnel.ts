import type { Duplex } from 'node:stream';
import WebSocket, { createWebSocketStream } from 'ws';
import type { Env } from '@paddock/config';
import { parseArgs, type OptionSpecs } from '../args.js';
import { clientConfig, type ClientConfig } from '../clientConfig.js';
import type { Command } from '../command.js';
import { CommandError, UsageError } from '../errors.js';

const OPTIONS = {} as const satisfies OptionSpecs;

/** How long the gateway may take to answer the upgrade (it opens the connection inside first). */
const OPEN_TIMEOUT_MS = 20_000;

/**
 * Where tunnels are opened: the gateway's WS-TCP bridge when PADDOCK_BRIDGE_URL names it (`http://host:8082`,
 * a port of its own that a deployment may expose apart from the API), else the API at PADDOCK_URL. Both serve
 * the same route with the same token.
 */
export async function tunnelConfig(env: Env): Promise<ClientConfig> {
  const config = await clientConfig(env);
  const bridge = env['PADDOCK_BRIDGE_URL'];
  if (bridge === undefined || bridge === '') return config;
  let url: URL;
  try {
    url = new URL(bridge);
  } catch {
    throw new CommandError(`PADDOCK_BRIDGE_URL "${bridge}" is not a URL: give the bridge as http://HOST:PORT`);
  }
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(url.protocol)) throw new CommandError(`PADDOCK_BRIDGE_URL "${bridge}" must be an http, https, ws or wss URL`);
  return Object.freeze({ ...config, baseUrl: bridge.replace(/\/+$/, '') });
}

/**
 * A TCP connection to 127.0.0.1:port inside a running instance, over the gateway's WebSocket tunnel
 * (`WS /api/v1/instances/{id}/tunnel?port=`), as a byte stream with backpressure both ways. Rejects with the
 * gateway's own message when it refuses: "no running instance ID" for an id that is not the caller's or
 * not known, the instance's state when it does not run, "nothing listens on port P" when nothing does.
 */
export function openTunnel(config: ClientConfig, id: string, port: number): Promise<Duplex> {
  const url = `${config.baseUrl.replace(/^http/, 'ws')}/api/v1/instances/${encodeURIComponent(id)}/tunnel?port=${port}`;
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${config.token}` }, handshakeTimeout: OPEN_TIMEOUT_MS });
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      const stream = createWebSocketStream(ws);
      // The reason the gateway gives when it closes with an error (nothing listens any more, the instance ended).
      ws.once('close', (code, reason) => {
        if (code !== 1000 && code !== 1005) stream.destroy(new CommandError(`the tunnel to port ${port} of ${id} closed: ${reason.toString() || `code ${code}`}`));
      });
      resolve(stream);
    });
    let refused = false;
    ws.once('unexpected-response', (_req, res) => {
      refused = true;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        let message = `the gateway answered ${res.statusCode}`;
        let code: string | undefined;
        try {
          const error = (JSON.parse(body) as { error?: { code?: string; message?: string } }).error;
          message = error?.message ?? message;
          code = error?.code;
        } catch {
          // not the API's JSON error
        }
        // The gateway's 404 for an id is "execution X not found" (the bridge's for a wrong path says so itself).
        if (res.statusCode === 404 && code === 'not_found' && message.startsWith('execution ')) reject(new CommandError(`no running instance ${id}`));
        else reject(new CommandError(`cannot open a tunnel to port ${port} of ${id}: ${message}`));
        ws.terminate();
      });
    });
    ws.on('error', (err) => refused || reject(new CommandError(`cannot reach the gateway at ${config.baseUrl}: ${err.message}`, { cause: err })));
  });
}

export const tunnel: Command = {
  name: 'tunnel',
  summary: 'connect stdin and stdout to a TCP port inside a running instance (an SSH ProxyCommand)',
  usage: `Usage: paddock tunnel ID PORT

Connects stdin and stdout to 127.0.0.1:PORT inside the running instance of execution ID, through the gateway,
whatever the instance's network (none included). It ends when the server inside closes the connection;
the end of stdin is not passed on (a WebSocket cannot half-close). Made for OpenSSH's ProxyCommand:

  ssh -o ProxyCommand='npx paddock tunnel ID 2222' agent@ID

Options:
  -h, --help  show this help

Environment:
  PADDOCK_BRIDGE_URL  open tunnels through the gateway's WS-TCP bridge (http://HOST:8082) instead of PADDOCK_URL`,

  async run(ctx, argv) {
    const args = parseArgs(argv, OPTIONS, { command: 'tunnel' });
    if (args.help) {
      ctx.stdout.write(`${this.usage}\n`);
      return 0;
    }
    const [id, portText, ...extra] = args.positionals;
    if (id === undefined || portText === undefined || extra.length > 0 || args.rest.length > 0) throw new UsageError('give an execution ID and a port', 'tunnel');
    const port = Number(portText);
    if (!/^[1-9][0-9]{0,4}$/.test(portText) || port > 65535) throw new UsageError(`"${portText}" is not a TCP port (1-65535)`, 'tunnel');
    const stream = await openTunnel(await tunnelConfig(ctx.env), id, port);
    return new Promise<number>((resolve, reject) => {
      // A WebSocket cannot half-close: closing it at the end of stdin would lose what the server still has
      // to say. The tunnel ends when the server inside closes the connection (or on Ctrl-C).
      ctx.stdin.pipe(stream, { end: false });
      stream.pipe(ctx.stdout, { end: false });
      stream.once('error', (err) => {
        ctx.stdin.unpipe(stream);
        reject(err instanceof CommandError ? err : new CommandError(`the tunnel failed: ${err.message}`, { cause: err }));
      });
      stream.once('end', () => {
        ctx.stdin.unpipe(stream);
        ctx.stdin.pause();
        resolve(0);
      });
    });
  },
};
