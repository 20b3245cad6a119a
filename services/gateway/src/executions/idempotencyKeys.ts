import { createHash } from 'node:crypto';
import type { Pool } from '@paddock/db';
import { PaddockError } from '@paddock/errors';
import type { SecretBox } from '@paddock/secrets';

/** How long a key stands for the execution it first created (as Stripe keeps them: at least 24 h). */
export const IDEMPOTENCY_KEY_TTL_MS = 24 * 60 * 60 * 1000;

/** The HTTP header that carries the key. */
export const IDEMPOTENCY_KEY_HEADER = 'idempotency-key';

/** What a key may be: printable ASCII, as Stripe takes them (a UUID v4 is the usual choice). */
export const IDEMPOTENCY_KEY_PATTERN = '^[\\x20-\\x7E]{1,255}$';

/** The key was used before, within its time, for a request with other contents. */
export class IdempotencyKeyReusedError extends PaddockError {
  readonly key: string;
  readonly executionId: string;

  constructor(key: string, executionId: string) {
    super(
      'idempotency_key_reused',
      422,
      `Idempotency-Key ${JSON.stringify(key)} was used within the last 24 h for a different request (it created execution ${executionId}); ` +
        'a retry must send the same body, and a new request a new key',
    );
    this.key = key;
    this.executionId = executionId;
  }
}

/** JSON with the keys of every object sorted: the same request sent with its fields in another order is the same request. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The SHA-256 of a request body, whatever the order of its fields. */
export function requestDigest(body: unknown): string {
  return createHash('sha256').update(canonicalJson(body)).digest('hex');
}

/** Where a key stands: free (never used, or past its time), or taken by an earlier request. */
export type KeyUse = { readonly kind: 'free' } | { readonly kind: 'taken'; readonly executionId: string };

/** What claiming a key gave: it was free and `create` ran under it, or an earlier request holds it. */
export type Claim<T> = { readonly kind: 'created'; readonly value: T } | { readonly kind: 'taken'; readonly executionId: string };

/** Something to run queries on: the pool, or the client of a transaction. */
export type Queryable = Pick<Pool, 'query'>;

interface KeyRow {
  executionId: string;
  requestDigest: Buffer;
}

/**
 * The table `idempotency_keys`: per user, which execution a key created and a digest of the request that
 * did. The digest is sealed under the gateway's secret key, because the body holds env values and repository
 * tokens: a bare hash of it would let whoever reads the table test guesses of a short secret.
 */
export class IdempotencyKeys {
  constructor(
    private readonly pool: Pool,
    private readonly box: SecretBox,
    private readonly ttlMs = IDEMPOTENCY_KEY_TTL_MS,
  ) {}

  /**
   * Where `key` of `ownerId` stands for a request with this `digest`: free, or taken by the execution it
   * created (same contents); taken for other contents is IdempotencyKeyReusedError.
   */
  async lookup(ownerId: string, key: string, digest: string): Promise<KeyUse> {
    const r = await this.pool.query<KeyRow>(
      `SELECT execution_id AS "executionId", request_digest AS "requestDigest" FROM idempotency_keys
       WHERE owner_id = $1 AND key = $2 AND created_at > now() - make_interval(secs => $3::float / 1000)`,
      [ownerId, key, this.ttlMs],
    );
    const row = r.rows[0];
    return row ? this.#taken(ownerId, key, digest, row) : { kind: 'free' };
  }

  /**
   * Takes `key` for a new execution and runs `create` in the same transaction, so the key and the row
   * it names are stored together or not at all. A request holding the same key at the same moment makes
   * this one wait for its end: then the key is taken (the other's execution is the answer), or free again
   * (the other failed before storing anything) and this one creates.
   */
  async claim<T>(ownerId: string, key: string, digest: string, executionId: string, create: (db: Queryable) => Promise<T>): Promise<Claim<T>> {
    // A second pass only when the key's holder vanished between the two statements below (its execution
    // was removed by the retention): then nothing holds the key any more.
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.#inTransaction<{ created: true; value: T } | { created: false; holder: KeyRow | undefined }>(async (db) => {
        // A key past its time is taken over where it lies; the retention sweep removes the others.
        const won = await db.query(
          `INSERT INTO idempotency_keys (owner_id, key, request_digest, execution_id) VALUES ($1, $2, $3, $4)
           ON CONFLICT (owner_id, key) DO UPDATE SET request_digest = EXCLUDED.request_digest, execution_id = EXCLUDED.execution_id, created_at = now()
           WHERE idempotency_keys.created_at <= now() - make_interval(secs => $5::float / 1000)`,
          [ownerId, key, this.#seal(ownerId, key, digest), executionId, this.ttlMs],
        );
        if (won.rowCount === 1) return { commit: true, result: { created: true, value: await create(db) } };
        const r = await db.query<KeyRow>(
          `SELECT execution_id AS "executionId", request_digest AS "requestDigest" FROM idempotency_keys WHERE owner_id = $1 AND key = $2`,
          [ownerId, key],
        );
        return { commit: false, result: { created: false, holder: r.rows[0] } };
      });
      if (outcome.created) return { kind: 'created', value: outcome.value };
      if (outcome.holder) return this.#taken(ownerId, key, digest, outcome.holder);
      if (attempt >= 3) throw new Error(`idempotency key of ${ownerId} kept changing hands while it was claimed`);
    }
  }

  /** Runs `work` in a transaction, committed if it says so and rolled back otherwise (and on any error). */
  async #inTransaction<R>(work: (db: Queryable) => Promise<{ commit: boolean; result: R }>): Promise<R> {
    const client = await this.pool.connect();
    let reusable = true;
    try {
      await client.query('BEGIN');
      const { commit, result } = await work(client);
      await client.query(commit ? 'COMMIT' : 'ROLLBACK');
      return result;
    } catch (err) {
      // A connection that cannot even roll back is not given back to the pool.
      reusable = await client.query('ROLLBACK').then(() => true, () => false);
      throw err;
    } finally {
      client.release(!reusable);
    }
  }

  #taken(ownerId: string, key: string, digest: string, row: KeyRow): KeyUse & { kind: 'taken' } {
    if (this.box.open(row.requestDigest, associated(ownerId, key)) !== digest) throw new IdempotencyKeyReusedError(key, row.executionId);
    return { kind: 'taken', executionId: row.executionId };
  }

  #seal(ownerId: string, key: string, digest: string): Buffer {
    return this.box.seal(digest, associated(ownerId, key));
  }
}

/** Binds a sealed digest to its owner and key, so that one copied to another row does not open. */
function associated(ownerId: string, key: string): string {
  return `idempotency-key:${ownerId}:${key}`;
}

/** Removes the keys used before `before` (past their time); returns how many. */
export async function sweepIdempotencyKeys(db: Queryable, before: Date): Promise<number> {
  const r = await db.query(`DELETE FROM idempotency_keys WHERE created_at < $1`, [before]);
  return r.rowCount ?? 0;
}
