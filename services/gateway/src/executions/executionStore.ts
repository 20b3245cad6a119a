import type { Pool } from '@paddock/db';
import { ExecutionSpec, type BlobRef } from '@paddock/proto';
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

/** A row whose request has not reached the bus yet, with its spec as stored (it may not decode any more). */
export interface UnpublishedRow {
  id: string;
  ownerId: string;
  specBytes: Buffer;
  createdAt: Date;
}

export interface ExecutionRow {
  id: string;
  ownerId: string;
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

const COLUMNS = `id, owner_id AS "ownerId", request, state, version, exit_code AS "exitCode", error,
  created_at AS "createdAt", started_at AS "startedAt", finished_at AS "finishedAt", broker_id AS "brokerId"`;

export const FINAL_STATES: readonly ApiState[] = ['completed', 'failed', 'cancelled'];

/** The gateway's executions table. */
export class ExecutionStore {
  /** The gateway's database, whose other tables (idempotency keys) are written in transactions with this one. */
  constructor(readonly pool: Pool) {}

  /**
   * `runTokenSha256`: the run token issued with it; a row without one accepts none. `db`: a transaction's
   * client, when the row must be stored together with something else.
   */
  async insert(id: string, ownerId: string, request: NormalizedRequest, spec: ExecutionSpec, runTokenSha256?: string, db: Queryable = this.pool): Promise<ExecutionRow> {
    const stored: StoredRequest = {
      ...request,
      ...(runTokenSha256 === undefined ? {} : { runTokenSha256 }),
      script: spec.scriptRef ? null : request.script,
      scriptRef: spec.scriptRef ?? null,
      files: Object.keys(request.files).sort(),
      env: Object.keys(request.env).sort(),
      repo: request.repo ? { url: request.repo.url, branch: request.repo.branch } : null,
    };
    const r = await db.query<ExecutionRow>(
      `INSERT INTO executions (id, owner_id, request, spec, state) VALUES ($1, $2, $3, $4, 'queued') RETURNING ${COLUMNS}`,
      [id, ownerId, stored, Buffer.from(ExecutionSpec.encode(spec).finish())],
    );
    return r.rows[0]!;
  }

  async markPublished(id: string): Promise<void> {
    await this.pool.query(`UPDATE executions SET published = true WHERE id = $1`, [id]);
  }

  /** Rows whose request never reached the bus (NATS was down when they were accepted), oldest first. */
  async unpublished(olderThanMs: number, limit = 500): Promise<UnpublishedRow[]> {
    const r = await this.pool.query<UnpublishedRow>(
      `SELECT id, owner_id AS "ownerId", spec AS "specBytes", created_at AS "createdAt" FROM executions
       WHERE NOT published AND created_at < now() - make_interval(secs => $1::float / 1000) ORDER BY created_at LIMIT $2`,
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
      `UPDATE executions SET state = 'failed', error = $2, finished_at = now(), published = true
       WHERE id = $1 AND NOT published AND state = 'queued' RETURNING ${COLUMNS}`,
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

  /** The execution if `ownerId` may see it (null = any owner, for admins). */
  async get(id: string, ownerId: string | null): Promise<ExecutionRow | null> {
    const r = await this.pool.query<ExecutionRow>(
      `SELECT ${COLUMNS} FROM executions WHERE id = $1 AND ($2::text IS NULL OR owner_id = $2)`,
      [id, ownerId],
    );
    return r.rows[0] ?? null;
  }

  async list(opts: { ownerId: string | null; state?: ApiState; limit: number; cursor?: string }): Promise<ExecutionRow[]> {
    const r = await this.pool.query<ExecutionRow>(
      `SELECT ${COLUMNS} FROM executions
       WHERE ($1::text IS NULL OR owner_id = $1) AND ($2::text IS NULL OR state = $2) AND ($3::text IS NULL OR id < $3)
       ORDER BY id DESC LIMIT $4`,
      [opts.ownerId, opts.state ?? null, opts.cursor ?? null, opts.limit],
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
