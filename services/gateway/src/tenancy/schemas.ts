import { ROLES, type Role } from './projectAccess.js';
import type { Member, Project, Team } from './tenancyStore.js';

/** A team's or a project's name: any text with something in it, trimmed when stored. */
export const NAME_SCHEMA = { type: 'string', minLength: 1, maxLength: 100, pattern: '\\S' } as const;
export const ID_SCHEMA = { type: 'string', minLength: 1, maxLength: 64 } as const;
export const ROLE_SCHEMA = { type: 'string', enum: ROLES } as const;

export const idParams = { type: 'object', additionalProperties: false, required: ['id'], properties: { id: ID_SCHEMA } } as const;

export const teamViewSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    personal: { type: 'boolean', description: "a user's personal team: it keeps that user as its owner" },
    role: { type: 'string', enum: ROLES, description: "the caller's role in it" },
    createdAt: { type: 'string' },
  },
  required: ['id', 'name', 'personal', 'role', 'createdAt'],
} as const;

export const memberViewSchema = {
  type: 'object',
  properties: { userId: { type: 'string' }, name: { type: 'string' }, role: { type: 'string', enum: ROLES }, addedAt: { type: 'string' } },
  required: ['userId', 'name', 'role', 'addedAt'],
} as const;

export const projectViewSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    teamId: { type: 'string' },
    name: { type: 'string' },
    personal: { type: 'boolean', description: "a user's personal project, where their executions go when a request names none" },
    role: { type: 'string', enum: ROLES, description: "the caller's role in it" },
    createdAt: { type: 'string' },
  },
  required: ['id', 'teamId', 'name', 'personal', 'role', 'createdAt'],
} as const;

export interface TeamView {
  id: string;
  name: string;
  personal: boolean;
  role: Role;
  createdAt: string;
}

export interface ProjectView {
  id: string;
  teamId: string;
  name: string;
  personal: boolean;
  role: Role;
  createdAt: string;
}

export function teamView(team: Team, role: Role): TeamView {
  return { id: team.id, name: team.name, personal: team.personal, role, createdAt: team.createdAt.toISOString() };
}

export function memberView(m: Member): { userId: string; name: string; role: Role; addedAt: string } {
  return { userId: m.userId, name: m.name, role: m.role, addedAt: m.addedAt.toISOString() };
}

export function projectView(p: Project, role: Role): ProjectView {
  return { id: p.id, teamId: p.teamId, name: p.name, personal: p.personal, role, createdAt: p.createdAt.toISOString() };
}
