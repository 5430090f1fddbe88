import type { Pool, PoolClient } from 'pg';

/**
 * Runs `work` in one transaction whose settings (set_config(…, true)) end with it, so they
 * never leak to the next user of the pooled connection: BEGIN, the settings, work, COMMIT —
 * or ROLLBACK when work (or a deferred constraint at COMMIT) throws.
 */
export async function inTransaction<T>(
  pool: Pool,
  settings: Record<string, string | undefined>,
  work: (client: PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    for (const [name, value] of Object.entries(settings)) {
      if (value !== undefined) await client.query('SELECT set_config($1, $2, true)', [name, value]);
    }
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}
