import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { NotFoundError, UnauthorizedError } from '@paddock/errors';
import { OutputStream, type AccessReply } from '@paddock/proto';
import type { Logger } from '@paddock/telemetry';
import { errorResponses } from '../errors.js';
import type { ExecutionService } from '../executions/executionService.js';
import type { ExecutionRow } from '../executions/executionStore.js';
import { idParams } from '../executions/schemas.js';
import type { User, UserStore } from '../users/userStore.js';
import { InstanceUnavailableError, type BrokerDirectory } from './brokers.js';
import { bridgeTerminal } from './terminal.js';
import type { TicketStore } from './ticketStore.js';

export interface InstanceRoutesOptions {
  executions: ExecutionService;
  brokers: BrokerDirectory;
  tickets: TicketStore;
  users: UserStore;
  log: Logger;
}

const STREAM_NAMES: Partial<Record<OutputStream, string>> = {
  [OutputStream.OUTPUT_STREAM_STDOUT]: 'stdout',
  [OutputStream.OUTPUT_STREAM_STDERR]: 'stderr',
};

/**
 * A running execution as a place to join: its SSH details, a terminal over WebSocket, commands run in it.
 * The instance id is the execution id; another user's answers 404 like any execution of theirs.
 */
export const instanceRoutes: FastifyPluginAsync<InstanceRoutesOptions> = async (app, opts) => {
  const { executions, brokers, tickets, users } = opts;

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
        params: idParams,
        response: {
          200: {
            type: 'object',
            properties: { host: { type: 'string' }, port: { type: 'integer' }, username: { type: 'string' }, password: { type: 'string' } },
            required: ['host', 'port', 'username', 'password'],
          },
          ...errorResponses,
        },
      },
    },
    async (req, reply) => {
      const row = await running(req.user, req.params.id);
      const access = await brokers.access(row.brokerId, row.id);
      reply.header('cache-control', 'no-store');
      return { host: access.sshHost, port: access.sshPort, username: access.username, password: access.password };
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

  app.post<{ Params: { id: string }; Body: { cmd: string[]; stdin?: string } }>(
    '/api/v1/instances/:id/exec',
    {
      schema: {
        tags: ['instances'],
        summary: 'Run a command in a running instance as the agent user, in /workspace',
        description:
          'Answers application/x-ndjson as the command runs: {"stream":"stdout"|"stderr","data":"…"} lines, then {"exitCode":N}.',
        params: idParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['cmd'],
          properties: {
            cmd: { type: 'array', minItems: 1, maxItems: 1000, items: { type: 'string', maxLength: 100_000 } },
            stdin: { type: 'string', maxLength: 5_000_000 },
          },
        },
        response: { 200: { description: 'output lines, then the exit code', content: { 'application/x-ndjson': { schema: { type: 'string' } } } }, ...errorResponses },
      },
    },
    async (req, reply) => {
      const row = await running(req.user, req.params.id);
      const abort = new AbortController();
      req.raw.once('close', () => abort.abort());
      const output = brokers.exec(row.brokerId, { executionId: row.id, cmd: req.body.cmd, stdin: Buffer.from(req.body.stdin ?? '', 'utf8') }, abort.signal);
      // The first message tells whether the command runs at all: a refusal is still a proper error answer.
      const first = await output.next();
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
      const write = (out: { stream: OutputStream; data: Buffer | Uint8Array; exitCode?: number | undefined }) => {
        if (out.exitCode !== undefined) res.write(`${JSON.stringify({ exitCode: out.exitCode })}\n`);
        else res.write(`${JSON.stringify({ stream: STREAM_NAMES[out.stream] ?? 'stdout', data: Buffer.from(out.data).toString('utf8') })}\n`);
      };
      try {
        if (!first.done) write(first.value);
        for await (const out of output) write(out);
      } catch (err) {
        res.write(`${JSON.stringify({ error: { code: 'exec_failed', message: (err as Error).message } })}\n`);
      }
      res.end();
    },
  );

  /** A terminal caller: a one-time ticket (browsers) or a bearer token, for this execution only. */
  async function terminalCaller(req: FastifyRequest<{ Params: { id: string }; Querystring: { ticket?: string; cols?: string; rows?: string } }>): Promise<User> {
    const { ticket } = req.query;
    if (ticket !== undefined) {
      const taken = await tickets.take(ticket);
      if (!taken || taken.executionId !== req.params.id) throw new UnauthorizedError('the terminal ticket is not valid (they work once, for 60 s)');
      const user = await users.byId(taken.userId);
      if (!user) throw new UnauthorizedError('the user of this ticket is gone');
      return user;
    }
    const match = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    if (!match) throw new UnauthorizedError('send Authorization: Bearer <token>, or ?ticket= from POST /api/v1/instances/{id}/terminal-ticket');
    const user = await users.byToken(match[1]!);
    if (!user) throw new UnauthorizedError('the bearer token is not valid');
    return user;
  }

  app.get<{ Params: { id: string }; Querystring: { ticket?: string; cols?: string; rows?: string } }>(
    '/terminal/:id',
    {
      websocket: true,
      config: { public: true },
      schema: {
        tags: ['instances'],
        summary: 'WebSocket: a terminal in the instance, in tmux session `agent` (binary frames: bytes; text: {"type":"resize","cols","rows"})',
        params: idParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { ticket: { type: 'string', maxLength: 200 }, cols: { type: 'string', pattern: '^[1-9][0-9]{0,2}$' }, rows: { type: 'string', pattern: '^[1-9][0-9]{0,2}$' } },
        },
      },
      // Authentication and the instance are settled before the upgrade, so a refusal is a plain HTTP answer.
      preValidation: async (req) => {
        const user = await terminalCaller(req);
        req.user = user;
        const row = await running(user, req.params.id);
        (req as FastifyRequest & { access?: AccessReply }).access = await brokers.access(row.brokerId, row.id);
      },
    },
    (socket, req) => {
      const access = (req as FastifyRequest & { access?: AccessReply }).access;
      if (!access) throw new NotFoundError('instance', req.params.id);
      bridgeTerminal(socket, access, {
        executionId: req.params.id,
        log: opts.log,
        ...(req.query.cols ? { cols: Number(req.query.cols) } : {}),
        ...(req.query.rows ? { rows: Number(req.query.rows) } : {}),
      });
    },
  );
};
