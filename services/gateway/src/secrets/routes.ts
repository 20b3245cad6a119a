import type { FastifyPluginAsync } from 'fastify';
import { NotFoundError } from '@paddock/errors';
import { errorResponses } from '../errors.js';
import { requireProjectRole } from '../tenancy/projectAccess.js';
import type { SecretStore } from './secretStore.js';

const NAME = { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]{0,127}$', description: 'an environment variable name' } as const;

const nameParams = { type: 'object', additionalProperties: false, required: ['name'], properties: { name: NAME } } as const;

const projectParams = { type: 'object', additionalProperties: false, required: ['id'], properties: { id: { type: 'string', minLength: 1, maxLength: 64 } } } as const;

const projectNameParams = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'name'],
  properties: { id: { type: 'string', minLength: 1, maxLength: 64 }, name: NAME },
} as const;

const valueBody = { type: 'object', additionalProperties: false, required: ['value'], properties: { value: { type: 'string', maxLength: 65536 } } } as const;

const namesView = {
  type: 'object',
  properties: { items: { type: 'array', items: { type: 'object', properties: { name: { type: 'string' }, updatedAt: { type: 'string' } }, required: ['name', 'updatedAt'] } } },
  required: ['items'],
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
        body: valueBody,
        response: { 204: { type: 'null' }, ...errorResponses },
      },
    },
    async (req, reply) => {
      await secrets.put({ user: req.user.id }, req.params.name, req.body.value);
      return reply.code(204).send();
    },
  );
  app.get(
    '/api/v1/secrets',
    { schema: { tags: ['secrets'], summary: "The names of the caller's secrets", response: { 200: namesView, ...errorResponses } } },
    async (req) => ({ items: (await secrets.list({ user: req.user.id })).map((s) => ({ name: s.name, updatedAt: s.updatedAt.toISOString() })) }),
  );
  app.delete<{ Params: { name: string } }>(
    '/api/v1/secrets/:name',
    { schema: { tags: ['secrets'], summary: 'Delete a secret', params: nameParams, response: { 204: { type: 'null' }, ...errorResponses } } },
    async (req, reply) => {
      if (!(await secrets.delete({ user: req.user.id }, req.params.name))) throw new NotFoundError('secret', req.params.name);
      return reply.code(204).send();
    },
  );
};

/**
 * A project's secrets: set and deleted by its admins, their names listed to its members (who name them in
 * requests), their values never answered. An execution in the project that names one gets it, unless its
 * owner has a secret of that name.
 */
export const projectSecretRoutes: FastifyPluginAsync<{ secrets: SecretStore }> = async (app, { secrets }) => {
  const access = app.projectAccess;
  app.put<{ Params: { id: string; name: string }; Body: { value: string } }>(
    '/api/v1/projects/:id/secrets/:name',
    {
      schema: {
        tags: ['projects'],
        summary: "Set a project's secret (admin); an execution in the project that names it in `secrets` gets it, unless its owner has one of that name",
        params: projectNameParams,
        body: valueBody,
        response: { 204: { type: 'null' }, ...errorResponses },
      },
    },
    async (req, reply) => {
      await requireProjectRole(access, req.principal, req.params.id, 'admin');
      await secrets.put({ project: req.params.id }, req.params.name, req.body.value);
      return reply.code(204).send();
    },
  );
  app.get<{ Params: { id: string } }>(
    '/api/v1/projects/:id/secrets',
    {
      schema: {
        tags: ['projects'],
        summary: "The names of a project's secrets (member)",
        params: projectParams,
        response: { 200: namesView, ...errorResponses },
      },
    },
    async (req) => {
      await requireProjectRole(access, req.principal, req.params.id, 'member');
      return { items: (await secrets.list({ project: req.params.id })).map((s) => ({ name: s.name, updatedAt: s.updatedAt.toISOString() })) };
    },
  );
  app.delete<{ Params: { id: string; name: string } }>(
    '/api/v1/projects/:id/secrets/:name',
    { schema: { tags: ['projects'], summary: "Delete a project's secret (admin)", params: projectNameParams, response: { 204: { type: 'null' }, ...errorResponses } } },
    async (req, reply) => {
      await requireProjectRole(access, req.principal, req.params.id, 'admin');
      if (!(await secrets.delete({ project: req.params.id }, req.params.name))) throw new NotFoundError('secret', req.params.name);
      return reply.code(204).send();
    },
  );
};
