import type { FastifyPluginAsync } from 'fastify';
import { ForbiddenError, NotFoundError } from '@paddock/errors';
import type { TenancyStore } from '../tenancy/tenancyStore.js';
import type { UserStore } from './userStore.js';
import { errorResponses } from '../errors.js';

const userView = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    admin: { type: 'boolean' },
    createdAt: { type: 'string' },
    personalTeamId: { type: 'string', description: 'the team of which the user is the owner from the start' },
    personalProjectId: { type: 'string', description: "where the user's executions go when a request names no project" },
  },
  required: ['id', 'name', 'admin', 'createdAt', 'personalTeamId', 'personalProjectId'],
} as const;

export const userRoutes: FastifyPluginAsync<{ users: UserStore; tenancy: TenancyStore }> = async (app, { users, tenancy }) => {
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

  app.get('/api/v1/users/me', { schema: { tags: ['users'], summary: 'Who the token belongs to', response: { 200: userView, ...errorResponses } } }, async (req) => {
    const personal = await tenancy.personalProjectOf(req.user.id);
    if (!personal) throw new NotFoundError('personal project of user', req.user.id);
    return {
      id: req.user.id,
      name: req.user.name,
      admin: req.user.isAdmin,
      createdAt: req.user.createdAt.toISOString(),
      personalTeamId: personal.teamId,
      personalProjectId: personal.id,
    };
  });
};
