import { createHash, randomBytes } from 'node:crypto';
import type { Pool } from '@paddock/db';
import { UnauthorizedError } from '@paddock/errors';
import type { ProjectTokenPrincipal } from '../auth.js';
import { newId } from '../ids.js';
import type { User } from '../users/userStore.js';

const PREFIX = 'pdp_';

function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** The roles a project token may have: automation runs and reads, it never administers. */
export const PROJECT_TOKEN_ROLES = ['member', 'viewer'] as const;
export type ProjectTokenRole = (typeof PROJECT_TOKEN_ROLES)[number];

/** Whether a bearer token is a project token at all (it may still be a wrong one). */
export function isProjectToken(token: string): boolean {
  return token.startsWith(PREFIX);
}

/** A project token as listed: never the token itself, which is shown once, when made. */
export interface ProjectToken {
  id: string;
  projectId: string;
  name: string;
  role: ProjectTokenRole;
  /** The user who made it, and who owns the executions it creates. */
  createdBy: string;
  createdAt: Date;
  /** Null: it lasts until revoked. */
  expiresAt: Date | null;
}

const COLUMNS = `id, project_id AS "projectId", name, role, created_by AS "createdBy", created_at AS "createdAt", expires_at AS "expiresAt"`;

/**
 * The project_tokens table: API tokens that act in one project with one role, for automation (CI, bots).
 * Stored as SHA-256 only; revoking deletes the row, so the token stops working at once.
 */
export class ProjectTokenStore {
  constructor(private readonly pool: Pool) {}

  async create(projectId: string, opts: { name: string; role: ProjectTokenRole; createdBy: string; expiresAt: Date | null }): Promise<{ token: ProjectToken; secret: string }> {
    const secret = `${PREFIX}${randomBytes(32).toString('base64url')}`;
    const r = await this.pool.query<ProjectToken>(
      `INSERT INTO project_tokens (id, project_id, name, token_hash, role, created_by, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ${COLUMNS}`,
      [`k${newId()}`, projectId, opts.name, hashToken(secret), opts.role, opts.createdBy, opts.expiresAt],
    );
    return { token: r.rows[0]!, secret };
  }

  /** The project's tokens, oldest first, expired ones included (until revoked). */
  async list(projectId: string): Promise<ProjectToken[]> {
    const r = await this.pool.query<ProjectToken>(`SELECT ${COLUMNS} FROM project_tokens WHERE project_id = $1 ORDER BY created_at, id`, [projectId]);
    return r.rows;
  }

  /** False when the project has no such token. */
  async revoke(projectId: string, tokenId: string): Promise<boolean> {
    const r = await this.pool.query(`DELETE FROM project_tokens WHERE project_id = $1 AND id = $2`, [projectId, tokenId]);
    return (r.rowCount ?? 0) > 0;
  }

  /** Who a project token acts as; not cached, so that a revoked token stops working at once. */
  async authenticate(token: string): Promise<ProjectTokenPrincipal> {
    const r = await this.pool.query<{ id: string; projectId: string; role: ProjectTokenRole; expiresAt: Date | null; creator: User }>(
      `SELECT t.id, t.project_id AS "projectId", t.role, t.expires_at AS "expiresAt",
              json_build_object('id', u.id, 'name', u.name, 'isAdmin', u.is_admin, 'createdAt', u.created_at) AS creator
       FROM project_tokens t JOIN users u ON u.id = t.created_by WHERE t.token_hash = $1`,
      [hashToken(token)],
    );
    const row = r.rows[0];
    if (!row) throw new UnauthorizedError('the project token is not valid (it was revoked, or never made)');
    if (row.expiresAt !== null && row.expiresAt.getTime() <= Date.now()) {
      throw new UnauthorizedError(`the project token ${row.id} expired at ${row.expiresAt.toISOString()}`);
    }
    const creator: User = { ...row.creator, createdAt: new Date(row.creator.createdAt) };
    return { kind: 'projectToken', tokenId: row.id, projectId: row.projectId, role: row.role, creator };
  }
}
