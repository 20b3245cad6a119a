import type { Pool } from '@paddock/db';
import { NotFoundError } from '@paddock/errors';
import { ExecutionAccount, ExecutionSpec, type BlobRef } from '@paddock/proto';
import type { Queryable } from './idempotencyKeys.js';
import type { NormalizedRequest } from './request.js';
import type { ApiState } from './schemas.js';

/**
 * What is kept of the request for display: file contents, env values and the repo token are not shown back,
 * and a script stored in the blob store is kept there only (the row names it by `scriptRef`).
 */
export interface StoredRequest extends Omit<NormalizedRequest, 'files' | 'env' | 'repo'> {
  files: string[];
  env: string[];
  repo: { url: string; branch: string | null } | null;
  /** Absent from rows stored before large scripts went to the blob store. */
  scriptRef?: BlobRef | null;
  /**
   * The SHA-256 of the execution's run token (runTokens.ts), never shown: kept with the request because it
   * is issued with it and lives exactly as long as the row. Absent from rows stored before run tokens.
   */
  runTokenSha256?: string;
}

/**
 * A row whose request has not reached the bus yet, with its spec and account as stored (they may not decode
 * any more; a row stored before accounts has none).
 */
export interface UnpublishedRow {
  id: string;
  ownerId: string;
  projectId: string;
  teamId: string;
  specBytes: Buffer;
  accountBytes: Buffer | null;
  createdAt: Date;
  heldByBudget: string | null;
}

export interface ExecutionRow {
  id: string;
  ownerId: string;
  projectId: string;
  teamId: string;
  request: StoredRequest;
  state: ApiState;
  version: number;
  exitCode: number | null;
  error: string | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  /** The broker that runs it, once placed. */
  brokerId: string | null;
  /** While a spent hard budget (action `queue`) holds it back: which budget, and what lifts it. */
  heldByBudget: string | null;
}

export interface StateUpdate {
  state: ApiState;
  version: number;
  exitCode: number | null;
  error: string | null;
  startedAtMs: number;
  finishedAtMs: number;
  brokerId: string;
}

/** The columns of a row, from executions `e` joined to its project `p` (for the team). */
const COLUMNS = `e.id, e.owner_id AS "ownerId", e.project_id AS "projectId", p.team_id AS "teamId", e.request, e.state, e.version,
  e.exit_code AS "exitCode", e.error, e.created_at AS "createdAt", e.started_at AS "startedAt", e.finished_at AS "finishedAt",
  e.broker_id AS "brokerId", e.held_by_budget AS "heldByBudget"`;

/** How a new row is placed: its project (default: its owner's personal one) and the account its outbox publishes. */
export interface Placement {
  /** The SHA-256 of the run token issued with it; a row without one accepts none. */
  runTokenSha256?: string;
  projectId?: string;
  account?: ExecutionAccount;
  /** Accepted under a spent hard budget that queues: kept from the bus until billing admits it (the budget's sentence). */
  heldByBudget?: string;
}

/** PostgreSQL's answer to a row that names a row that is not there (a project deleted meanwhile). */
const FOREIGN_KEY_VIOLATION = '23503';

export const FINAL_STATES: readonly ApiState[] = ['completed', 'failed', 'cancelled'];

/** The gateway's executions table. */
export class ExecutionStore {
  /** The gateway's database, whose other tables (idempotency keys) are written in transactions with this one. */
  constructor(readonly pool: Pool) {}

  /** `db`: a transaction's client, when the row must be stored together with something else. */
  async insert(id: string, ownerId: string, request: NormalizedRequest, spec: ExecutionSpec, placement: Placement = {}, db: Queryable = this.pool): Promise<ExecutionRow> {
    const { runTokenSha256, projectId, account, heldByBudget } = placement;
    const stored: StoredRequest = {
      ...request,
      ...(runTokenSha256 === undefined ? {} : { runTokenSha256 }),
      script: spec.scriptRef ? null : request.script,
      scriptRef: spec.scriptRef ?? null,
      files: Object.keys(request.files).sort(),
      env: Object.keys(request.env).sort(),
      repo: request.repo ? { url: request.repo.url, branch: request.repo.branch } : null,
    };
    try {
      const r = await db.query<ExecutionRow>(
        `WITH e AS (
           INSERT INTO executions (id, owner_id, project_id, request, spec, account, state, held_by_budget)
           VALUES ($1, $2, COALESCE($5, (SELECT p.id FROM teams t JOIN projects p ON p.team_id = t.id AND p.personal WHERE t.personal_of = $2)), $3, $4, $6, 'queued', $7)
           RETURNING *)
         SELECT ${COLUMNS} FROM e JOIN projects p ON p.id = e.project_id`,
        [
          id,
          ownerId,
          stored,
          Buffer.from(ExecutionSpec.encode(spec).finish()),
          projectId ?? null,
          account ? Buffer.from(ExecutionAccount.encode(account).finish()) : null,
          heldByBudget ?? null,
        ],
      );
      return r.rows[0]!;
    } catch (err) {
      if ((err as { code?: unknown }).code === FOREIGN_KEY_VIOLATION && projectId !== undefined) throw new NotFoundError('project', projectId);
      throw err;
    }
  }

