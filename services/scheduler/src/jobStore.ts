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
  /** When it was first claimed for a broker: launch retries are bounded from there. */
  claimedAtMs: number | null;
  traceParent: string | null;
  /**
   * Why the stored spec cannot be decoded (a corrupt row, or one written by an incompatible version), or
   * null. Such a job carries an empty spec and is failed instead of launched: it must not stop the queue.
   */
  specError: string | null;
}

/** The scheduler's view of one job as the reconciler needs it, with its last change on this process's clock. */
export interface JobView {
  readonly executionId: string;
  readonly state: JobState;
  readonly brokerId: string | null;
  readonly changedAtMs: number;
  readonly cancelRequested: boolean;
}

const COLUMNS = `execution_id AS "executionId", owner_id AS "ownerId", spec, state, version,
  published_version AS "publishedVersion", broker_id AS "brokerId", cancel_requested AS "cancelRequested",
  exit_code AS "exitCode", reason, requested_at_ms AS "requestedAtMs", started_at_ms AS "startedAtMs",
  finished_at_ms AS "finishedAtMs", launch_attempts AS "launchAttempts", next_attempt_ms AS "nextAttemptMs",
  claimed_at_ms AS "claimedAtMs", trace_parent AS "traceParent"`;

/** COLUMNS with every column named through `alias`, for statements that join the table with itself. */
function qualified(alias: string): string {
  return COLUMNS.replace(/(^|\s)([a-z_]+)( AS|,|$)/g, `$1${alias}.$2$3`);
}

type Raw = Omit<Job, 'spec' | 'specError'> & { spec: Buffer };

function toJob(r: Raw): Job {
  try {
    return { ...r, spec: ExecutionSpec.decode(r.spec), specError: null };
  } catch (err) {
    return { ...r, spec: ExecutionSpec.fromPartial({}), specError: (err as Error).message };
  }
}

/** The reason given to a person for a job whose stored spec cannot be decoded. */
export function unreadableReason(job: Job): string {
  return `Paddock could not read this execution's stored request (${job.specError ?? 'unknown error'}); submit it again`;
}

/** What a transition did: a job it changed says which state it left. */
export type Transitioned =
  | { readonly job: Job; readonly changed: true; readonly from: JobState }
  | { readonly job: Job | null; readonly changed: false };

export interface TransitionFields {
  brokerId?: string;
  exitCode?: number | null;
  reason?: string;
  startedAtMs?: number;
  finishedAtMs?: number;
}

/** What one claim did. */
export interface Claim {
  /** Moved from queued to provisioning, each on the broker `place` picked. */
  readonly claimed: Job[];
  /** Left queued: their owner is at its limit. */
  readonly overLimit: Job[];
  /** Failed: their stored spec cannot be decoded. */
  readonly unreadable: Job[];
  /** How long each claimed job had been queued, by execution id. */
  readonly queuedForMs: ReadonlyMap<string, number>;
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

  /**
   * Records a request that can never run as failed at once (a redelivery changes nothing); returns the
   * new job, or null when the execution was already known.
   */
  async rejectRequest(job: { executionId: string; ownerId: string; requestedAtMs: number; reason: string; traceParent: string | null }, nowMs = Date.now()): Promise<Job | null> {
    const r = await this.pool.query<Raw>(
      `INSERT INTO scheduler_jobs (execution_id, owner_id, spec, state, version, published_version, requested_at_ms, reason, finished_at_ms, trace_parent)
       VALUES ($1, $2, $3, 'failed', 2, 1, $4, $5, $6, $7) ON CONFLICT (execution_id) DO NOTHING RETURNING ${COLUMNS}`,
      [job.executionId, job.ownerId, Buffer.from(ExecutionSpec.encode(ExecutionSpec.fromPartial({})).finish()), job.requestedAtMs, job.reason, nowMs, job.traceParent],
    );
    return r.rows[0] ? toJob(r.rows[0]) : null;
  }

  async get(executionId: string): Promise<Job | null> {
    const r = await this.pool.query<Raw>(`SELECT ${COLUMNS} FROM scheduler_jobs WHERE execution_id = $1`, [executionId]);
    return r.rows[0] ? toJob(r.rows[0]) : null;
  }

