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
