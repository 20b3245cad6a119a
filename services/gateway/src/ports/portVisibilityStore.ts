import type { Pool } from '@paddock/db';

/**
 * Who may open a port's URL: its owner only (`private`, every port unless set otherwise), the members of
 * its project (`project`), or anyone (`public`).
 */
export const PORT_VISIBILITIES = ['private', 'project', 'public'] as const;
export type PortVisibility = (typeof PORT_VISIBILITIES)[number];

/** The visibility of each port of one instance that is not private. */
export type VisibilityMap = ReadonlyMap<number, Exclude<PortVisibility, 'private'>>;

/**
 * The `port_visibility` table: one row per port of an instance that is not private. Changes to one
 * instance are serialized, and each hands the instance's whole map to the caller's `publish` inside its
 * transaction, so the maps published follow the order of the changes and the last one is what is stored.
 */
export class PortVisibilityStore {
  constructor(private readonly pool: Pool) {}

  async mapOf(executionId: string): Promise<VisibilityMap> {
    const r = await this.pool.query<{ port: number; visibility: 'project' | 'public' }>(
      'SELECT port, visibility FROM port_visibility WHERE execution_id = $1 ORDER BY port',
      [executionId],
    );
    return new Map(r.rows.map((row) => [row.port, row.visibility]));
  }

  /**
   * Sets one port's visibility and resolves with the instance's map after it, once `publish` has taken
   * that map. A `publish` that fails undoes the change (and its error is thrown), so what is stored is
   * never ahead of what the routes were told.
   */
  async set(executionId: string, port: number, visibility: PortVisibility, publish: (map: VisibilityMap) => Promise<void>): Promise<VisibilityMap> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      // Two changes to one instance at once would otherwise publish their maps in either order.
      await client.query("SELECT pg_advisory_xact_lock(hashtext('port_visibility'), hashtext($1))", [executionId]);
      if (visibility === 'private') {
        await client.query('DELETE FROM port_visibility WHERE execution_id = $1 AND port = $2', [executionId, port]);
      } else {
        await client.query(
          `INSERT INTO port_visibility (execution_id, port, visibility) VALUES ($1, $2, $3)
           ON CONFLICT (execution_id, port) DO UPDATE SET visibility = EXCLUDED.visibility, updated_at = now()`,
          [executionId, port, visibility],
        );
      }
      const r = await client.query<{ port: number; visibility: 'project' | 'public' }>(
        'SELECT port, visibility FROM port_visibility WHERE execution_id = $1 ORDER BY port',
        [executionId],
      );
      const map: VisibilityMap = new Map(r.rows.map((row) => [row.port, row.visibility]));
      await publish(map);
      await client.query('COMMIT');
      return map;
    } catch (err) {
      // A broken connection fails the rollback too; the change's own error is the one to report.
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }
}
