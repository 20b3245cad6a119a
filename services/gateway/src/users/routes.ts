import type { FastifyPluginAsync } from 'fastify';
import { ForbiddenError } from '@paddock/errors';
import type { UserStore } from './userStore.js';
import { errorResponses } from '../errors.js';

const userView = {
  type: 'object',
  properties: { id: { type: 'string' }, name: { type: 'string' }, admin: { type: 'boolean' }, createdAt: { type: 'string' } },
  required: ['id', 'name', 'admin', 'createdAt'],
} as const;

export const userRoutes: FastifyPluginAsync<{ users: UserStore }> = async (app, { users }) => {
  app.post<{ Body: { name: string } }>(
    '/api/v1/users',
    {
      schema: {
        tags: ['users'],
        summary: 'Create a user (admin only); the token is shown only in this answer',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name'],
          properties: { name: { type: 'string', minLength: 1, maxLength: 100, pattern: '\\S' } },
        },
        response: {
          201: { type: 'object', properties: { id: { type: 'string' }, name: { type: 'string' }, token: { type: 'string' } }, required: ['id', 'name', 'token'] },
          ...errorResponses,
        },
      },
    },
    async (req, reply) => {
      if (!req.user.isAdmin) throw new ForbiddenError('only an admin may create users');
      const { user, token } = await users.create(req.body.name.trim());
      return reply.code(201).send({ id: user.id, name: user.name, token });
    },
  );

  app.get('/api/v1/users/me', { schema: { tags: ['users'], summary: 'Who the token belongs to', response: { 200: userView, ...errorResponses } } }, async (req) => ({
    id: req.user.id,
    name: req.user.name,
    admin: req.user.isAdmin,
    createdAt: req.user.createdAt.toISOString(),
  }));
};
