import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest, FastifySchema, RouteOptions } from 'fastify';
import { NotFoundError, PaddockError } from '@paddock/errors';
import { OutputStream, type AccessReply, type ExecOutput } from '@paddock/proto';
import type { Logger } from '@paddock/telemetry';
import { errorBody, errorResponses } from '../errors.js';
import type { ExecutionService } from '../executions/executionService.js';
import type { ExecutionRow } from '../executions/executionStore.js';
import { RequestTooLargeError } from '../executions/requestSize.js';
import { idParams } from '../executions/schemas.js';
import type { User } from '../users/userStore.js';
import { InstanceUnavailableError, type BrokerDirectory } from './brokers.js';
import { ExecLines, type StreamName } from './execLines.js';
import { bridgeTerminal } from './terminal.js';
import { bridgeTunnel } from './tunnel.js';
import type { TicketStore } from './ticketStore.js';

export interface InstanceRoutesOptions {
  executions: ExecutionService;
  brokers: BrokerDirectory;
  tickets: TicketStore;
  log: Logger;
}

const STREAM_NAMES: Partial<Record<OutputStream, StreamName>> = {
  [OutputStream.OUTPUT_STREAM_STDOUT]: 'stdout',
  [OutputStream.OUTPUT_STREAM_STDERR]: 'stderr',
};

/**
 * The most an exec's command and stdin may take together: they travel in one gRPC message to the broker,
 * whose limit is 4 MiB, and the command line itself is bounded by the kernel's (2 MiB for all arguments).
 */
export const EXEC_INPUT_MAX_BYTES = 1024 * 1024;

/** Where sshd listens inside every agent and service (Paddock's base image, unprivileged, above 1024). */
export const INSTANCE_SSH_PORT = 2222;

/** How the owner's own OpenSSH client reaches an instance: through `paddock tunnel`, over the gateway's tunnel route. */
export function sshCommand(id: string, username: string): { proxyCommand: string; command: string } {
  const proxyCommand = `npx paddock tunnel ${id} ${INSTANCE_SSH_PORT}`;
  return { proxyCommand, command: `ssh -o ProxyCommand='${proxyCommand}' -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null ${username}@${id}` };
}

/** Resolves when `res` can take more (its buffer drained) or is gone. */
function writable(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done).off('close', done);
      resolve();
    };
    res.once('drain', done).once('close', done);
  });
}

/** A WebSocket route asked with plain HTTP: which is refused before anything is opened for it. */
export class UpgradeRequiredError extends PaddockError {
  constructor(path: string) {
    super('upgrade_required', 426, `${path} is a WebSocket: open it with "Connection: Upgrade" and "Upgrade: websocket"`);
  }
}

/** Refuses a request to a WebSocket route that does not ask for the upgrade (426, as RFC 9110 says). */
function upgradeOnly(req: FastifyRequest, reply: FastifyReply): void {
  if (req.ws) return;
  reply.header('upgrade', 'websocket');
  throw new UpgradeRequiredError(req.url.split('?')[0]!);
}

/** The HTTP handler of a WebSocket route: never reached, since upgradeOnly refuses plain requests first. */
async function notUpgraded(req: FastifyRequest): Promise<never> {
  throw new UpgradeRequiredError(req.url.split('?')[0]!);
}

/** The answers of a WebSocket route: 101 when it opens, and each refusal, a plain HTTP answer, with why. */
function webSocketResponses(refusals: Record<400 | 401 | 404 | 409, string>) {
  const refused = (description: string) => ({ ...errorBody, description });
  return {
    101: { type: 'null', description: 'Switching Protocols: the WebSocket is open' },
    ...Object.fromEntries(Object.entries(refusals).map(([status, why]) => [status, refused(why)])),
    426: refused('the request did not ask for a WebSocket upgrade'),
    ...errorResponses,
  };
}

/** The handshake a WebSocket route needs (RFC 6455), for the OpenAPI document only: the ws server checks it. */
const UPGRADE_HEADERS = {
  type: 'object',
  required: ['connection', 'upgrade', 'sec-websocket-key', 'sec-websocket-version'],
  properties: {
    connection: { type: 'string', enum: ['Upgrade'] },
    upgrade: { type: 'string', enum: ['websocket'] },
    'sec-websocket-key': { type: 'string', description: '16 random bytes, base64 (RFC 6455)' },
    'sec-websocket-version': { type: 'string', enum: ['13'] },
  },
} as const;