  /**
   * Moves a job to `to` if the lifecycle allows it from its current state; returns the job as it is now,
   * whether this call changed it and, when it did, the state it left.
   */
  async transition(executionId: string, to: JobState, f: TransitionFields = {}): Promise<Transitioned> {
    // The row is locked in the subquery, so `prev` is the state this very update replaced even when another
    // transition of the same job commits in between (that one is then seen, and this update re-checked).
    const r = await this.pool.query<Raw & { fromState: JobState }>(
      `UPDATE scheduler_jobs j SET state = $2, version = j.version + 1, updated_at = now(),
         broker_id = COALESCE($4, j.broker_id),
         exit_code = CASE WHEN $5::boolean THEN $6 ELSE j.exit_code END,
         reason = COALESCE($7, j.reason),
         started_at_ms = COALESCE($8, j.started_at_ms),
         finished_at_ms = COALESCE($9, j.finished_at_ms)
       FROM (SELECT execution_id, state FROM scheduler_jobs WHERE execution_id = $1 FOR UPDATE) prev
       WHERE j.execution_id = prev.execution_id AND j.state = ANY($3::text[])
       RETURNING ${qualified('j')}, prev.state AS "fromState"`,
      [executionId, to, ALLOWED_FROM[to], f.brokerId ?? null, f.exitCode !== undefined, f.exitCode ?? null, f.reason ?? null, f.startedAtMs ?? null, f.finishedAtMs ?? null],
    );
    const row = r.rows[0];
    if (row) {
      const { fromState, ...raw } = row;
      return { job: toJob(raw), changed: true, from: fromState };
    }
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

  /** Counts a failed launch attempt; it is a change of the job, so the reconciler lets it settle first. */
  async launchFailed(executionId: string, nextAttemptMs: number): Promise<void> {
    await this.pool.query(
      `UPDATE scheduler_jobs SET launch_attempts = launch_attempts + 1, next_attempt_ms = $2, updated_at = now() WHERE execution_id = $1`,
      [executionId, nextAttemptMs],
    );
  }

  /** Jobs claimed for `brokerId` whose launch has not been answered with a start. */
  async provisioningOn(brokerId: string): Promise<Job[]> {
    const r = await this.pool.query<Raw>(`SELECT ${COLUMNS} FROM scheduler_jobs WHERE state = 'provisioning' AND broker_id = $1`, [brokerId]);
    return r.rows.map(toJob);
  }

  /**
   * Every active job, and the jobs of `executionIds` in whatever state, with the time of their last change
   * measured by the database and expressed on this process's clock (so the two clocks need not agree).
   */
  async views(executionIds: readonly string[], nowMs = Date.now()): Promise<JobView[]> {
    const r = await this.pool.query<{ executionId: string; state: JobState; brokerId: string | null; ageMs: number; cancelRequested: boolean }>(
      `SELECT execution_id AS "executionId", state, broker_id AS "brokerId", cancel_requested AS "cancelRequested",
         GREATEST(0, floor(extract(epoch FROM clock_timestamp() - updated_at) * 1000))::bigint AS "ageMs"
       FROM scheduler_jobs WHERE state IN ('provisioning', 'executing') OR execution_id = ANY($1::text[])`,
      [executionIds],
    );
    return r.rows.map((x) => ({ executionId: x.executionId, state: x.state, brokerId: x.brokerId, changedAtMs: nowMs - Number(x.ageMs), cancelRequested: x.cancelRequested }));
  }

  /**
   * Deletes final jobs whose last change is older than `retentionDays` and whose final state reached the
   * bus, at most `batch` rows per statement so that a large backlog never holds long locks.
   */
  async deleteFinalOlderThan(retentionDays: number, batch = 1_000): Promise<number> {
    let deleted = 0;
    for (;;) {
      const r = await this.pool.query(
        `DELETE FROM scheduler_jobs WHERE execution_id IN (
           SELECT execution_id FROM scheduler_jobs
           WHERE state IN ('completed', 'failed', 'cancelled') AND published_version = version
             AND updated_at < now() - make_interval(days => $1)
           LIMIT $2)`,
        [retentionDays, batch],
      );
      deleted += r.rowCount ?? 0;
      if ((r.rowCount ?? 0) < batch) return deleted;
    }
  }

  /**
   * Takes up to `slots` queued jobs in request order into provisioning on the brokers `place` picks,
   * skipping owners at their limit, atomically (several schedulers may run; SKIP LOCKED keeps them apart).
   * A job whose cancel was asked for is never claimed (its cancel moves it to cancelled), and a job whose
   * spec cannot be read is failed in the same transaction (`unreadable`) rather than holding up the queue.
   */
  async claim(
    slots: number,
    maxRunningPerOwner: number,
    place: (job: Job) => string | null,
    nowMs = Date.now(),
  ): Promise<Claim> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      // Claims are serialised: a count of an owner's running jobs is only true while no other claim runs.
      await client.query(`SELECT pg_advisory_xact_lock(hashtext('paddock-scheduler-claim'))`);
      // Owners under their limit first, so a long queue of one owner at its limit holds nobody else back;
      // the others too, as the ones to report over the limit.
      const underLimit = `(SELECT count(*) FROM scheduler_jobs r WHERE r.owner_id = j.owner_id AND r.state IN ('provisioning', 'executing')) < $2`;
      // How long each has been queued is measured by the database, whose clock stamped the row.
      const pick = (condition: string) =>
        client.query<Raw & { queuedForMs: number }>(
          `SELECT ${COLUMNS}, GREATEST(0, floor(extract(epoch FROM clock_timestamp() - updated_at) * 1000))::bigint AS "queuedForMs"
           FROM scheduler_jobs j WHERE state = 'queued' AND NOT cancel_requested AND ${condition}
           ORDER BY requested_at_ms, execution_id LIMIT $1 FOR UPDATE SKIP LOCKED`,
          [Math.max(slots * 4, 64), maxRunningPerOwner],
        );
      const [under, over] = await Promise.all([pick(underLimit), pick(`NOT ${underLimit}`)]);
      const queuedForMs = new Map<string, number>();
      const queued = [...under.rows, ...over.rows]
        .map(({ queuedForMs: waitedMs, ...raw }) => {
          queuedForMs.set(raw.executionId, waitedMs);
          return toJob(raw);
        })
        .sort((a, b) => a.requestedAtMs - b.requestedAtMs || a.executionId.localeCompare(b.executionId));
      if (queued.length === 0) {
        await client.query('COMMIT');
        return { claimed: [], overLimit: [], unreadable: [], queuedForMs: new Map() };
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
      const unreadable: Job[] = [];
      for (const job of queued) {
        if (claimed.length >= slots) break;
        if (job.specError !== null) {
          const r = await client.query<Raw>(
            `UPDATE scheduler_jobs SET state = 'failed', version = version + 1, reason = $2, finished_at_ms = $3, updated_at = now()
             WHERE execution_id = $1 RETURNING ${COLUMNS}`,
            [job.executionId, unreadableReason(job), nowMs],
          );
          unreadable.push(toJob(r.rows[0]!));
          continue;
        }
        const n = running.get(job.ownerId) ?? 0;
        if (n >= maxRunningPerOwner) {
          overLimit.push(job);
          continue;
        }
        const brokerId = place(job);
        if (!brokerId) break;
        running.set(job.ownerId, n + 1);
        const r = await client.query<Raw>(
          `UPDATE scheduler_jobs SET state = 'provisioning', version = version + 1, broker_id = $2, updated_at = now(),
             claimed_at_ms = COALESCE(claimed_at_ms, $3)
           WHERE execution_id = $1 RETURNING ${COLUMNS}`,
          [job.executionId, brokerId, nowMs],
        );
        claimed.push(toJob(r.rows[0]!));
      }
      await client.query('COMMIT');
      return { claimed, overLimit, unreadable, queuedForMs: new Map(claimed.map((j) => [j.executionId, queuedForMs.get(j.executionId) ?? 0])) };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  /** How many jobs are in each state: for the metrics, read at each collection. */
  async countByState(): Promise<Partial<Record<JobState, number>>> {
    const r = await this.pool.query<{ state: JobState; n: number }>(`SELECT state, count(*)::int AS n FROM scheduler_jobs GROUP BY state`);
    return Object.fromEntries(r.rows.map((x) => [x.state, x.n]));
  }

  /** The executions provisioning or executing, per broker. */
  async activeByBroker(): Promise<Map<string, Set<string>>> {
    const r = await this.pool.query<{ brokerId: string; executionId: string }>(
      `SELECT broker_id AS "brokerId", execution_id AS "executionId" FROM scheduler_jobs WHERE state IN ('provisioning', 'executing')`,
    );
    const out = new Map<string, Set<string>>();
    for (const { brokerId, executionId } of r.rows) {
      let ids = out.get(brokerId);
      if (!ids) out.set(brokerId, (ids = new Set()));
      ids.add(executionId);
    }
    return out;
  }
}
