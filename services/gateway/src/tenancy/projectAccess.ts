import { NotFoundError, PaddockError } from '@paddock/errors';
import type { Principal } from '../auth.js';

/** A member's role in a team, and so in each of its projects; each may do what the ones after it may. */
export const ROLES = ['owner', 'admin', 'member', 'viewer'] as const;
export type Role = (typeof ROLES)[number];

const RANK: Readonly<Record<Role, number>> = { owner: 3, admin: 2, member: 1, viewer: 0 };

/** Whether `role` may do what `needed` may. */
export function roleAtLeast(role: Role, needed: Role): boolean {
  return RANK[role] >= RANK[needed];
}

/** The lower of two roles: what a project token may do is bounded by its creator's role. */
export function lowerRole(a: Role, b: Role): Role {
  return RANK[a] <= RANK[b] ? a : b;
}

export function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}

/**
 * Who may see and do what in which project: the one place where a principal's role is decided. A role in a
 * project is the role in the project's team; the admin user acts as owner everywhere; a project token acts
 * in its own project only; a run token in none (it acts as its execution, which the routes check).
 */
export interface ProjectAccess {
  /** The projects the principal may see, with its role in each; null means every project (admin). */
  visibleProjects(principal: Principal): Promise<ReadonlyMap<string, Role> | null>;
  /** Its role in the project, or undefined when it may not see it. */
  roleIn(principal: Principal, projectId: string): Promise<Role | undefined>;
  /** The team of a project (undefined: no such project). */
  teamOf(projectId: string): Promise<string | undefined>;
  /** Its role in the team, or undefined when it may not see the team. */
  roleInTeam(principal: Principal, teamId: string): Promise<Role | undefined>;
  /** The project and team of an execution (undefined: no such execution). */
  projectOfExecution(executionId: string): Promise<{ projectId: string; teamId: string } | undefined>;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Who may see and do what in which project: for the routes of every folder (decorated by buildApp). */
    readonly projectAccess: ProjectAccess;
  }
}

/** Something visible whose change needs a higher role than the caller's: 403, naming the role needed. */
export class RoleRequiredError extends PaddockError {
  constructor(
    readonly needed: Role,
    readonly actual: Role,
    /** What the role is in: `project p…` or `team t…`. */
    readonly scope: string,
  ) {
    super('forbidden', 403, `this needs the ${needed} role${needed === 'owner' ? '' : ' or above'} in ${scope} (yours is ${actual})`);
  }
}

/**
 * The principal's role in the project when it is at least `needed`. A project it may not see is not found
 * (`notFound`, by default the project itself), exactly as one that does not exist; a role too low is 403.
 */
export async function requireProjectRole(
  access: ProjectAccess,
  principal: Principal,
  projectId: string,
  needed: Role,
  notFound: () => PaddockError = () => new NotFoundError('project', projectId),
): Promise<Role> {
  const role = await access.roleIn(principal, projectId);
  if (role === undefined) throw notFound();
  if (!roleAtLeast(role, needed)) throw new RoleRequiredError(needed, role, `project ${projectId}`);
  return role;
}

/** As requireProjectRole, for a team. */
export async function requireTeamRole(access: ProjectAccess, principal: Principal, teamId: string, needed: Role): Promise<Role> {
  const role = await access.roleInTeam(principal, teamId);
  if (role === undefined) throw new NotFoundError('team', teamId);
  if (!roleAtLeast(role, needed)) throw new RoleRequiredError(needed, role, `team ${teamId}`);
  return role;
}