/**
 * The OpenAPI operation of a WebSocket route (one with a wsHandler) is a GET that asks for the upgrade: its
 * handshake headers are written into the document, not into the route's schema, so that a plain GET gets
 * 426 from the route rather than a 400 about headers.
 */
export function documentWebSocket(schema: FastifySchema, route: Pick<RouteOptions, 'wsHandler'>): FastifySchema {
  return route.wsHandler ? { ...schema, headers: UPGRADE_HEADERS } : schema;
}

/**
 * A running execution as a place to join: its SSH details, a terminal over WebSocket, commands run in it.
 * The instance id is the execution id; another user's answers 404 like any execution of theirs.
 */
export const instanceRoutes: FastifyPluginAsync<InstanceRoutesOptions> = async (app, opts) => {
  const { executions, brokers, tickets } = opts;

  async function running(user: User, id: string): Promise<ExecutionRow & { brokerId: string }> {
    const row = await executions.get(user, id);
    if (row.state !== 'executing' || !row.brokerId) {
      throw new InstanceUnavailableError(`execution ${id} is ${row.state}: only a running instance can be joined`);
    }
    return row as ExecutionRow & { brokerId: string };
  }

  app.get<{ Params: { id: string } }>(
    '/api/v1/instances/:id/ssh',
    {
      schema: {
        tags: ['instances'],
        summary: "SSH details of a running agent or service (owner only); the password dies with the instance",
        description:
          'sshd listens on port 2222 inside the instance and is reached through WS /api/v1/instances/{id}/tunnel?port=2222, ' +
          'whatever the instance\'s network: `command` is an OpenSSH command line that goes through `paddock tunnel`. ' +
          'No port of an instance is published on a host.',
        params: idParams,
        response: {
          200: {
            type: 'object',
            properties: {
              username: { type: 'string' },
              password: { type: 'string' },
              tunnelPath: { type: 'string' },
              proxyCommand: { type: 'string' },
              command: { type: 'string' },
            },
            required: ['username', 'password', 'tunnelPath', 'proxyCommand', 'command'],
          },
          ...errorResponses,
        },
      },
    },
    async (req, reply) => {
      const row = await running(req.user, req.params.id);
      const access = await brokers.access(row.brokerId, row.id);
      reply.header('cache-control', 'no-store');
      return {
        username: access.username,
        password: access.password,
        tunnelPath: `/api/v1/instances/${row.id}/tunnel?port=${INSTANCE_SSH_PORT}`,
        ...sshCommand(row.id, access.username),
      };
    },
  );

  app.post<{ Params: { id: string } }>(
    '/api/v1/instances/:id/terminal-ticket',
    {
      schema: {
        tags: ['instances'],
        summary: 'A one-time ticket (valid 60 s unless PADDOCK_TERMINAL_TICKET_TTL_MS says otherwise) to open WS /terminal/{id}?ticket=… from a browser',
        params: idParams,
        response: {
          201: {
            type: 'object',
            properties: { ticket: { type: 'string' }, expiresAt: { type: 'string' }, path: { type: 'string' } },
            required: ['ticket', 'expiresAt', 'path'],
          },
          ...errorResponses,
        },
      },
    },
    async (req, reply) => {
      const row = await running(req.user, req.params.id);
      const { ticket, expiresAt } = await tickets.issue(row.id, req.user.id);
      return reply.code(201).header('cache-control', 'no-store').send({ ticket, expiresAt: expiresAt.toISOString(), path: `/terminal/${row.id}?ticket=${ticket}` });
    },
  );

  app.post<{ Params: { id: string }; Querystring: { encoding?: 'utf8' | 'base64' }; Body: { cmd: string[]; stdin?: string } }>(
    '/api/v1/instances/:id/exec',
    {
      schema: {
        tags: ['instances'],
        summary: 'Run a command in a running instance as the agent user, in /workspace',
        description:
          'Answers application/x-ndjson as the command runs: {"stream":"stdout"|"stderr","data":"…"} lines, then {"exitCode":N}. ' +
          'With encoding=utf8 (the default) data is text and a character is never split across two lines (bytes that are not UTF-8 become U+FFFD); ' +
          'with encoding=base64 data is the bytes, base64-encoded. The command and stdin may take 1 MiB together. ' +
          'A client that reads slowly slows the command down; one that goes away stops it.',
        params: idParams,
        querystring: { type: 'object', additionalProperties: false, properties: { encoding: { type: 'string', enum: ['utf8', 'base64'] } } },
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['cmd'],
          properties: {
            cmd: { type: 'array', minItems: 1, maxItems: 1000, items: { type: 'string', maxLength: 100_000 } },
            stdin: { type: 'string' },
          },
        },
        response: { 200: { description: 'output lines, then the exit code', content: { 'application/x-ndjson': { schema: { type: 'string' } } } }, ...errorResponses },
      },
    },
    async (req, reply) => {
      const stdin = Buffer.from(req.body.stdin ?? '', 'utf8');
      const inputBytes = stdin.length + req.body.cmd.reduce((n, arg) => n + Buffer.byteLength(arg) + 1, 0);
      if (inputBytes > EXEC_INPUT_MAX_BYTES) {
        throw new RequestTooLargeError(`the command and stdin take ${inputBytes} bytes, more than the ${EXEC_INPUT_MAX_BYTES} (1 MiB) an exec may take; put large input in a file of the workspace instead`, inputBytes, EXEC_INPUT_MAX_BYTES);
      }
      const row = await running(req.user, req.params.id);
      const res = reply.raw;
      const abort = new AbortController();
      // The request was read in full before this handler ran, so only the response tells that the caller left;
      // cancelling the gRPC call makes the broker kill the command.
      const onClose = () => {
        if (!res.writableFinished) abort.abort();
      };
      res.once('close', onClose);
      const output = brokers.exec(row.brokerId, { executionId: row.id, cmd: req.body.cmd, stdin }, abort.signal);
      // The first message tells whether the command runs at all: a refusal is still a proper error answer.
      let first: IteratorResult<ExecOutput, void>;
      try {
        first = await output.next();
      } catch (err) {
        res.off('close', onClose);
        throw err;
      }
      reply.hijack();
      res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
      const lines = new ExecLines(req.query.encoding ?? 'utf8');
      // Waiting for the socket to drain holds the loop, which stops pulling from the gRPC stream: HTTP/2 flow
      // control then holds the broker, and the broker the command, so a slow reader slows the command down.
      const send = async (text: string) => {
        if (text !== '' && !res.destroyed && !res.write(text)) await writable(res);
      };
      const handle = (out: ExecOutput) =>
        send(out.exitCode !== undefined ? lines.end(out.exitCode) : lines.output(STREAM_NAMES[out.stream] ?? 'stdout', out.data));
      try {
        if (!first.done) {
          await handle(first.value);
          for await (const out of output) {
            if (abort.signal.aborted) break;
            await handle(out);
          }
        }
      } catch (err) {
        await send(lines.end(undefined));
        await send(`${JSON.stringify({ error: { code: 'exec_failed', message: (err as Error).message } })}\n`);
      } finally {
        res.off('close', onClose);
        res.end();
      }
    },
  );

  app.route<{ Params: { id: string }; Querystring: { ticket?: string; cols?: string; rows?: string } }>({
    method: 'GET',
    url: '/terminal/:id',
    config: { terminalTicket: true },
    schema: {
      tags: ['instances'],
      summary: 'WebSocket: a terminal in the instance, in tmux session `agent`',
      description:
        'SSH into the instance over the broker\'s relay to its port 2222, landing in tmux session `agent` (every viewer in the same one). ' +
        'Output comes as binary frames. From the client, a text frame {"type":"resize","cols":C,"rows":R} resizes; every other frame, binary or text, is input. ' +
        'A slow viewer pauses the session (above 1 MiB not yet written to its socket) instead of the gateway buffering. ' +
        'Frames from the client may take 1 MiB each.',
      params: idParams,
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: {
          ticket: { type: 'string', maxLength: 200 },
          cols: { type: 'string', pattern: '^[1-9][0-9]{0,2}$', description: 'the terminal\'s width at the start' },
          rows: { type: 'string', pattern: '^[1-9][0-9]{0,2}$', description: 'the terminal\'s height at the start' },
        },
      },
      response: webSocketResponses({
        400: 'a query parameter is malformed',
        401: 'no valid token or ticket',
        404: 'no such instance, or another user\'s',
        409: 'the instance is not running (only a running instance can be joined)',
      }),
    },
    // The instance is settled before the upgrade (the caller was in onRequest), so a refusal is a plain HTTP answer.
    preValidation: async (req, reply) => {
      upgradeOnly(req, reply);
      const row = await running(req.user, req.params.id);
      (req as FastifyRequest & { access?: AccessReply }).access = await brokers.access(row.brokerId, row.id);
      (req as FastifyRequest & { brokerId?: string }).brokerId = row.brokerId;
    },
    wsHandler: (socket, req) => {
      const access = (req as FastifyRequest & { access?: AccessReply }).access;
      const brokerId = (req as FastifyRequest & { brokerId?: string }).brokerId;
      if (!access || !brokerId) throw new NotFoundError('instance', req.params.id);
      const connect = () => brokers.relay(brokerId, req.params.id, INSTANCE_SSH_PORT);
      bridgeTerminal(socket, { username: access.username, password: access.password, connect }, {
        executionId: req.params.id,
        log: opts.log,
        ...(req.query.cols ? { cols: Number(req.query.cols) } : {}),
        ...(req.query.rows ? { rows: Number(req.query.rows) } : {}),
      });
    },
    handler: notUpgraded,
  });

  app.route<{ Params: { id: string }; Querystring: { port: string; ticket?: string } }>({
    method: 'GET',
    url: '/api/v1/instances/:id/tunnel',
    config: { terminalTicket: true },
    schema: {
      tags: ['instances'],
      summary: 'WebSocket: a raw TCP connection to 127.0.0.1:{port} inside a running instance (owner only)',
      description:
        'Reaches the port inside the instance\'s own network namespace (the broker\'s relay), whatever its network. ' +
        'Every client frame, binary or text, is bytes for the server inside; its bytes come back as binary frames. ' +
        'The server closing its side closes the socket (1000) after the last byte; the client closing it half-closes the connection inside. ' +
        'A slow client pauses the relay (above 1 MiB not yet written to its socket), and a slow server the socket.',
      params: idParams,
      querystring: {
        type: 'object',
        additionalProperties: false,
        required: ['port'],
        properties: { port: { type: 'string', pattern: '^[1-9][0-9]{0,4}$', description: 'a TCP port, 1-65535' }, ticket: { type: 'string', maxLength: 200 } },
      },
      response: webSocketResponses({
        400: 'no port, or one outside 1-65535',
        401: 'no valid token or ticket',
        404: 'no such instance, or another user\'s',
        409: 'the instance is not running, or nothing listens on the port ("nothing listens on port P in execution X")',
      }),
    },
    // Who asks was settled in onRequest (401); then the instance (404 for another user's), the port (400),
    // and the connection itself (409 when nothing listens), all before the upgrade: a refusal is plain HTTP.
    preValidation: async (req, reply) => {
      upgradeOnly(req, reply);
      (req as FastifyRequest & { brokerId?: string }).brokerId = (await running(req.user, req.params.id)).brokerId;
    },
    preHandler: async (req) => {
      const port = Number(req.query.port);
      if (port > 65535) throw new PaddockError('invalid_request', 400, `port ${req.query.port} is not a TCP port (1-65535)`);
      const brokerId = (req as FastifyRequest & { brokerId?: string }).brokerId!;
      const relay = await brokers.relay(brokerId, req.params.id, port);
      // A client that leaves before the upgrade completes leaves no relay open.
      req.raw.socket.once('close', () => relay.destroy());
      (req as FastifyRequest & { relay?: Duplex }).relay = relay;
    },
    wsHandler: (socket, req) => {
      const relay = (req as FastifyRequest & { relay?: Duplex }).relay;
      if (!relay) throw new NotFoundError('instance', req.params.id);
      bridgeTunnel(socket, relay, { executionId: req.params.id, port: Number(req.query.port), log: opts.log });
    },
    handler: notUpgraded,
  });
};
