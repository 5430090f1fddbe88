import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, describe, expect, test } from 'vitest';
import { hasuraSessionJson, withTenant } from '../../services/shared/src/db/tenant-context.js';
import { poolAs } from '../helpers/database.js';

// One connection, so every call below reuses the connection the previous one released.
const pool = poolAs('app_service', 1);
afterAll(() => pool.end());

describe('withTenant', () => {
  test('sets hasura.user exactly as Hasura does', () => {
    const session = JSON.parse(hasuraSessionJson({ tenantId: 't', userId: 'u', role: 'admin' }));
    expect(session).toEqual({ 'x-hasura-role': 'admin', 'x-hasura-tenant-id': 't', 'x-hasura-user-id': 'u' });
  });

  test('scopes the work to the tenant, rolls back on error, and leaves no session behind', async () => {
    const tenantId = randomUUID();
    await withTenant(pool, { tenantId }, async (client) => {
      await client.query('INSERT INTO tenants (id, slug, name) VALUES ($1, $2, $3)', [tenantId, `ctx-${randomBytes(4).toString('hex')}`, 'Context']);
      await client.query("INSERT INTO projects (name) VALUES ('kept')");
    });
    await expect(
      withTenant(pool, { tenantId }, async (client) => {
        await client.query("INSERT INTO projects (name) VALUES ('discarded')");
        throw new Error('the request failed');
      }),
    ).rejects.toThrow('the request failed');

    const names = await withTenant(pool, { tenantId }, async (client) => (await client.query('SELECT name FROM projects')).rows);
    expect(names).toEqual([{ name: 'kept' }]);

    const after = await pool.query("SELECT current_setting('hasura.user', true) AS session, app.current_tenant_id() AS tenant");
    expect(after.rows).toEqual([{ session: '', tenant: null }]);
    expect((await pool.query('SELECT count(*)::int AS n FROM projects')).rows).toEqual([{ n: 0 }]);
  });
});

describe('named statements under RLS', () => {
  // Postgres plans a named statement a few times, then reuses one generic plan on the
  // connection. That plan must read the tenant of each transaction, not of the first.
  test('a reused generic plan reads each transaction’s tenant', async () => {
    const tenants = [randomUUID(), randomUUID()] as const;
    for (const tenantId of tenants) {
      await withTenant(pool, { tenantId }, async (client) => {
        await client.query('INSERT INTO tenants (id, slug, name) VALUES ($1, $2, $3)', [tenantId, `named-${randomBytes(4).toString('hex')}`, 'Named']);
        await client.query('INSERT INTO projects (name) VALUES ($1)', [`of ${tenantId}`]);
      });
    }
    const list = { name: 'test-projects-list', text: 'SELECT name FROM projects ORDER BY name' };
    const insert = { name: 'test-projects-insert', text: 'INSERT INTO projects (tenant_id, name) VALUES ($1, $2)' };
    for (let run = 0; run < 8; run += 1) {
      const tenantId = tenants[run % 2]!;
      const names = await withTenant(pool, { tenantId }, async (client) => (await client.query<{ name: string }>(list)).rows);
      expect(names).toEqual([{ name: `of ${tenantId}` }]);
      const other = tenants[(run + 1) % 2]!;
      await expect(withTenant(pool, { tenantId }, (client) => client.query({ ...insert, values: [other, 'planted'] }))).rejects.toThrow(
        /row-level security/,
      );
    }
    expect((await pool.query(list)).rows).toEqual([]);
    const { rows } = await pool.query<{ name: string; generic_plans: string }>(
      "SELECT name, generic_plans FROM pg_prepared_statements WHERE name LIKE 'test-projects-%' ORDER BY name",
    );
    // Proves the runs above went through the generic plan, not only custom ones.
    expect(rows.map((row) => [row.name, Number(row.generic_plans) > 0])).toEqual([
      ['test-projects-insert', true],
      ['test-projects-list', true],
    ]);
  });
});
