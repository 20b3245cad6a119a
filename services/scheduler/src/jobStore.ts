import type { Pool } from '@paddock/db';
import { ExecutionSpec } from '@paddock/proto';
import { ALLOWED_FROM, type JobState } from './states.js';

export interface Job {
  executionId: string;
  ownerId: string;
  spec: ExecutionSpec;
  state: JobState;
  version: number;
  publishedVersion: number;
  brokerId: string | null;
  cancelRequested: boolean;
  exitCode: number | null;
  reason: string;
  requestedAtMs: number;
  startedAtMs: number | null;
  finishedAtMs: number | null;
  launchAttempts: number;
  nextAttemptMs: number;
  traceParent: string | null;
}

const COLUMNS = `execution_id AS "executionId", owner_id AS "ownerId", spec, state, version,
  published_version AS "publishedVersion", broker_id AS "brokerId", cancel_requested AS "cancelRequested",
  exit_code AS "exitCode", reason, requested_at_ms AS "requestedAtMs", started_at_ms AS "startedAtMs",
  finished_at_ms AS "finishedAtMs", launch_attempts AS "launchAttempts", next_attempt_ms AS "nextAttemptMs",
  trace_parent AS "traceParent"`;

type Raw = Omit<Job, 'spec'> & { spec: Buffer };
const toJob = (r: Raw): Job => ({ ...r, spec: ExecutionSpec.decode(r.spec) });

export interface TransitionFields {
  brokerId?: string;
  exitCode?: number | null;
  reason?: string;
  startedAtMs?: number;
  finishedAtMs?: number;
}

/** scheduler_jobs: the queue and the lifecycle state of every execution. */
export class JobStore {
  constructor(readonly pool: Pool) {}

  /** Queues a request once; a redelivered request changes nothing. */
  async enqueue(job: { executionId: string; ownerId: string; spec: ExecutionSpec; requestedAtMs: number; traceParent: string | null }): Promise<boolean> {
    const r = await this.pool.query(
      `INSERT INTO scheduler_jobs (execution_id, owner_id, spec, state, version, published_version, requested_at_ms, trace_parent)
       VALUES ($1, $2, $3, 'queued', 1, 1, $4, $5) ON CONFLICT (execution_id) DO NOTHING`,
      [job.executionId, job.ownerId, Buffer.from(ExecutionSpec.encode(job.spec).finish()), job.requestedAtMs, job.traceParent],
    );
    return r.rowCount === 1;
  }

  async get(executionId: string): Promise<Job | null> {
    const r = await this.pool.query<Raw>(`SELECT ${COLUMNS} FROM scheduler_jobs WHERE execution_id = $1`, [executionId]);
    return r.rows[0] ? toJob(r.rows[0]) : null;
  }

  /**
   * Moves a job to `to` if the lifecycle allows it from its current state; returns the job as it is now
   * and whether this call changed it.
   */
  async transition(executionId: string, to: JobState, f: TransitionFields = {}): Promise<{ job: Job | null; changed: boolean }> {
    const r = await this.pool.query<Raw>(
      `UPDATE scheduler_jobs SET state = $2, version = version + 1, updated_at = now(),
         broker_id = COALESCE($4, broker_id),
         exit_code = CASE WHEN $5::boolean THEN $6 ELSE exit_code END,
         reason = COALESCE($7, reason),
         started_at_ms = COALESCE($8, started_at_ms),
         finished_at_ms = COALESCE($9, finished_at_ms)
       WHERE execution_id = $1 AND state = ANY($3::text[]) RETURNING ${COLUMNS}`,
      [executionId, to, ALLOWED_FROM[to], f.brokerId ?? null, f.exitCode !== undefined, f.exitCode ?? null, f.reason ?? null, f.startedAtMs ?? null, f.finishedAtMs ?? null],
    );
    if (r.rows[0]) return { job: toJob(r.rows[0]), changed: true };
    return { job: await this.get(executionId), changed: false };
  }

  async markPublished(executionId: string, version: number): Promise<void> {
    await this.pool.query(`UPDATE scheduler_jobs SET published_version = GREATEST(published_version, $2) WHERE execution_id = $1`, [executionId, version]);
  }

  async unpublished(limit = 500): Promise<Job[]> {
    const r = await this.pool.query<Raw>(`SELECT ${COLUMNS} FROM scheduler_jobs WHERE published_version < version LIMIT $1`, [limit]);
    return r.rows.map(toJob);
  }

