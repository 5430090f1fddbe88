import pg from 'pg';
import { describe, expect, test } from 'vitest';
import { inTransaction } from '../../services/shared/src/db/transaction.js';
import { services } from '../helpers/database.js';

/**
 * A plain pg.Pool, with no listener of ours on its clients: inTransaction alone must keep
 * a checked-out client's 'error' from becoming an unhandled event (which ends a process,
 * and fails this run), and must not hand the broken connection to the next user.
 */
describe('inTransaction when its connection is terminated', () => {
  test('ATTACK: pg_terminate_backend mid-transaction: the work fails with 57P01, nothing crashes, the pool serves on', async () => {
    const pool = new pg.Pool({ connectionString: services().urls.app_service, max: 1 });
    pool.on('error', () => undefined);
    const admin = new pg.Client({ connectionString: services().endpoints.postgresAdminUrl });
    await admin.connect();
    try {
      const failure = await inTransaction(pool, {}, async (client) => {
        const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        await admin.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
        // Idle in the transaction while the connection dies, then use it again.
        await new Promise((resolve) => setTimeout(resolve, 200));
        await client.query('SELECT 1');
      }).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(failure).toBeInstanceOf(Error);
      expect(pool.totalCount).toBe(0);
      // The next transaction gets a fresh connection.
      const answer = await inTransaction(pool, {}, async (client) => (await client.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one);
      expect(answer).toBe(1);
    } finally {
      await admin.end();
      await pool.end();
    }
  });
});
