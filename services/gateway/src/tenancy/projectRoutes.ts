import type { FastifyPluginAsync } from 'fastify';
import { NotFoundError } from '@paddock/errors';
import { errorResponses } from '../errors.js';
import { requireProjectRole, requireTeamRole } from './projectAccess.js';
import { PROJECT_TOKEN_ROLES, type ProjectToken, type ProjectTokenRole, type ProjectTokenStore } from './projectTokens.js';
import { ID_SCHEMA, idParams, NAME_SCHEMA, projectView, projectViewSchema } from './schemas.js';
import type { TenancyStore } from './tenancyStore.js';

/** The longest a project token may last: ten years, in seconds. */
export const PROJECT_TOKEN_MAX_S = 10 * 366 * 24 * 3600;

const tokenViewSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    projectId: { type: 'string' },
    name: { type: 'string' },
    role: { type: 'string', enum: PROJECT_TOKEN_ROLES },
    createdBy: { type: 'string', description: 'the user who made it, who owns the executions it creates' },
    createdAt: { type: 'string' },
    expiresAt: { type: ['string', 'null'], description: 'null: until revoked' },
  },
  required: ['id', 'projectId', 'name', 'role', 'createdBy', 'createdAt', 'expiresAt'],
} as const;

const tokenParams = { type: 'object', additionalProperties: false, required: ['id', 'tokenId'], properties: { id: ID_SCHEMA, tokenId: ID_SCHEMA } } as const;

function tokenView(t: ProjectToken) {
  return { id: t.id, projectId: t.projectId, name: t.name, role: t.role, createdBy: t.createdBy, createdAt: t.createdAt.toISOString(), expiresAt: t.expiresAt?.toISOString() ?? null };
}

/**
 * Projects and their tokens. Whoever sees a project (its team's members, a token of its own) reads it;
 * its admins rename it and manage its tokens; its owners delete it.
 */
