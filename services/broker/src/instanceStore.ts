import type { Pool } from '@paddock/db';
import { onDatabase } from './unavailable.js';

export type InstanceState = 'provisioning' | 'running' | 'ended';
/** Why Paddock stopped a job: asked to, past its time limit, or its workspace full at its disk limit. */
export type StopCause = 'cancelled' | 'timed_out' | 'disk_full';

export interface InstanceRow {
  executionId: string;
  brokerId: string;
  ownerId: string;
  containerId: string | null;
  state: InstanceState;
  stopCause: StopCause | null;
  deadlineMs: number | null;
  startedAtMs: number | null;
  finishedAtMs: number | null;
  sshPassword: string | null;
  exit: ExitRecord | null;
}

export interface ExitRecord {
  cause: string;
  exitCode: number | null;
  detail: string;
  artifactsSaved: boolean;
  finishedAtMs: number;
}

const COLUMNS = `execution_id AS "executionId", broker_id AS "brokerId", owner_id AS "ownerId",
  container_id AS "containerId", state, stop_cause AS "stopCause", deadline_ms AS "deadlineMs",
  started_at_ms AS "startedAtMs", finished_at_ms AS "finishedAtMs", exit_cause AS "exitCause",
  exit_code AS "exitCode", exit_detail AS "exitDetail", artifacts_saved AS "artifactsSaved", ssh_password AS "sshPassword"`;

interface RawRow extends Omit<InstanceRow, 'exit'> {
  exitCause: string | null;
  exitCode: number | null;
  exitDetail: string | null;
  artifactsSaved: boolean;
}

function toRow(r: RawRow): InstanceRow {
  const { exitCause, exitCode, exitDetail, artifactsSaved, ...rest } = r;
  return {
    ...rest,
    exit: exitCause === null ? null : { cause: exitCause, exitCode, detail: exitDetail ?? '', artifactsSaved, finishedAtMs: r.finishedAtMs ?? 0 },
  };
}

/**
 * The broker's own table, broker_instances: one row per execution it was asked to launch. A call made while
 * PostgreSQL is away rejects with a DatabaseUnavailableError (see unavailable.ts).
 */
export class InstanceStore {
  constructor(private readonly pool: Pool) {}

  private query<R extends object = Record<string, unknown>>(operation: string, text: string, values: unknown[]): Promise<{ rows: R[]; rowCount: number | null }> {
    return onDatabase(operation, () => this.pool.query<R & Record<string, unknown>>(text, values));
  }

  /** Records a launch; returns the existing row instead when this execution was launched before. */
  async claim(executionId: string, brokerId: string, ownerId: string): Promise<{ row: InstanceRow; created: boolean }> {
    // Twice: a row forgotten (deleted) between the insert and the read is claimed afresh.
    for (let attempt = 0; attempt < 2; attempt++) {
      const inserted = await this.query<RawRow>(
        'claim',
        `INSERT INTO broker_instances (execution_id, broker_id, owner_id, state) VALUES ($1, $2, $3, 'provisioning')
         ON CONFLICT (execution_id) DO NOTHING RETURNING ${COLUMNS}`,
        [executionId, brokerId, ownerId],
      );
      if (inserted.rows[0]) return { row: toRow(inserted.rows[0]), created: true };
      const existing = await this.get(executionId);
      if (existing) return { row: existing, created: false };
    }
    throw new Error(`the row of execution ${executionId} in broker_instances was deleted twice while it was being claimed`);
  }

  async get(executionId: string): Promise<InstanceRow | null> {
    const r = await this.query<RawRow>('get', `SELECT ${COLUMNS} FROM broker_instances WHERE execution_id = $1`, [executionId]);
    return r.rows[0] ? toRow(r.rows[0]) : null;
  }

  async started(executionId: string, containerId: string, startedAtMs: number, deadlineMs: number): Promise<void> {
    await this.query(
      'started',
      `UPDATE broker_instances SET state = 'running', container_id = $2, started_at_ms = $3, deadline_ms = $4
       WHERE execution_id = $1 AND state <> 'ended'`,
      [executionId, containerId, startedAtMs, deadlineMs],
    );
  }

  /** `sealed`: the password sealed with the broker's key (base64); the column never holds it in clear. */
  async setSshPassword(executionId: string, sealed: string): Promise<void> {
    await this.query('setSshPassword', `UPDATE broker_instances SET ssh_password = $2 WHERE execution_id = $1`, [executionId, sealed]);
  }

  async containerCreated(executionId: string, containerId: string): Promise<void> {
    await this.query('containerCreated', `UPDATE broker_instances SET container_id = $2 WHERE execution_id = $1`, [executionId, containerId]);
  }

  /** The first cause wins: a job cancelled while timing out stays cancelled. */
  async stopping(executionId: string, cause: StopCause): Promise<void> {
    await this.query('stopping', `UPDATE broker_instances SET stop_cause = COALESCE(stop_cause, $2) WHERE execution_id = $1`, [executionId, cause]);
  }

  async exited(executionId: string, exit: ExitRecord): Promise<void> {
    await this.query(
      'exited',
      `UPDATE broker_instances SET exit_cause = $2, exit_code = $3, exit_detail = $4, artifacts_saved = $5, finished_at_ms = $6
       WHERE execution_id = $1`,
      [executionId, exit.cause, exit.exitCode, exit.detail, exit.artifactsSaved, exit.finishedAtMs],
    );
  }

  /**
   * Deletes the row of a launch that never started its job (no exit recorded, never running), so that the
   * same execution can be launched again as if for the first time. False when the row is past that.
   */
  async forget(executionId: string): Promise<boolean> {
    const r = await this.query('forget', `DELETE FROM broker_instances WHERE execution_id = $1 AND state = 'provisioning' AND exit_cause IS NULL`, [executionId]);
    return (r.rowCount ?? 0) > 0;
  }

  async ended(executionId: string): Promise<void> {
    await this.query('ended', `UPDATE broker_instances SET state = 'ended' WHERE execution_id = $1`, [executionId]);
  }

  /** Deletes the rows of this broker's executions that ended before `beforeMs`; returns how many. */
  async removeEndedBefore(brokerId: string, beforeMs: number): Promise<number> {
    const r = await this.query(
      'removeEndedBefore',
      `DELETE FROM broker_instances WHERE broker_id = $1 AND state = 'ended'
       AND COALESCE(finished_at_ms, (EXTRACT(EPOCH FROM created_at) * 1000)::BIGINT) < $2`,
      [brokerId, beforeMs],
    );
    return r.rowCount ?? 0;
  }

  async live(brokerId: string): Promise<InstanceRow[]> {
    const r = await this.query<RawRow>('live', `SELECT ${COLUMNS} FROM broker_instances WHERE broker_id = $1 AND state <> 'ended'`, [brokerId]);
    return r.rows.map(toRow);
  }
}