  async requestCancel(executionId: string): Promise<Job | null> {
    const r = await this.pool.query<Raw>(`UPDATE scheduler_jobs SET cancel_requested = true WHERE execution_id = $1 RETURNING ${COLUMNS}`, [executionId]);
    return r.rows[0] ? toJob(r.rows[0]) : null;
  }

  async active(): Promise<Job[]> {
    const r = await this.pool.query<Raw>(`SELECT ${COLUMNS} FROM scheduler_jobs WHERE state IN ('provisioning', 'executing')`);
    return r.rows.map(toJob);
  }

  async launchFailed(executionId: string, nextAttemptMs: number): Promise<void> {
    await this.pool.query(
      `UPDATE scheduler_jobs SET launch_attempts = launch_attempts + 1, next_attempt_ms = $2 WHERE execution_id = $1`,
      [executionId, nextAttemptMs],
    );
  }

  /**
   * Takes up to `slots` queued jobs in request order into provisioning on the brokers `place` picks,
   * skipping owners at their limit, atomically (several schedulers may run; SKIP LOCKED keeps them apart).
   */
  async claim(
    slots: number,
    maxRunningPerOwner: number,
    place: (job: Job) => string | null,
  ): Promise<{ claimed: Job[]; overLimit: Job[] }> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      // Claims are serialised: a count of an owner's running jobs is only true while no other claim runs.
      await client.query(`SELECT pg_advisory_xact_lock(hashtext('paddock-scheduler-claim'))`);
      // Owners under their limit first, so a long queue of one owner at its limit holds nobody else back;
      // the others too, as the ones to report over the limit.
      const underLimit = `(SELECT count(*) FROM scheduler_jobs r WHERE r.owner_id = j.owner_id AND r.state IN ('provisioning', 'executing')) < $2`;
      const pick = (condition: string) =>
        client.query<Raw>(
          `SELECT ${COLUMNS} FROM scheduler_jobs j WHERE state = 'queued' AND ${condition}
           ORDER BY requested_at_ms, execution_id LIMIT $1 FOR UPDATE SKIP LOCKED`,
          [Math.max(slots * 4, 64), maxRunningPerOwner],
        );
      const [under, over] = await Promise.all([pick(underLimit), pick(`NOT ${underLimit}`)]);
      const queued = [...under.rows, ...over.rows]
        .map(toJob)
        .sort((a, b) => a.requestedAtMs - b.requestedAtMs || a.executionId.localeCompare(b.executionId));
      if (queued.length === 0) {
        await client.query('COMMIT');
        return { claimed: [], overLimit: [] };
      }
      const owners = [...new Set(queued.map((j) => j.ownerId))];
      const running = new Map(
        (
          await client.query<{ ownerId: string; n: number }>(
            `SELECT owner_id AS "ownerId", count(*)::int AS n FROM scheduler_jobs
             WHERE state IN ('provisioning', 'executing') AND owner_id = ANY($1::text[]) GROUP BY owner_id`,
            [owners],
          )
        ).rows.map((r) => [r.ownerId, r.n]),
      );
      const claimed: Job[] = [];
      const overLimit: Job[] = [];
      for (const job of queued) {
        if (claimed.length >= slots) break;
        const n = running.get(job.ownerId) ?? 0;
        if (n >= maxRunningPerOwner) {
          overLimit.push(job);
          continue;
        }
        const brokerId = place(job);
        if (!brokerId) break;
        running.set(job.ownerId, n + 1);
        const r = await client.query<Raw>(
          `UPDATE scheduler_jobs SET state = 'provisioning', version = version + 1, broker_id = $2, updated_at = now()
           WHERE execution_id = $1 RETURNING ${COLUMNS}`,
          [job.executionId, brokerId],
        );
        claimed.push(toJob(r.rows[0]!));
      }
      await client.query('COMMIT');
      return { claimed, overLimit };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  /** Executions provisioning or executing, per broker. */
  async activeByBroker(): Promise<Map<string, number>> {
    const r = await this.pool.query<{ brokerId: string; n: number }>(
      `SELECT broker_id AS "brokerId", count(*)::int AS n FROM scheduler_jobs WHERE state IN ('provisioning', 'executing') GROUP BY broker_id`,
    );
    return new Map(r.rows.map((x) => [x.brokerId, x.n]));
  }
}
