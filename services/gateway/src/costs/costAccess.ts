import { ForbiddenError, NotFoundError } from '@paddock/errors';
import type { Principal } from '../auth.js';

/** A member's role in a team and its projects, from the highest. */
export type CostRole = 'owner' | 'admin' | 'member' | 'viewer';

const RANK: Readonly<Record<CostRole, number>> = { owner: 3, admin: 2, member: 1, viewer: 0 };

/**
 * What the cost routes ask of the gateway's tenancy (its ProjectAccess): which projects a principal may
 * see, its role in one project or team, and where a project or execution belongs.
 */
export interface CostAccess {
  /** The projects the principal may see, with its role in each; null means every project (the admin). */
  visibleProjects(principal: Principal): Promise<ReadonlyMap<string, CostRole> | null>;
  roleIn(principal: Principal, projectId: string): Promise<CostRole | undefined>;
  roleInTeam(principal: Principal, teamId: string): Promise<CostRole | undefined>;
  teamOf(projectId: string): Promise<string | undefined>;
  projectOfExecution(executionId: string): Promise<{ projectId: string; teamId: string } | undefined>;
}

/**
 * The principal's role in a budget's project or team, when it is at least `needed`: a scope it may not see
 * is answered as if the budget did not exist (`notFound`), a role too low is 403 naming the role needed.
 */
export async function requireScopeRole(
  access: CostAccess,
  principal: Principal,
  scope: { scope: string; scopeId: string },
  needed: CostRole,
  notFound: () => Error,
): Promise<CostRole> {
  const role = scope.scope === 'team' ? await access.roleInTeam(principal, scope.scopeId) : await access.roleIn(principal, scope.scopeId);
  if (role === undefined) throw notFound();
  if (RANK[role] < RANK[needed]) {
    throw new ForbiddenError(`this needs the ${needed} role${needed === 'owner' ? '' : ' or above'} in ${scope.scope} ${scope.scopeId} (yours is ${role})`);
  }
  return role;
}

/** Who made a change, as billing records it. */
export function actorOf(principal: Principal): string {
  switch (principal.kind) {
    case 'user':
      return principal.user.id;
    case 'projectToken':
      return `token:${principal.tokenId}`;
    case 'run':
      return `run:${principal.executionId}`;
  }
}

/** A project the principal may not see, answered as one that does not exist. */
export function projectNotFound(projectId: string): NotFoundError {
  return new NotFoundError('project', projectId);
}
