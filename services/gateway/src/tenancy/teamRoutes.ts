import type { FastifyPluginAsync } from 'fastify';
import { NotFoundError } from '@paddock/errors';
import { errorResponses } from '../errors.js';
import { requireTeamRole, RoleRequiredError, type Role } from './projectAccess.js';
import { ID_SCHEMA, idParams, memberView, memberViewSchema, NAME_SCHEMA, projectView, projectViewSchema, ROLE_SCHEMA, teamView, teamViewSchema } from './schemas.js';
import type { TenancyStore } from './tenancyStore.js';

const memberParams = { type: 'object', additionalProperties: false, required: ['id', 'userId'], properties: { id: ID_SCHEMA, userId: ID_SCHEMA } } as const;

/** Owners are made, changed and removed by owners only; the rest of a team's members by its admins too. */
function ownersByOwners(callerRole: Role, teamId: string, ...roles: Role[]): void {
  if (roles.includes('owner') && callerRole !== 'owner') throw new RoleRequiredError('owner', callerRole, `team ${teamId}`);
}

/** Teams and their members: whoever is in a team sees it; admins manage members, owners manage owners. */
export const teamRoutes: FastifyPluginAsync<{ tenancy: TenancyStore }> = async (app, { tenancy }) => {
  app.get(
    '/api/v1/teams',
    {
      schema: {
        tags: ['teams'],
        summary: "The caller's teams, with its role in each (the admin: every team)",
        response: { 200: { type: 'object', properties: { items: { type: 'array', items: teamViewSchema } }, required: ['items'] }, ...errorResponses },
      },
    },
    async (req) => ({ items: (await tenancy.teamsOf(req.principal)).map(({ team, role }) => teamView(team, role)) }),
  );

  app.post<{ Body: { name: string } }>(
    '/api/v1/teams',
    {
      schema: {
        tags: ['teams'],
        summary: 'Make a team; the caller is its owner',
        body: { type: 'object', additionalProperties: false, required: ['name'], properties: { name: NAME_SCHEMA } },
        response: { 201: teamViewSchema, ...errorResponses },
      },
    },
    async (req, reply) => reply.code(201).send(teamView(await tenancy.createTeam(req.body.name.trim(), req.user.id), 'owner')),
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/teams/:id',
    {
      schema: {
        tags: ['teams'],
        summary: 'A team, its members and its projects (any member)',
        params: idParams,
        response: {
          200: {
            type: 'object',
            properties: { ...teamViewSchema.properties, members: { type: 'array', items: memberViewSchema }, projects: { type: 'array', items: projectViewSchema } },
            required: [...teamViewSchema.required, 'members', 'projects'],
          },
          ...errorResponses,
        },
      },
    },
    async (req) => {
      const role = await requireTeamRole(tenancy, req.principal, req.params.id, 'viewer');
      const team = await tenancy.team(req.params.id);
      if (!team) throw new NotFoundError('team', req.params.id);
      const [members, projects] = await Promise.all([tenancy.members(team.id), tenancy.projects(null, team.id)]);
      return {
        ...teamView(team, role),
        members: members.map(memberView),
        projects: projects.map((p) => projectView(p, role)),
      };
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/api/v1/teams/:id',
    { schema: { tags: ['teams'], summary: 'Delete a team that has no projects left (owner)', params: idParams, response: { 204: { type: 'null' }, ...errorResponses } } },
    async (req, reply) => {
      await requireTeamRole(tenancy, req.principal, req.params.id, 'owner');
      await tenancy.deleteTeam(req.params.id);
      return reply.code(204).send();
    },
  );

  app.post<{ Params: { id: string }; Body: { userId: string; role: Role } }>(
    '/api/v1/teams/:id/members',
    {
      schema: {
        tags: ['teams'],
        summary: 'Add a user to a team by id (admin; an owner by owners only)',
        params: idParams,
        body: { type: 'object', additionalProperties: false, required: ['userId', 'role'], properties: { userId: ID_SCHEMA, role: ROLE_SCHEMA } },
        response: { 201: memberViewSchema, ...errorResponses },
      },
    },
    async (req, reply) => {
      const callerRole = await requireTeamRole(tenancy, req.principal, req.params.id, 'admin');
      ownersByOwners(callerRole, req.params.id, req.body.role);
      return reply.code(201).send(memberView(await tenancy.addMember(req.params.id, req.body.userId, req.body.role)));
    },
  );

  app.patch<{ Params: { id: string; userId: string }; Body: { role: Role } }>(
    '/api/v1/teams/:id/members/:userId',
    {
      schema: {
        tags: ['teams'],
        summary: "Change a member's role (admin; to or from owner by owners only); a team keeps at least one owner",
        params: memberParams,
        body: { type: 'object', additionalProperties: false, required: ['role'], properties: { role: ROLE_SCHEMA } },
        response: { 200: memberViewSchema, ...errorResponses },
      },
    },
    async (req) => {
      const callerRole = await requireTeamRole(tenancy, req.principal, req.params.id, 'admin');
      const member = await tenancy.changeMember(req.params.id, req.params.userId, req.body.role, (current) => ownersByOwners(callerRole, req.params.id, current, req.body.role));
      return memberView(member);
    },
  );

  app.delete<{ Params: { id: string; userId: string } }>(
    '/api/v1/teams/:id/members/:userId',
    {
      schema: {
        tags: ['teams'],
        summary: 'Remove a member (admin; an owner by owners only); any member may remove themselves; a team keeps at least one owner',
        params: memberParams,
        response: { 204: { type: 'null' }, ...errorResponses },
      },
    },
    async (req, reply) => {
      const leaving = req.params.userId === req.user.id;
      const callerRole = await requireTeamRole(tenancy, req.principal, req.params.id, leaving ? 'viewer' : 'admin');
      await tenancy.removeMember(req.params.id, req.params.userId, (current) => {
        if (!leaving) ownersByOwners(callerRole, req.params.id, current);
      });
      return reply.code(204).send();
    },
  );
};
