import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { ConflictError, NotFoundError, ValidationError } from '@paddock/errors';
import type { Bus } from '@paddock/bus';
import { view, type Caller, type ExecutionService } from './executionService.js';
import { FINAL_STATES, type ExecutionStore } from './executionStore.js';
import { readOutput } from './logReader.js';
import { refuseUnsafe } from './refusals.js';
import { IDEMPOTENCY_KEY_HEADER, IDEMPOTENCY_KEY_PATTERN } from './idempotencyKeys.js';
import { zipResponse, errorResponses, executionRequestSchema, executionView, idParams, listQuery, listView, type ApiState, type ExecutionRequest } from './schemas.js';

export interface ExecutionRoutesOptions {
  executions: ExecutionService;
  store: ExecutionStore;
  bus: Bus;
  artifactsDir: string;
}

/** The parts shared by /api/v1 and the seed-compatible paths. */
export function executionHandlers({ executions, store, bus, artifactsDir }: ExecutionRoutesOptions) {
  return {
    async logs(caller: Caller, id: string, follow: boolean, reply: FastifyReply) {
      await executions.get(caller, id, 'viewer');
      const stream = await readOutput(bus, id, {
        follow,
        isFinal: async () => {
          const row = await store.get(id, null);
          return row !== null && FINAL_STATES.includes(row.state);
        },
      });
      return reply
        .header('content-type', 'text/plain; charset=utf-8')
        .header('cache-control', 'no-cache')
        .header('x-content-type-options', 'nosniff')
        .send(stream);
    },

    async artifacts(caller: Caller, id: string, reply: FastifyReply) {
      const row = await executions.get(caller, id, 'viewer');
      if (!FINAL_STATES.includes(row.state)) {
        throw new ConflictError(`execution ${id} is ${row.state}: its artifacts exist once it has finished`);
      }
      const path = join(artifactsDir, `${id}.zip`);
      const info = await stat(path).catch(() => null);
      if (!info) throw new NotFoundError('artifacts of execution', id);
      return reply
        .header('content-type', 'application/zip')
        .header('content-length', info.size)
        .header('content-disposition', `attachment; filename="${id}.zip"`)
        .send(createReadStream(path));
    },

    async list(caller: Caller, q: { state?: ApiState; limit?: string; cursor?: string; project?: string }) {
      const limit = q.limit === undefined ? 50 : Number(q.limit);
      if (limit < 1 || limit > 500) throw new ValidationError('limit must be between 1 and 500');
      const rows = await executions.list(caller, {
        limit: limit + 1,
        ...(q.state ? { state: q.state } : {}),
        ...(q.cursor ? { cursor: q.cursor } : {}),
        ...(q.project ? { projectId: q.project } : {}),
      });
      const page = rows.slice(0, limit);
      return { items: page.map(view), nextCursor: rows.length > limit ? page[page.length - 1]!.id : null };
    },
  };
}

/** The header POST /api/v1/executions honours, as the OpenAPI document describes it. */
const idempotencyHeaders = {
  type: 'object',
  properties: {
    [IDEMPOTENCY_KEY_HEADER]: {
      type: 'string',
      pattern: IDEMPOTENCY_KEY_PATTERN,
      description:
        'Makes a retry safe: for 24 h, a request from the same user with the same key and the same body answers 201 with the ' +
        'execution the first one created (and `Idempotent-Replayed: true`) instead of creating another; the same key with another ' +
        'body is 422 idempotency_key_reused. Keys are per user; 1 to 255 printable ASCII characters (a UUID is the usual choice).',
    },
  },
} as const;

export const executionRoutes: FastifyPluginAsync<ExecutionRoutesOptions> = async (app, opts) => {
  const { executions } = opts;
  const h = executionHandlers(opts);

  app.post<{ Body: ExecutionRequest; Headers: { [IDEMPOTENCY_KEY_HEADER]?: string } }>(
    '/api/v1/executions',
    {
      config: { projectToken: true },
      schema: {
        tags: ['executions'],
        summary: 'Run a shell command, a Python script or an agent in a fresh container, in a project; answers at once, with the id',
        headers: idempotencyHeaders,
        body: executionRequestSchema,
        response: { 201: executionView, ...errorResponses },
      },
      // Before the schema, so that asking for a way out of the box is refused with its reason, not as an unknown field.
      preValidation: async (req) => refuseUnsafe(req.body),
    },
    async (req, reply) => {
      const key = req.headers[IDEMPOTENCY_KEY_HEADER];
      if (key === undefined) return reply.code(201).send(view(await executions.create(req.principal, req.body)));
      const { row, replayed } = await executions.createOnce(req.principal, req.body, key);
      // As the first answer was, with a header that tells a replay from a new execution (as Stripe's API does).
      if (replayed) reply.header('idempotent-replayed', 'true');
      return reply.code(201).send(view(row));
    },
  );

  app.get<{ Querystring: { state?: ApiState; limit?: string; cursor?: string; project?: string } }>(
    '/api/v1/executions',
    {
      config: { projectToken: true },
      schema: {
        tags: ['executions'],
        summary: 'The executions of the projects you see (or of one), newest first',
        querystring: listQuery,
        response: { 200: listView, ...errorResponses },
      },
    },
    async (req) => h.list(req.principal, req.query),
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/executions/:id',
    {
      // An execution reads its own state from inside, with its run token (PADDOCK_RUN_TOKEN), while it runs.
      config: { runToken: true, projectToken: true },
      schema: { tags: ['executions'], summary: 'One execution and its state', params: idParams, response: { 200: executionView, ...errorResponses } },
    },
    async (req) => view(req.principal.kind === 'run' ? await executions.getForRun(req.principal) : await executions.get(req.principal, req.params.id, 'viewer')),
  );

  app.post<{ Params: { id: string } }>(
    '/api/v1/executions/:id/cancel',
    {
      config: { projectToken: true },
      schema: {
        tags: ['executions'],
        summary: 'Stop an execution: SIGTERM, a grace period, then SIGKILL; it ends in cancelled (member)',
        params: idParams,
        response: { 202: executionView, ...errorResponses },
      },
    },
    async (req, reply) => reply.code(202).send(view(await executions.cancel(req.principal, req.params.id))),
  );

  app.get<{ Params: { id: string }; Querystring: { follow?: 'true' | 'false' } }>(
    '/api/v1/executions/:id/logs',
    {
      config: { projectToken: true },
      schema: {
        tags: ['executions'],
        summary: 'The output (stdout and stderr, as written); with follow=true, streamed live until the end',
        params: idParams,
        querystring: { type: 'object', additionalProperties: false, properties: { follow: { type: 'string', enum: ['true', 'false'] } } },
        response: { 200: { description: 'the output', content: { 'text/plain': { schema: { type: 'string' } } } }, ...errorResponses },
      },
    },
    async (req, reply) => h.logs(req.principal, req.params.id, req.query.follow === 'true', reply),
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/executions/:id/artifacts.zip',
    {
      config: { projectToken: true },
      schema: {
        tags: ['executions'],
        summary: 'The workspace as it was at the end, as a ZIP',
        params: idParams,
        response: { 200: zipResponse, ...errorResponses },
      },
    },
    async (req, reply) => h.artifacts(req.principal, req.params.id, reply),
  );
};
