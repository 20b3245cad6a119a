import type { Pool } from '@paddock/db';
import type { SecretBox } from '@paddock/secrets';

export interface SecretInfo {
  name: string;
  updatedAt: Date;
}

/** The secrets table: values go in sealed and come out only for an execution's environment. */
export class SecretStore {
  constructor(
    private readonly pool: Pool,
    /** Also seals what an execution's spec carries to the broker (sealSpec). */
    readonly box: SecretBox,
  ) {}

  async put(ownerId: string, name: string, value: string): Promise<void> {
    await this.pool.query(
      `INSERT INTO secrets (owner_id, name, sealed) VALUES ($1, $2, $3)
       ON CONFLICT (owner_id, name) DO UPDATE SET sealed = EXCLUDED.sealed, updated_at = now()`,
      [ownerId, name, this.box.seal(value, associated(ownerId, name))],
    );
  }

  async list(ownerId: string): Promise<SecretInfo[]> {
    const r = await this.pool.query<SecretInfo>(`SELECT name, updated_at AS "updatedAt" FROM secrets WHERE owner_id = $1 ORDER BY name`, [ownerId]);
    return r.rows;
  }

  /** False when there was no such secret. */
  async delete(ownerId: string, name: string): Promise<boolean> {
    const r = await this.pool.query(`DELETE FROM secrets WHERE owner_id = $1 AND name = $2`, [ownerId, name]);
    return (r.rowCount ?? 0) > 0;
  }

  /** Every secret of the owner, opened: what an agent's environment starts from. */
  async values(ownerId: string): Promise<Record<string, string>> {
    const r = await this.pool.query<{ name: string; sealed: Buffer }>(`SELECT name, sealed FROM secrets WHERE owner_id = $1`, [ownerId]);
    return Object.fromEntries(r.rows.map((row) => [row.name, this.box.open(row.sealed, associated(ownerId, row.name))]));
  }
}

function associated(ownerId: string, name: string): string {
  return `paddock.secret.v1/${ownerId}/${name}`;
}
