import type { Duplex } from 'node:stream';
import WebSocket, { createWebSocketStream } from 'ws';
import { parseArgs, type OptionSpecs } from '../args.js';
import { clientConfig, type ClientConfig } from '../clientConfig.js';
import type { Command } from '../command.js';
import { CommandError, UsageError } from '../errors.js';

const OPTIONS = {} as const satisfies OptionSpecs;

/** How long the gateway may take to answer the upgrade (it opens the connection inside first). */
const OPEN_TIMEOUT_MS = 20_000;

/**
 * A TCP connection to 127.0.0.1:port inside a running instance, over the gateway's WebSocket tunnel
 * (`WS /api/v1/instances/{id}/tunnel?port=`), as a byte stream with backpressure both ways. Rejects with the
 * gateway's own message when it refuses (not the owner, not running, nothing listening on the port).
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
        try {
          message = (JSON.parse(body) as { error?: { message?: string } }).error?.message ?? message;
        } catch {
          // not the API's JSON error
        }
        reject(new CommandError(`cannot open a tunnel to port ${port} of ${id}: ${message}`));
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
  -h, --help  show this help`,

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
    const stream = await openTunnel(await clientConfig(ctx.env), id, port);
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