  async markPublished(id: string): Promise<void> {
    await this.pool.query(`UPDATE executions SET published = true, held_by_budget = NULL WHERE id = $1`, [id]);
  }

  /** Keeps an unpublished execution back, saying which budget holds it (or, null, lets the outbox take it). */
  async holdByBudget(id: string, message: string | null): Promise<void> {
    await this.pool.query(`UPDATE executions SET held_by_budget = $2 WHERE id = $1 AND NOT published`, [id, message]);
  }

  /** Rows whose request never reached the bus (NATS was down when they were accepted), oldest first. */
  async unpublished(olderThanMs: number, limit = 500): Promise<UnpublishedRow[]> {
    const r = await this.pool.query<UnpublishedRow>(
      `SELECT e.id, e.owner_id AS "ownerId", e.project_id AS "projectId", p.team_id AS "teamId", e.spec AS "specBytes", e.account AS "accountBytes",
         e.created_at AS "createdAt", e.held_by_budget AS "heldByBudget"
       FROM executions e JOIN projects p ON p.id = e.project_id
       WHERE NOT e.published AND e.created_at < now() - make_interval(secs => $1::float / 1000)
       -- Held rows after the others: many held by a budget never keep a NATS outage's backlog waiting.
       ORDER BY (e.held_by_budget IS NOT NULL), e.created_at LIMIT $2`,
      [olderThanMs, limit],
    );
    return r.rows;
  }

  /**
   * Ends an execution whose request can never be put on the bus: failed, with the reason, and done for the
   * outbox. The scheduler never heard of it, so this row is the only place its end is recorded.
   */
  async failUnpublished(id: string, reason: string): Promise<ExecutionRow | null> {
    const r = await this.pool.query<ExecutionRow>(
      `WITH e AS (
         UPDATE executions SET state = 'failed', error = $2, finished_at = now(), published = true
         WHERE id = $1 AND NOT published AND state = 'queued' RETURNING *)
       SELECT ${COLUMNS} FROM e JOIN projects p ON p.id = e.project_id`,
      [id, reason],
    );
    return r.rows[0] ?? null;
  }

  /**
   * Removes final executions that ended before `before` (their terminal tickets go with them), at most
   * `limit` at a time so that a large backlog never holds a long lock; returns how many.
   */
  async removeFinishedBefore(before: Date, limit = 1000): Promise<number> {
    const r = await this.pool.query(
      `DELETE FROM executions WHERE id IN (
         SELECT id FROM executions
         WHERE state IN ('completed', 'failed', 'cancelled') AND COALESCE(finished_at, created_at) < $1
         LIMIT $2)`,
      [before, limit],
    );
    return r.rowCount ?? 0;
  }

  /**
   * The execution if `ownerId` owns it (null: whoever does). Who may see it is ProjectAccess's to say
   * (ExecutionService.get); owning is what the ingress still asks about.
   */
  async get(id: string, ownerId: string | null): Promise<ExecutionRow | null> {
    const r = await this.pool.query<ExecutionRow>(
      `SELECT ${COLUMNS} FROM executions e JOIN projects p ON p.id = e.project_id WHERE e.id = $1 AND ($2::text IS NULL OR e.owner_id = $2)`,
      [id, ownerId],
    );
    return r.rows[0] ?? null;
  }

  /** Newest first; `projectIds` null: every project. */
  async list(opts: { projectIds: readonly string[] | null; state?: ApiState; limit: number; cursor?: string }): Promise<ExecutionRow[]> {
    const r = await this.pool.query<ExecutionRow>(
      `SELECT ${COLUMNS} FROM executions e JOIN projects p ON p.id = e.project_id
       WHERE ($1::text[] IS NULL OR e.project_id = ANY($1)) AND ($2::text IS NULL OR e.state = $2) AND ($3::text IS NULL OR e.id < $3)
       ORDER BY e.id DESC LIMIT $4`,
      [opts.projectIds === null ? null : [...opts.projectIds], opts.state ?? null, opts.cursor ?? null, opts.limit],
    );
    return r.rows;
  }

  /** Applies a state event if it is newer than what the row has; events may arrive twice or late. */
  async applyState(id: string, u: StateUpdate): Promise<boolean> {
    const r = await this.pool.query(
      `UPDATE executions SET state = $2, version = $3, exit_code = COALESCE($4, exit_code), error = COALESCE($5, error),
         started_at = COALESCE(started_at, to_timestamp($6::float / 1000)),
         finished_at = COALESCE(finished_at, to_timestamp($7::float / 1000)),
         broker_id = COALESCE($8, broker_id)
       WHERE id = $1 AND version < $3`,
      [id, u.state, u.version, u.exitCode, u.error, u.startedAtMs || null, u.finishedAtMs || null, u.brokerId || null],
    );
    return r.rowCount === 1;
  }
}