export const projectRoutes: FastifyPluginAsync<{ tenancy: TenancyStore; tokens: ProjectTokenStore }> = async (app, { tenancy, tokens }) => {
  app.get<{ Querystring: { team?: string } }>(
    '/api/v1/projects',
    {
      config: { projectToken: true },
      schema: {
        tags: ['projects'],
        summary: 'The projects the caller sees, with its role in each (a project token: its own)',
        querystring: { type: 'object', additionalProperties: false, properties: { team: { ...ID_SCHEMA, description: "one team's projects only" } } },
        response: { 200: { type: 'object', properties: { items: { type: 'array', items: projectViewSchema } }, required: ['items'] }, ...errorResponses },
      },
    },
    async (req) => {
      const visible = await tenancy.visibleProjects(req.principal);
      const projects = await tenancy.projects(visible === null ? null : [...visible.keys()], req.query.team);
      return { items: projects.map((p) => projectView(p, visible?.get(p.id) ?? 'owner')) };
    },
  );

  app.post<{ Body: { teamId: string; name: string } }>(
    '/api/v1/projects',
    {
      schema: {
        tags: ['projects'],
        summary: 'Make a project in a team (admin of the team)',
        body: { type: 'object', additionalProperties: false, required: ['teamId', 'name'], properties: { teamId: ID_SCHEMA, name: NAME_SCHEMA } },
        response: { 201: projectViewSchema, ...errorResponses },
      },
    },
    async (req, reply) => {
      const role = await requireTeamRole(tenancy, req.principal, req.body.teamId, 'admin');
      return reply.code(201).send(projectView(await tenancy.createProject(req.body.teamId, req.body.name.trim()), role));
    },
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/projects/:id',
    {
      config: { projectToken: true },
      schema: { tags: ['projects'], summary: 'A project, with the caller\'s role in it', params: idParams, response: { 200: projectViewSchema, ...errorResponses } },
    },
    async (req) => {
      const role = await requireProjectRole(tenancy, req.principal, req.params.id, 'viewer');
      const project = await tenancy.project(req.params.id);
      if (!project) throw new NotFoundError('project', req.params.id);
      return projectView(project, role);
    },
  );

  app.patch<{ Params: { id: string }; Body: { name: string } }>(
    '/api/v1/projects/:id',
    {
      schema: {
        tags: ['projects'],
        summary: "Change a project's settings: its name (admin)",
        params: idParams,
        body: { type: 'object', additionalProperties: false, required: ['name'], properties: { name: NAME_SCHEMA } },
        response: { 200: projectViewSchema, ...errorResponses },
      },
    },
    async (req) => {
      const role = await requireProjectRole(tenancy, req.principal, req.params.id, 'admin');
      return projectView(await tenancy.renameProject(req.params.id, req.body.name.trim()), role);
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/api/v1/projects/:id',
    {
      schema: {
        tags: ['projects'],
        summary: 'Delete a project with its tokens, secrets and ended executions (owner); 409 while one of its executions runs',
        params: idParams,
        response: { 204: { type: 'null' }, ...errorResponses },
      },
    },
    async (req, reply) => {
      await requireProjectRole(tenancy, req.principal, req.params.id, 'owner');
      await tenancy.deleteProject(req.params.id);
      return reply.code(204).send();
    },
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/projects/:id/tokens',
    {
      schema: {
        tags: ['projects'],
        summary: "A project's tokens (admin); the tokens themselves are never shown again",
        params: idParams,
        response: { 200: { type: 'object', properties: { items: { type: 'array', items: tokenViewSchema } }, required: ['items'] }, ...errorResponses },
      },
    },
    async (req) => {
      await requireProjectRole(tenancy, req.principal, req.params.id, 'admin');
      return { items: (await tokens.list(req.params.id)).map(tokenView) };
    },
  );

  app.post<{ Params: { id: string }; Body: { role: ProjectTokenRole; name?: string; expiresInSeconds?: number } }>(
    '/api/v1/projects/:id/tokens',
    {
      schema: {
        tags: ['projects'],
        summary: 'Make a project token for automation (admin): it acts in this project only, with its role, and is shown only in this answer',
        params: idParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['role'],
          properties: {
            role: { type: 'string', enum: PROJECT_TOKEN_ROLES, description: 'member: run and cancel executions, join them; viewer: read only' },
            name: { ...NAME_SCHEMA, description: 'what it is for (default "token")' },
            expiresInSeconds: { type: 'integer', minimum: 60, maximum: PROJECT_TOKEN_MAX_S, description: 'default: until revoked' },
          },
        },
        response: {
          201: { type: 'object', properties: { ...tokenViewSchema.properties, token: { type: 'string', description: 'pdp_…: send it as "Authorization: Bearer <token>"' } }, required: [...tokenViewSchema.required, 'token'] },
          ...errorResponses,
        },
      },
    },
    async (req, reply) => {
      await requireProjectRole(tenancy, req.principal, req.params.id, 'admin');
      const { expiresInSeconds } = req.body;
      const made = await tokens.create(req.params.id, {
        name: req.body.name?.trim() ?? 'token',
        role: req.body.role,
        createdBy: req.user.id,
        expiresAt: expiresInSeconds === undefined ? null : new Date(Date.now() + expiresInSeconds * 1000),
      });
      return reply.code(201).header('cache-control', 'no-store').send({ ...tokenView(made.token), token: made.secret });
    },
  );

  app.delete<{ Params: { id: string; tokenId: string } }>(
    '/api/v1/projects/:id/tokens/:tokenId',
    { schema: { tags: ['projects'], summary: 'Revoke a project token (admin): it stops working at once', params: tokenParams, response: { 204: { type: 'null' }, ...errorResponses } } },
    async (req, reply) => {
      await requireProjectRole(tenancy, req.principal, req.params.id, 'admin');
      if (!(await tokens.revoke(req.params.id, req.params.tokenId))) throw new NotFoundError('token', req.params.tokenId);
      return reply.code(204).send();
    },
  );
};
