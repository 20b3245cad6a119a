import { randomBytes } from 'node:crypto';
import type { Pool } from '@paddock/db';
import { hashToken } from '../users/userStore.js';

/**
 * One-time tickets for WS /terminal/{id}: a browser cannot set an Authorization header on a WebSocket, so
 * it asks for a ticket with its token and opens the socket with `?ticket=`. Stored hashed, in PostgreSQL,
 * so that any gateway process can take it; taking it deletes it.
 */
export class TicketStore {
  constructor(
    private readonly pool: Pool,
    private readonly ttlMs = 60_000,
  ) {}

  async issue(executionId: string, userId: string): Promise<{ ticket: string; expiresAt: Date }> {
    const ticket = `pdt_${randomBytes(24).toString('base64url')}`;
    const expiresAt = new Date(Date.now() + this.ttlMs);
    await this.pool.query(`DELETE FROM terminal_tickets WHERE expires_at < now()`);
    await this.pool.query(`INSERT INTO terminal_tickets (ticket_hash, execution_id, user_id, expires_at) VALUES ($1, $2, $3, $4)`, [
      hashToken(ticket),
      executionId,
      userId,
      expiresAt,
    ]);
    return { ticket, expiresAt };
  }

  /** The execution and user the ticket was issued for, once: a used, expired or unknown ticket is null. */
  async take(ticket: string): Promise<{ executionId: string; userId: string } | null> {
    const r = await this.pool.query<{ executionId: string; userId: string }>(
      `DELETE FROM terminal_tickets WHERE ticket_hash = $1 RETURNING execution_id AS "executionId", user_id AS "userId", expires_at > now() AS fresh`,
      [hashToken(ticket)],
    );
    const row = r.rows[0] as ({ executionId: string; userId: string; fresh?: boolean } | undefined);
    return row && row.fresh ? { executionId: row.executionId, userId: row.userId } : null;
  }
}
