import type { Pool } from '@paddock/db';
import { PaddockError } from '@paddock/errors';
import type { SecretBox } from '@paddock/secrets';

export interface SecretInfo {
  name: string;
  updatedAt: Date;
}

/** The secrets table: values go in sealed and come out only for the environment of an execution that names them. */
export class SecretStore {
  constructor(
    private readonly pool: Pool,
    /** The gateway's own key (users' secrets, idempotency digests); specs for the broker are sealed with the spec key. */
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

  /**
   * The secrets a request names, opened for its environment, and no other of the owner's. A name the owner
   * has no secret for is refused (UnknownSecretError), naming every one missing.
   */
  async valuesOf(ownerId: string, names: readonly string[]): Promise<Record<string, string>> {
    if (names.length === 0) return {};
    const r = await this.pool.query<{ name: string; sealed: Buffer }>(`SELECT name, sealed FROM secrets WHERE owner_id = $1 AND name = ANY($2::text[])`, [ownerId, [...names]]);
    const missing = names.filter((name) => !r.rows.some((row) => row.name === name));
    if (missing.length > 0) throw new UnknownSecretError(missing);
    return Object.fromEntries(r.rows.map((row) => [row.name, this.box.open(row.sealed, associated(ownerId, row.name))]));
  }
}

/** A request names secrets its owner never stored. */
export class UnknownSecretError extends PaddockError {
  constructor(readonly names: readonly string[]) {
    super(
      'unknown_secret',
      400,
      `${names.length === 1 ? 'no secret' : 'no secrets'} named ${names.map((n) => `"${n}"`).join(', ')}: store ${names.length === 1 ? 'it' : 'them'} first (PUT /api/v1/secrets/{name}), or leave ${names.length === 1 ? 'it' : 'them'} out of "secrets"`,
    );
    this.name = 'UnknownSecretError';
  }
}

function associated(ownerId: string, name: string): string {
  return `paddock.secret.v1/${ownerId}/${name}`;
}
