import { createHash } from 'node:crypto';
import { inTransaction, type Pool } from '@paddock/db';
import { newId, newToken } from '../ids.js';
import { createPersonalSpace } from '../tenancy/tenancyStore.js';

export interface User {
  id: string;
  name: string;
  isAdmin: boolean;
  createdAt: Date;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/**
 * The users table: tokens are only ever stored hashed, and shown once, when issued. Each user comes with a
 * personal team and project (src/tenancy/), made in the same transaction.
 */
export class UserStore {
  private readonly cache = new Map<string, { user: User; atMs: number }>();

  constructor(private readonly pool: Pool) {}

  async create(name: string, isAdmin = false): Promise<{ user: User; token: string }> {
    const token = newToken();
    const user = await inTransaction(this.pool, async (db) => {
      const r = await db.query<User>(
        `INSERT INTO users (id, name, token_hash, is_admin) VALUES ($1, $2, $3, $4)
         RETURNING id, name, is_admin AS "isAdmin", created_at AS "createdAt"`,
        [`u${newId()}`, name, hashToken(token), isAdmin],
      );
      const created = r.rows[0]!;
      await createPersonalSpace(db, created);
      return created;
    });
    return { user, token };
  }

  async byId(id: string): Promise<User | null> {
    const r = await this.pool.query<User>(`SELECT id, name, is_admin AS "isAdmin", created_at AS "createdAt" FROM users WHERE id = $1`, [id]);
    return r.rows[0] ?? null;
  }

  /** Who holds this token; answers from a short cache, since every request asks. */
  async byToken(token: string): Promise<User | null> {
    const hash = hashToken(token);
    const hit = this.cache.get(hash);
    if (hit && Date.now() - hit.atMs < 30_000) return hit.user;
    const r = await this.pool.query<User>(
      `SELECT id, name, is_admin AS "isAdmin", created_at AS "createdAt" FROM users WHERE token_hash = $1`,
      [hash],
    );
    const user = r.rows[0] ?? null;
    if (user) this.cache.set(hash, { user, atMs: Date.now() });
    return user;
  }

  async admin(): Promise<User | null> {
    const r = await this.pool.query<User>(
      `SELECT id, name, is_admin AS "isAdmin", created_at AS "createdAt" FROM users WHERE is_admin ORDER BY created_at LIMIT 1`,
    );
    return r.rows[0] ?? null;
  }

  /** Issues a new token for a user; the old one stops working. */
  async rotate(userId: string): Promise<string> {
    const token = newToken();
    await this.pool.query(`UPDATE users SET token_hash = $2 WHERE id = $1`, [userId, hashToken(token)]);
    this.cache.clear();
    return token;
  }
}
