import { expect, test } from 'vitest';
import { poolAs } from '../helpers/database.js';

test('roles connect with their bootstrap passwords', async () => {
  const pool = poolAs('app_service');
  const { rows } = await pool.query('SELECT current_user AS who');
  expect(rows[0].who).toBe('app_service');
  await pool.end();
});
