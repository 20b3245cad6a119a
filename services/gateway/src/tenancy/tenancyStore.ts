import { inTransaction, type Pool, type Queryable } from '@paddock/db';
import { ConflictError, NotFoundError } from '@paddock/errors';
import type { Principal } from '../auth.js';
import { newId } from '../ids.js';
import { lowerRole, type ProjectAccess, type Role } from './projectAccess.js';

export interface Team {
  id: string;
  name: string;
  /** A user's personal team: it keeps that user as its owner. */
  personal: boolean;
  createdAt: Date;
}

export interface Member {
  userId: string;
  name: string;
  role: Role;
  addedAt: Date;
}

export interface Project {
  id: string;
  teamId: string;
  name: string;
  /** The personal project of a personal team, where its user's executions go by default. */
  personal: boolean;
  createdAt: Date;
}

/** The name of a personal project; a personal team takes its user's name. */
export const PERSONAL_PROJECT_NAME = 'default';

/** The SQLSTATEs PostgreSQL answers a duplicate key and a missing referenced row with. */
const UNIQUE_VIOLATION = '23505';
const FOREIGN_KEY_VIOLATION = '23503';

function isPgError(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

const TEAM_COLUMNS = `t.id, t.name, t.personal_of IS NOT NULL AS personal, t.created_at AS "createdAt"`;
const PROJECT_COLUMNS = `p.id, p.team_id AS "teamId", p.name, p.personal, p.created_at AS "createdAt"`;

/**
 * Makes a user's personal team (the user its owner) and personal project, in the transaction that makes the
 * user: a user never exists without the place its executions go by default.
 */
export async function createPersonalSpace(db: Queryable, user: { id: string; name: string }): Promise<{ teamId: string; projectId: string }> {
  const teamId = `t${newId()}`;
  const projectId = `p${newId()}`;
  await db.query(`INSERT INTO teams (id, name, personal_of) VALUES ($1, $2, $3)`, [teamId, user.name, user.id]);
  await db.query(`INSERT INTO team_members (team_id, user_id, role) VALUES ($1, $2, 'owner')`, [teamId, user.id]);
  await db.query(`INSERT INTO projects (id, team_id, name, personal) VALUES ($1, $2, $3, true)`, [projectId, teamId, PERSONAL_PROJECT_NAME]);
  return { teamId, projectId };
}

/**
 * Teams, their members and their projects, and who may do what in them (ProjectAccess). Changes to one
 * team's members are serialized (its row is locked), so that two demotions at once cannot leave it ownerless.
 */
export class TenancyStore implements ProjectAccess {
  constructor(private readonly pool: Pool) {}

  async visibleProjects(principal: Principal): Promise<ReadonlyMap<string, Role> | null> {
    if (principal.kind === 'user') {
      if (principal.user.isAdmin) return null;
      const r = await this.pool.query<{ id: string; role: Role }>(
        `SELECT p.id, m.role FROM projects p JOIN team_members m ON m.team_id = p.team_id WHERE m.user_id = $1`,
        [principal.user.id],
      );
      return new Map(r.rows.map((row) => [row.id, row.role]));
    }
    if (principal.kind === 'projectToken') {
      const role = await this.roleIn(principal, principal.projectId);
      return new Map(role === undefined ? [] : [[principal.projectId, role]]);
    }
    return new Map();
  }

  async roleIn(principal: Principal, projectId: string): Promise<Role | undefined> {
    if (principal.kind === 'user') {
      if (principal.user.isAdmin) return (await this.project(projectId)) ? 'owner' : undefined;
      const r = await this.pool.query<{ role: Role }>(
        `SELECT m.role FROM projects p JOIN team_members m ON m.team_id = p.team_id WHERE p.id = $1 AND m.user_id = $2`,
        [projectId, principal.user.id],
      );
      return r.rows[0]?.role;
    }
    if (principal.kind === 'projectToken') {
      if (projectId !== principal.projectId) return undefined;
      // Bounded by its creator's role now: a creator who left the team, or was made a viewer, takes it along.
      const creators = await this.roleIn({ kind: 'user', user: principal.creator }, projectId);
      return creators === undefined ? undefined : lowerRole(principal.role, creators);
    }
    return undefined;
  }

  async teamOf(projectId: string): Promise<string | undefined> {
    return (await this.project(projectId))?.teamId;
  }

  async roleInTeam(principal: Principal, teamId: string): Promise<Role | undefined> {
    if (principal.kind !== 'user') return undefined;
    if (principal.user.isAdmin) return (await this.team(teamId)) ? 'owner' : undefined;
    const r = await this.pool.query<{ role: Role }>(`SELECT role FROM team_members WHERE team_id = $1 AND user_id = $2`, [teamId, principal.user.id]);
    return r.rows[0]?.role;
  }

  async projectOfExecution(executionId: string): Promise<{ projectId: string; teamId: string } | undefined> {
    const r = await this.pool.query<{ projectId: string; teamId: string }>(
      `SELECT e.project_id AS "projectId", p.team_id AS "teamId" FROM executions e JOIN projects p ON p.id = e.project_id WHERE e.id = $1`,
      [executionId],
    );
    return r.rows[0];
  }

  /**
   * Whether the user is a member (any role) of the team of the execution's project: who may reach the
   * execution's ports whose visibility is `project`. The admin user is no member by being the admin: the
   * ingress opens users' instances to their teams, not to the operator.
   */
  async userInProjectOf(executionId: string, userId: string): Promise<boolean> {
    const r = await this.pool.query(
      `SELECT 1 FROM executions e JOIN projects p ON p.id = e.project_id JOIN team_members m ON m.team_id = p.team_id
        WHERE e.id = $1 AND m.user_id = $2`,
      [executionId, userId],
    );
    return r.rows.length > 0;
  }

  /** Where a user's executions go when a request names no project. */
  async personalProjectOf(userId: string): Promise<Project | undefined> {
    const r = await this.pool.query<Project>(
      `SELECT ${PROJECT_COLUMNS} FROM teams t JOIN projects p ON p.team_id = t.id AND p.personal WHERE t.personal_of = $1`,
      [userId],
    );
    return r.rows[0];
  }

  async team(id: string): Promise<Team | undefined> {
    const r = await this.pool.query<Team>(`SELECT ${TEAM_COLUMNS} FROM teams t WHERE t.id = $1`, [id]);
    return r.rows[0];
  }

  /** The teams a user principal sees, with its role in each (the admin: every team, as owner); oldest first. */
  async teamsOf(principal: Principal): Promise<{ team: Team; role: Role }[]> {
    if (principal.kind !== 'user') return [];
    if (principal.user.isAdmin) {
      const r = await this.pool.query<Team>(`SELECT ${TEAM_COLUMNS} FROM teams t ORDER BY t.created_at, t.id`);
      return r.rows.map((team) => ({ team, role: 'owner' as const }));
    }
    const r = await this.pool.query<Team & { role: Role }>(
      `SELECT ${TEAM_COLUMNS}, m.role FROM teams t JOIN team_members m ON m.team_id = t.id WHERE m.user_id = $1 ORDER BY t.created_at, t.id`,
      [principal.user.id],
    );
    return r.rows.map(({ role, ...team }) => ({ team, role }));
  }

  /** A new team, with `ownerId` its first owner. */
  async createTeam(name: string, ownerId: string): Promise<Team> {
    return inTransaction(this.pool, async (db) => {
      const r = await db.query<Team>(
        `INSERT INTO teams AS t (id, name) VALUES ($1, $2) RETURNING ${TEAM_COLUMNS}`,
        [`t${newId()}`, name],
      );
      const team = r.rows[0]!;
      await db.query(`INSERT INTO team_members (team_id, user_id, role) VALUES ($1, $2, 'owner')`, [team.id, ownerId]);
      return team;
    });
  }

  async members(teamId: string): Promise<Member[]> {
    const r = await this.pool.query<Member>(
      `SELECT m.user_id AS "userId", u.name, m.role, m.created_at AS "addedAt" FROM team_members m JOIN users u ON u.id = m.user_id
       WHERE m.team_id = $1 ORDER BY m.created_at, m.user_id`,
      [teamId],
    );
    return r.rows;
  }

  /** Adds a user to a team; an unknown user is not found, a member already is a conflict. */
  async addMember(teamId: string, userId: string, role: Role): Promise<Member> {
    return inTransaction(this.pool, async (db) => {
      await this.#lockTeam(db, teamId);
      let inserted: { role: Role }[];
      try {
        inserted = (
          await db.query<{ role: Role }>(
            `INSERT INTO team_members (team_id, user_id, role) VALUES ($1, $2, $3) ON CONFLICT (team_id, user_id) DO NOTHING RETURNING role`,
            [teamId, userId, role],
          )
        ).rows;
      } catch (err) {
        if (isPgError(err, FOREIGN_KEY_VIOLATION)) throw new NotFoundError('user', userId);
        throw err;
      }
      if (inserted.length === 0) {
        const current = await this.#memberRole(db, teamId, userId);
        throw new ConflictError(`user ${userId} is already a member of team ${teamId} (as ${current ?? 'a member'}): change the role with PATCH /api/v1/teams/${teamId}/members/${userId}`);
      }
      return (await this.#member(db, teamId, userId))!;
    });
  }

  /**
   * Changes a member's role. `authorize` sees the member's current role inside the transaction (whether
   * an owner is concerned is decided on what is stored, not on what was read before) and throws to refuse.
   */
  async changeMember(teamId: string, userId: string, role: Role, authorize: (current: Role) => void): Promise<Member> {
    return inTransaction(this.pool, async (db) => {
      const current = await this.#currentMember(db, teamId, userId);
      authorize(current.role);
      if (current.role === 'owner' && role !== 'owner') await this.#keepOwner(db, teamId, userId, 'no longer an owner');
      await db.query(`UPDATE team_members SET role = $3 WHERE team_id = $1 AND user_id = $2`, [teamId, userId, role]);
      return (await this.#member(db, teamId, userId))!;
    });
  }

  /** Removes a member; `authorize` as in changeMember. */
  async removeMember(teamId: string, userId: string, authorize: (current: Role) => void): Promise<void> {
    await inTransaction(this.pool, async (db) => {
      const current = await this.#currentMember(db, teamId, userId);
      authorize(current.role);
      if (current.role === 'owner') await this.#keepOwner(db, teamId, userId, 'removed');
      await db.query(`DELETE FROM team_members WHERE team_id = $1 AND user_id = $2`, [teamId, userId]);
    });
  }

  /** Deletes a team that has no projects left; a personal team stays with its user. */
  async deleteTeam(teamId: string): Promise<void> {
    await inTransaction(this.pool, async (db) => {
      const team = await this.#lockTeam(db, teamId);
      if (team.personal) throw new ConflictError(`team ${teamId} is a user's personal team: it stays as long as its user`);
      const projects = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM projects WHERE team_id = $1`, [teamId]);
      const n = projects.rows[0]?.n ?? 0;
      if (n > 0) throw new ConflictError(`team ${teamId} still has ${n} project${n === 1 ? '' : 's'}: delete ${n === 1 ? 'it' : 'them'} first (DELETE /api/v1/projects/{id})`);
      await db.query(`DELETE FROM teams WHERE id = $1`, [teamId]);
    });
  }

  async project(id: string): Promise<Project | undefined> {
    const r = await this.pool.query<Project>(`SELECT ${PROJECT_COLUMNS} FROM projects p WHERE p.id = $1`, [id]);
    return r.rows[0];
  }

  /** Projects by id (null: every project), optionally of one team only; by team, then oldest first. */
  async projects(ids: readonly string[] | null, teamId?: string): Promise<Project[]> {
    const r = await this.pool.query<Project>(
      `SELECT ${PROJECT_COLUMNS} FROM projects p WHERE ($1::text[] IS NULL OR p.id = ANY($1)) AND ($2::text IS NULL OR p.team_id = $2)
       ORDER BY p.team_id, p.created_at, p.id`,
      [ids === null ? null : [...ids], teamId ?? null],
    );
    return r.rows;
  }

  async createProject(teamId: string, name: string): Promise<Project> {
    try {
      const r = await this.pool.query<Project>(
        `INSERT INTO projects AS p (id, team_id, name) VALUES ($1, $2, $3) RETURNING ${PROJECT_COLUMNS}`,
        [`p${newId()}`, teamId, name],
      );
      return r.rows[0]!;
    } catch (err) {
      if (isPgError(err, UNIQUE_VIOLATION)) throw new ConflictError(`team ${teamId} already has a project named "${name}"`);
      throw err;
    }
  }

  async renameProject(id: string, name: string): Promise<Project> {
    try {
      const r = await this.pool.query<Project>(`UPDATE projects AS p SET name = $2 WHERE p.id = $1 RETURNING ${PROJECT_COLUMNS}`, [id, name]);
      const project = r.rows[0];
      if (!project) throw new NotFoundError('project', id);
      return project;
    } catch (err) {
      if (isPgError(err, UNIQUE_VIOLATION)) throw new ConflictError(`the team of project ${id} already has a project named "${name}"`);
      throw err;
    }
  }

  /**
   * Deletes a project with its tokens, secrets and ended executions; refused while one of its executions
   * has not ended (it would be left without a project), and for a personal project.
   */
  async deleteProject(id: string): Promise<void> {
    await inTransaction(this.pool, async (db) => {
      const r = await db.query<{ personal: boolean }>(`SELECT personal FROM projects WHERE id = $1 FOR UPDATE`, [id]);
      const project = r.rows[0];
      if (!project) throw new NotFoundError('project', id);
      if (project.personal) throw new ConflictError(`project ${id} is a user's personal project: it stays as long as its user`);
      // New executions take a share lock on their project's row (its foreign key), so none can start meanwhile.
      const live = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM executions WHERE project_id = $1 AND state NOT IN ('completed', 'failed', 'cancelled')`,
        [id],
      );
      const n = live.rows[0]?.n ?? 0;
      if (n > 0) throw new ConflictError(`project ${id} has ${n} execution${n === 1 ? '' : 's'} that ${n === 1 ? 'has' : 'have'} not ended: cancel ${n === 1 ? 'it' : 'them'} or wait for the end`);
      await db.query(`DELETE FROM executions WHERE project_id = $1`, [id]);
      await db.query(`DELETE FROM projects WHERE id = $1`, [id]);
    });
  }

  async #lockTeam(db: Queryable, teamId: string): Promise<Team> {
    const r = await db.query<Team>(`SELECT ${TEAM_COLUMNS} FROM teams t WHERE t.id = $1 FOR UPDATE`, [teamId]);
    const team = r.rows[0];
    if (!team) throw new NotFoundError('team', teamId);
    return team;
  }

  async #memberRole(db: Queryable, teamId: string, userId: string): Promise<Role | undefined> {
    return (await db.query<{ role: Role }>(`SELECT role FROM team_members WHERE team_id = $1 AND user_id = $2`, [teamId, userId])).rows[0]?.role;
  }

  async #member(db: Queryable, teamId: string, userId: string): Promise<Member | undefined> {
    const r = await db.query<Member>(
      `SELECT m.user_id AS "userId", u.name, m.role, m.created_at AS "addedAt" FROM team_members m JOIN users u ON u.id = m.user_id
       WHERE m.team_id = $1 AND m.user_id = $2`,
      [teamId, userId],
    );
    return r.rows[0];
  }

  /** The member as stored, with the team locked for the change to come. */
  async #currentMember(db: Queryable, teamId: string, userId: string): Promise<Member> {
    await this.#lockTeam(db, teamId);
    const member = await this.#member(db, teamId, userId);
    if (!member) throw new NotFoundError('member', `${userId} of team ${teamId}`);
    return member;
  }

  /** Refuses to let an owner go when that would leave the team without one, or a personal team without its user. */
  async #keepOwner(db: Queryable, teamId: string, userId: string, becoming: string): Promise<void> {
    const team = await db.query<{ personalOf: string | null }>(`SELECT personal_of AS "personalOf" FROM teams WHERE id = $1`, [teamId]);
    if (team.rows[0]?.personalOf === userId) throw new ConflictError(`team ${teamId} is the personal team of ${userId}, who stays its owner`);
    const owners = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM team_members WHERE team_id = $1 AND role = 'owner'`, [teamId]);
    if ((owners.rows[0]?.n ?? 0) <= 1) throw new ConflictError(`${userId} is the last owner of team ${teamId}: make another member an owner before ${userId} is ${becoming}`);
  }
}
