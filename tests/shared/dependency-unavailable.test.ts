import pg from 'pg';
import { describe, expect, test } from 'vitest';
import { isDependencyUnavailable } from '../../services/shared/src/http/errors.js';
import { services } from '../helpers/database.js';

const caught = async (work: () => Promise<unknown>): Promise<unknown> => {
  try {
    await work();
  } catch (error) {
    return error;
  }
  throw new Error('expected an error');
};

/** The real errors node-postgres raises, told apart: the database away (503) or a bug (500). */
describe('isDependencyUnavailable', () => {
  test('a refused connection, a terminated session and an exhausted pool are unavailability', async () => {
    const refused = new pg.Client({ connectionString: 'postgresql://nobody:x@127.0.0.1:1/none' });
    expect(isDependencyUnavailable(await caught(() => refused.connect()))).toBe(true);

    const victim = new pg.Client({ connectionString: services().urls.app_service });
    const admin = new pg.Client({ connectionString: services().endpoints.postgresAdminUrl });
    await Promise.all([victim.connect(), admin.connect()]);
    victim.on('error', () => undefined);
    try {
      const { rows } = await victim.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      const sleeping = caught(() => victim.query('SELECT pg_sleep(5)'));
      await admin.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
      const terminated = await sleeping;
      expect((terminated as { code?: string }).code).toBe('57P01');
      expect(isDependencyUnavailable(terminated)).toBe(true);
      // The same client afterwards: not queryable.
      expect(isDependencyUnavailable(await caught(() => victim.query('SELECT 1')))).toBe(true);
    } finally {
      await Promise.all([victim.end().catch(() => undefined), admin.end()]);
    }

    const pool = new pg.Pool({ connectionString: services().urls.app_service, max: 1, connectionTimeoutMillis: 200 });
    const held = await pool.connect();
    try {
      const exhausted = await caught(() => pool.query('SELECT 1'));
      expect(isDependencyUnavailable(exhausted)).toBe(true);
    } finally {
      held.release();
      await pool.end();
    }
  });

  test('a statement the database rejects, or any other bug, is not', async () => {
    const pool = new pg.Pool({ connectionString: services().urls.app_service, max: 1 });
    try {
      expect(isDependencyUnavailable(await caught(() => pool.query('SELEC 1')))).toBe(false);
      expect(isDependencyUnavailable(await caught(() => pool.query('SELECT 1/0')))).toBe(false);
    } finally {
      await pool.end();
    }
    expect(isDependencyUnavailable(new TypeError("Cannot read properties of undefined (reading 'id')"))).toBe(false);
    expect(isDependencyUnavailable(undefined)).toBe(false);
  });
});
