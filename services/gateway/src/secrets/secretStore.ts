import type { Pool } from '@paddock/db';
import { PaddockError } from '@paddock/errors';
import type { SecretBox } from '@paddock/secrets';

export interface SecretInfo {
  name: string;
  updatedAt: Date;
}

/** Whose secrets: a user's own, or a project's (set by its admins, used by every execution in it). */
export type SecretScope = { readonly user: string } | { readonly project: string };

/** The table, key column and associated-data label of a scope. */
function where(scope: SecretScope): { table: string; column: string; id: string; label: string } {
  return 'user' in scope
    ? { table: 'secrets', column: 'owner_id', id: scope.user, label: 'paddock.secret.v1' }
    : { table: 'project_secrets', column: 'project_id', id: scope.project, label: 'paddock.project-secret.v1' };
}

/** Binds a sealed value to its scope and name, so that a value copied to another row does not open. */
function associated(scope: SecretScope, name: string): string {
  const { label, id } = where(scope);
  return `${label}/${id}/${name}`;
}

/**
 * The secrets tables (users' and projects'): values go in sealed and come out only for the environment of
 * an execution that names them, or for its LLM access (sealed again for billing's proxy).
 */
export class SecretStore {
  constructor(
    private readonly pool: Pool,
    /** The gateway's own key (stored secrets, idempotency digests); specs for the broker are sealed with the spec key. */
    readonly box: SecretBox,
  ) {}

  async put(scope: SecretScope, name: string, value: string): Promise<void> {
    const { table, column, id } = where(scope);
    await this.pool.query(
      `INSERT INTO ${table} (${column}, name, sealed) VALUES ($1, $2, $3)
       ON CONFLICT (${column}, name) DO UPDATE SET sealed = EXCLUDED.sealed, updated_at = now()`,
      [id, name, this.box.seal(value, associated(scope, name))],
    );
  }

  async list(scope: SecretScope): Promise<SecretInfo[]> {
    const { table, column, id } = where(scope);
    const r = await this.pool.query<SecretInfo>(`SELECT name, updated_at AS "updatedAt" FROM ${table} WHERE ${column} = $1 ORDER BY name`, [id]);
    return r.rows;
  }

  /** False when there was no such secret. */
  async delete(scope: SecretScope, name: string): Promise<boolean> {
    const { table, column, id } = where(scope);
    const r = await this.pool.query(`DELETE FROM ${table} WHERE ${column} = $1 AND name = $2`, [id, name]);
    return (r.rowCount ?? 0) > 0;
  }

  /**
   * The secrets of these names an execution of `ownerId` in `projectId` can have: the owner's own first,
   * else the project's, and never another project's. With `required`, a name found in neither is refused
   * (UnknownSecretError, naming every one missing); without, it is left out.
   */
  async resolve(ownerId: string, projectId: string, names: readonly string[], { required }: { required: boolean }): Promise<Record<string, string>> {
    if (names.length === 0) return {};
    const r = await this.pool.query<{ scope: 'user' | 'project'; name: string; sealed: Buffer }>(
      `SELECT 'user' AS scope, name, sealed FROM secrets WHERE owner_id = $1 AND name = ANY($3::text[])
       UNION ALL
       SELECT 'project' AS scope, name, sealed FROM project_secrets WHERE project_id = $2 AND name = ANY($3::text[])`,
      [ownerId, projectId, [...names]],
    );
    const values: Record<string, string> = {};
    for (const name of names) {
      const row = r.rows.find((x) => x.name === name && x.scope === 'user') ?? r.rows.find((x) => x.name === name && x.scope === 'project');
      if (!row) continue;
      const scope: SecretScope = row.scope === 'user' ? { user: ownerId } : { project: projectId };
      values[name] = this.box.open(row.sealed, associated(scope, name));
    }
    const missing = names.filter((name) => !(name in values));
    if (required && missing.length > 0) throw new UnknownSecretError(missing);
    return values;
  }
}

/** A request names secrets that neither its owner nor its project stored. */
export class UnknownSecretError extends PaddockError {
  constructor(readonly names: readonly string[]) {
    const one = names.length === 1;
    super(
      'unknown_secret',
      400,
      `${one ? 'no secret' : 'no secrets'} named ${names.map((n) => `"${n}"`).join(', ')}: store ${one ? 'it' : 'them'} first ` +
        `(PUT /api/v1/secrets/{name}, or PUT /api/v1/projects/{id}/secrets/{name} for the project's), or leave ${one ? 'it' : 'them'} out of "secrets"`,
    );
    this.name = 'UnknownSecretError';
  }
}
