import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { parseArgs, type OptionSpecs } from '../args.js';
import { PaddockClient } from '../client.js';
import { clientConfig, type ClientConfig } from '../clientConfig.js';
import type { Command } from '../command.js';
import type { Context } from '../context.js';
import { ApiError, CommandError, UsageError } from '../errors.js';
import { PortsApi } from './portsApi.js';
import { openTunnel, tunnelConfig } from './tunnel.js';

const OPTIONS = {} as const satisfies OptionSpecs;

/** Only this machine can use a forwarded port: the tunnel carries the owner's credentials. */
const LOCAL_HOST = '127.0.0.1';

/** One `PORT[:LOCAL]` of the command line. */
interface Forward {
  readonly remote: number;
  /** 0: any free port, told once it is taken. */
  readonly local: number;
}

function parseForward(spec: string): Forward {
  const match = /^([0-9]{1,5})(?::([0-9]{1,5}))?$/.exec(spec);
  const remote = Number(match?.[1]);
  const local = match?.[2] === undefined ? remote : Number(match[2]);
  if (!match || remote < 1 || remote > 65535 || local > 65535) {
    throw new UsageError(`"${spec}" is not PORT[:LOCAL]: PORT is a TCP port inside the instance (1-65535), LOCAL one here (0 for any free one)`, 'port-forward');
  }
  return { remote, local };
}

/** The instance, running; otherwise what to tell the user. */
async function ensureRunning(client: PaddockClient, id: string): Promise<void> {
  let state: string;
  try {
    state = (await client.getExecution(id)).state;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) throw new CommandError(`no running instance ${id}`);
    throw err;
  }
  if (state !== 'executing') throw new CommandError(`no running instance ${id}: execution ${id} is ${state}`);
}

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const hint = err.code === 'EADDRINUSE' ? ': it is in use; pick another with PORT:LOCAL, or PORT:0 for any free one' : '';
      reject(new CommandError(`cannot listen on ${LOCAL_HOST}:${port} (${err.code ?? err.message})${hint}`, { cause: err }));
    });
    server.listen(port, LOCAL_HOST, () => {
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : port);
    });
  });
}

/**
 * Carries one local connection through one tunnel: bytes both ways with backpressure (pipe). A WebSocket
 * cannot half-close, so the local client's end of sending is not passed on: the connection ends when the
 * server inside closes its side, or when the local client goes away entirely.
 */
function carry(socket: Socket, tunnel: Duplex): void {
  socket.pipe(tunnel, { end: false });
  tunnel.pipe(socket);
  tunnel.once('error', () => socket.destroy());
  socket.once('error', () => tunnel.destroy());
  socket.once('close', () => tunnel.destroy());
  socket.resume();
}

export const portForward: Command = {
  name: 'port-forward',
  summary: 'forward a local port to a TCP port inside a running instance (like kubectl port-forward)',
  usage: `Usage: paddock port-forward ID PORT[:LOCAL]...

Listens on ${LOCAL_HOST}:LOCAL (default: the same number as PORT; 0 takes any free port) and carries each
connection to 127.0.0.1:PORT inside the running instance of execution ID, through the gateway, whatever
the instance's network. Each connection is a tunnel of its own. Runs until Ctrl-C.

  paddock port-forward ID 8000          # http://127.0.0.1:8000/ reaches the server on port 8000
  paddock port-forward ID 2222:0        # SSH on a free local port (the line printed says which)

Options:
  -h, --help  show this help

Environment:
  PADDOCK_BRIDGE_URL  tunnel through the gateway's WS-TCP bridge (http://HOST:8082) instead of PADDOCK_URL`,

  async run(ctx, argv) {
    const args = parseArgs(argv, OPTIONS, { command: 'port-forward' });
    if (args.help) {
      ctx.stdout.write(`${this.usage}\n`);
      return 0;
    }
    const [id, ...specs] = args.positionals;
    if (id === undefined || specs.length === 0 || args.rest.length > 0) throw new UsageError('give an execution ID and at least one PORT[:LOCAL]', 'port-forward');
    const forwards = specs.map(parseForward);
    const config = await clientConfig(ctx.env);
    const client = new PaddockClient(config);
    await ensureRunning(client, id);
    const tunnels = await tunnelConfig(ctx.env);
    await warnAboutClosedPorts(ctx, config, id, forwards);
    return forwardUntilStopped(ctx, client, tunnels, id, forwards);
  },
};

/** A port nothing listens on yet is no error (the server may start later), but the user should know why connections fail. */
async function warnAboutClosedPorts(ctx: Context, config: ClientConfig, id: string, forwards: readonly Forward[]): Promise<void> {
  // Only a hint: a gateway without the ports API (or one that fails it now) still forwards.
  const listed = await new PortsApi(config).list(id).catch(() => undefined);
  if (listed === undefined) return;
  const open = new Set(listed.map((p) => p.port));
  for (const { remote } of forwards) {
    if (!open.has(remote)) ctx.stderr.write(`paddock: nothing listens on port ${remote} in ${id} yet: connections fail until a server does\n`);
  }
}

async function forwardUntilStopped(ctx: Context, client: PaddockClient, tunnels: ClientConfig, id: string, forwards: readonly Forward[]): Promise<number> {
  const servers: Server[] = [];
  const connections = new Set<Socket>();
  let finish: (status: number | Error) => void = () => {};
  const finished = new Promise<number>((resolve, reject) => {
    finish = (status) => (typeof status === 'number' ? resolve(status) : reject(status));
  });
  const unsubscribe = ctx.interrupts.subscribe(() => finish(0));

  const accept = (forward: Forward, local: number) => (socket: Socket) => {
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
    socket.on('error', () => {});
    openTunnel(tunnels, id, forward.remote).then(
      (tunnel) => {
        if (socket.destroyed) tunnel.destroy();
        else carry(socket, tunnel);
      },
      async (err: unknown) => {
        socket.destroy();
        ctx.stderr.write(`paddock: a connection to ${LOCAL_HOST}:${local} could not reach port ${forward.remote} of ${id}: ${(err as Error).message}\n`);
        // An instance that has ended ends the forwarding, as kubectl does when its pod goes.
        try {
          await ensureRunning(client, id);
        } catch (gone) {
          finish(gone as Error);
        }
      },
    );
  };

  try {
    for (const forward of forwards) {
      // Paused until its tunnel is open, so that nothing the client sends first is lost; half-open, so that
      // a client that stops sending still gets the answer.
      const server = createServer({ pauseOnConnect: true, allowHalfOpen: true });
      servers.push(server);
      const local = await listen(server, forward.local);
      server.on('connection', accept(forward, local));
      ctx.stdout.write(`Forwarding from ${LOCAL_HOST}:${local} -> ${id}:${forward.remote}\n`);
    }
    return await finished;
  } finally {
    unsubscribe();
    for (const server of servers) server.close();
    for (const socket of connections) socket.destroy();
  }
}
