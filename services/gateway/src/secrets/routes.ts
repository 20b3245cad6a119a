import type { FastifyPluginAsync } from 'fastify';
import { NotFoundError } from '@paddock/errors';
import { errorResponses } from '../errors.js';
import type { SecretStore } from './secretStore.js';

const nameParams = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: { name: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]{0,127}$', description: 'an environment variable name' } },
} as const;

/** A user's own secrets: set, list (names only), delete. Values are never answered. */
export const secretRoutes: FastifyPluginAsync<{ secrets: SecretStore }> = async (app, { secrets }) => {
  app.put<{ Params: { name: string }; Body: { value: string } }>(
    '/api/v1/secrets/:name',
    {
      schema: {
        tags: ['secrets'],
        summary: "Set a secret; an execution of this user that names it in `secrets` gets it as an environment variable of that name",
        params: nameParams,
        body: { type: 'object', additionalProperties: false, required: ['value'], properties: { value: { type: 'string', maxLength: 65536 } } },
        response: { 204: { type: 'null' }, ...errorResponses },
      },
    },
    async (req, reply) => {
      await secrets.put(req.user.id, req.params.name, req.body.value);
      return reply.code(204).send();
    },
  );
  app.get(
    '/api/v1/secrets',
    {
      schema: {
        tags: ['secrets'],
        summary: "The names of the caller's secrets",
        response: {
          200: {
            type: 'object',
            properties: { items: { type: 'array', items: { type: 'object', properties: { name: { type: 'string' }, updatedAt: { type: 'string' } }, required: ['name', 'updatedAt'] } } },
            required: ['items'],
          },
          ...errorResponses,
        },
      },
    },
    async (req) => ({ items: (await secrets.list(req.user.id)).map((s) => ({ name: s.name, updatedAt: s.updatedAt.toISOString() })) }),
  );
  app.delete<{ Params: { name: string } }>(
    '/api/v1/secrets/:name',
    { schema: { tags: ['secrets'], summary: 'Delete a secret', params: nameParams, response: { 204: { type: 'null' }, ...errorResponses } } },
    async (req, reply) => {
      if (!(await secrets.delete(req.user.id, req.params.name))) throw new NotFoundError('secret', req.params.name);
      return reply.code(204).send();
    },
  );
};
