import type { Pool } from '@paddock/db';

/** An execution as the metering proxy needs it: who it is billed to, its sealed keys, and whether it ended. */
export interface RunRecord {
  readonly executionId: string;
  readonly ownerId: string;
  readonly projectId: string;
  readonly teamId: string;
  readonly workflowId: string;
  readonly ended: boolean;
  readonly sealedCredentials: Buffer;
}

/**
 * The metering proxy's view of live runs, from the accounts the gateway published: a run key is known by
 * its SHA-256 only, and a run whose execution is final is `ended`. Read per call, so a run ends for the
 * proxy as soon as its final state is ingested.
 */
export class AccountRunDirectory {
  constructor(private readonly pool: Pool) {}

  async byKeyHash(sha256Hex: string): Promise<RunRecord | undefined> {
    const r = await this.pool.query<Omit<RunRecord, 'sealedCredentials'> & { sealedCredentials: Buffer | null }>(
      `SELECT a.execution_id AS "executionId", a.owner_id AS "ownerId", a.project_id AS "projectId", a.team_id AS "teamId",
              a.workflow_id AS "workflowId", e.execution_id IS NOT NULL AS ended, a.sealed_llm_credentials AS "sealedCredentials"
         FROM accounts a LEFT JOIN execution_ends e ON e.execution_id = a.execution_id
        WHERE a.llm_key_sha256 = $1`,
      [sha256Hex.toLowerCase()],
    );
    const row = r.rows[0];
    if (!row) return undefined;
    return { ...row, sealedCredentials: row.sealedCredentials ?? Buffer.alloc(0) };
  }
}
