import type { FastifyPluginAsync } from 'fastify';
import { ValidationError } from '@paddock/errors';
import { view } from './executionService.js';
import { executionHandlers, type ExecutionRoutesOptions } from './routes.js';
import { errorResponses, executionView, idParams, listView, zipResponse } from './schemas.js';

/** The first API's paths, kept for the clients written against it. */
export const compatRoutes: FastifyPluginAsync<ExecutionRoutesOptions> = async (app, opts) => {
  const h = executionHandlers(opts);
  app.post<{ Body: { command?: string; script?: string; prompt?: string; image?: string; timeoutS?: number; env?: Record<string, string> } }>(
    '/schedule',
    {
      schema: {
        tags: ['compat'],
        summary: 'Schedule {command}, {script} or {prompt} (the default agent runtime); same answer as POST /api/v1/executions',
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            command: { type: 'string', minLength: 1 },
            script: { type: 'string', minLength: 1 },
            prompt: { type: 'string', minLength: 1 },
            image: { type: 'string', minLength: 1 },
            timeoutS: { type: 'integer', minimum: 1 },
            env: { type: 'object', additionalProperties: { type: 'string' } },
          },
        },
        response: { 201: executionView, ...errorResponses },
      },
    },
    async (req, reply) => {
      const { command, script, prompt, ...rest } = req.body;
      const given = [command, script, prompt].filter((x) => x !== undefined).length;
      if (given !== 1) throw new ValidationError('send exactly one of "command", "script" or "prompt"');
      const body =
        command !== undefined ? { kind: 'shell' as const, command, ...rest }
        : script !== undefined ? { kind: 'python' as const, script, ...rest }
        : { kind: 'agent' as const, prompt: prompt!, ...rest };
      return reply.code(201).send(view(await opts.executions.create(req.user, body)));
    },
  );
  app.get<{ Params: { id: string } }>('/status/:id', { schema: { tags: ['compat'], params: idParams, response: { 200: executionView, ...errorResponses } } }, async (req) =>
    view(await opts.executions.get(req.user, req.params.id, 'viewer')),
  );
  app.get('/jobs', { schema: { tags: ['compat'], response: { 200: listView, ...errorResponses } } }, async (req) => h.list(req.user, {}));
  app.post<{ Params: { id: string } }>('/cancel/:id', { schema: { tags: ['compat'], params: idParams, response: { 202: executionView, ...errorResponses } } }, async (req, reply) =>
    reply.code(202).send(view(await opts.executions.cancel(req.user, req.params.id))),
  );
  app.get<{ Params: { id: string } }>('/download/:id', { schema: { tags: ['compat'], params: idParams, response: { 200: zipResponse, ...errorResponses } } }, async (req, reply) =>
    h.artifacts(req.user, req.params.id, reply),
  );
};
