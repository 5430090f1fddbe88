import { afterAll, describe, expect, test } from 'vitest';
import { inTransaction } from '../../services/shared/src/db/transaction.js';
import { poolAs } from '../helpers/database.js';

// One connection, so the check after the transaction runs on the connection it used.
const pool = poolAs('app_service', 1);
afterAll(() => pool.end());

describe('inTransaction settings', () => {
  test('any text arrives exactly, ends with the transaction, and cannot escape its quotes', async () => {
    const awkward = [
      `it's "quoted"`,
      String.raw`back\slash \' \\ end\\`,
      `'; RESET ALL; SELECT 'injected`,
      `$$dollar$$ ;`,
      'ünïcödé ✓ 𝄞',
      '',
    ];
    for (const value of awkward) {
      const seen = await inTransaction(pool, { 'tenantry.actor': value, 'tenantry.reason': undefined }, async (client) => {
        const { rows } = await client.query<{ actor: string; reason: string | null }>(
          "SELECT current_setting('tenantry.actor') AS actor, current_setting('tenantry.reason', true) AS reason",
        );
        return rows[0];
      });
      expect(seen?.actor).toBe(value);
      expect(seen?.reason ?? '').toBe('');
    }
    const { rows } = await pool.query<{ actor: string }>("SELECT current_setting('tenantry.actor', true) AS actor");
    expect(rows[0]?.actor ?? '').toBe('');
  });

  test('a bad setting name fails the transaction without running the work', async () => {
    let ran = false;
    await expect(
      inTransaction(pool, { 'no_dot_so_not_a_custom_setting': 'x' }, async () => {
        ran = true;
      }),
    ).rejects.toThrow(/no_dot_so_not_a_custom_setting/);
    expect(ran).toBe(false);
    expect((await pool.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });
});
