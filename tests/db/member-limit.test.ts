/**
 * Membership rules under concurrency: the per-tenant user limit is race-free, and a tenant
 * never loses its last owner (a deferred check, so ownership can change hands in one transaction).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { hasuraSessionJson, withTenant } from '../../services/shared/src/db/tenant-context.js';
import { createUsers, dbError, seedTenant, uniqueSlug, type DbError } from '../fixtures/seed.js';
import { poolAs } from '../helpers/database.js';

const PARALLEL = 20;
const LIMIT = 5;

const admin = poolAs('platform_admin');
const service = poolAs('app_service', PARALLEL + 2);

afterAll(async () => {
  await Promise.all([admin.end(), service.end()]);
});

async function memberCount(tenantId: string): Promise<number> {
  const { rows } = await admin.query<{ n: number }>('SELECT count(*)::int AS n FROM tenant_members WHERE tenant_id = $1', [tenantId]);
  return rows[0]!.n;
}

async function ownersOf(tenantId: string): Promise<string[]> {
  const { rows } = await admin.query<{ user_id: string }>(
    `SELECT user_id FROM tenant_members WHERE tenant_id = $1 AND role = 'owner' ORDER BY user_id`,
    [tenantId],
  );
  return rows.map((row) => row.user_id);
}

/** A client in an open transaction as app_service with the tenant's context set. */
async function openTenantTransaction(tenantId: string, userId?: string): Promise<pg.PoolClient> {
  const client = await service.connect();
  await client.query('BEGIN');
  await client.query("SELECT set_config('hasura.user', $1, true)", [hasuraSessionJson({ tenantId, userId, role: 'owner' })]);
  return client;
}

describe('user limit', () => {
  let tenantId: string;
  let ownerId: string;
  let users: string[];
  // The owner who adds everyone counts towards the limit too.
  const maxUsers = LIMIT + 1;

  beforeAll(async () => {
    const { rows } = await admin.query<{ id: string }>(
      `INSERT INTO tenants (slug, name, plan_id) VALUES ($1, 'Member limit', 'pro') RETURNING id`,
      [uniqueSlug('ml-limit')],
    );
    tenantId = rows[0]!.id;
    await admin.query('UPDATE tenants SET max_users = $2 WHERE id = $1', [tenantId, maxUsers]);
    // Only a member with users:write may add members: the joins below run as this owner.
    [ownerId] = await createUsers(admin, 'ml-owner', 1) as [string];
    await admin.query(`INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, 'owner')`, [tenantId, ownerId]);
    users = await createUsers(admin, 'ml-user', PARALLEL);
  });

  test(`${PARALLEL} concurrent joins on ${PARALLEL} connections: exactly ${LIMIT} succeed`, async () => {
    expect(await memberCount(tenantId)).toBe(1);
    const limits = await admin.query<{ max_users: number }>('SELECT max_users FROM app.tenant_limits($1)', [tenantId]);
    expect(limits.rows[0]!.max_users).toBe(maxUsers);

    // Every transaction is open, with its context set, before any of them inserts.
    let arrived = 0;
    let release!: () => void;
    const barrier = new Promise<void>((resolve) => (release = resolve));
    const backends = new Set<number>();

    const results = await Promise.allSettled(
      users.map((userId) =>
        withTenant(service, { tenantId, userId: ownerId, role: 'owner' }, async (client) => {
          const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
          backends.add(rows[0]!.pid);
          if (++arrived === PARALLEL) release();
          await barrier;
          await client.query(`INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, 'member')`, [tenantId, userId]);
        }),
      ),
    );

    expect(backends.size, 'each insert must run on its own connection').toBe(PARALLEL);
    const fulfilled = results.filter((result) => result.status === 'fulfilled');
    const rejected = results
      .filter((result): result is PromiseRejectedResult => result.status === 'rejected')
      .map((result) => result.reason as DbError);
    expect(fulfilled).toHaveLength(LIMIT);
    expect(rejected).toHaveLength(PARALLEL - LIMIT);
    for (const error of rejected) {
      expect({ code: error.code, constraint: error.constraint }, error.message).toEqual({
        code: '23514',
        constraint: 'tenant_members_user_limit',
      });
    }
    expect(await memberCount(tenantId)).toBe(maxUsers);
  });

  test('a tenant at its limit refuses one more member; raising the limit lets it in', async () => {
    expect(await memberCount(tenantId)).toBe(maxUsers);
    const { rows } = await admin.query<{ user_id: string }>(
      `SELECT id AS user_id FROM users WHERE id = ANY($2::uuid[])
          AND id NOT IN (SELECT user_id FROM tenant_members WHERE tenant_id = $1) LIMIT 1`,
      [tenantId, users],
    );
    const outsider = rows[0]!.user_id;
    const insert = (client: pg.PoolClient) =>
      client.query(`INSERT INTO tenant_members (tenant_id, user_id) VALUES ($1, $2)`, [tenantId, outsider]);

    const refused = await dbError(withTenant(service, { tenantId, userId: ownerId }, insert));
    expect(refused?.code).toBe('23514');
    expect(refused?.constraint).toBe('tenant_members_user_limit');

    await admin.query('UPDATE tenants SET max_users = $2 WHERE id = $1', [tenantId, maxUsers + 1]);
    await withTenant(service, { tenantId, userId: ownerId }, insert);
    expect(await memberCount(tenantId)).toBe(maxUsers + 1);
  });
});

describe('last owner', () => {
  test.each([
    ['deleting', 'DELETE FROM tenant_members WHERE tenant_id = $1 AND user_id = $2'],
    ['demoting', `UPDATE tenant_members SET role = 'admin' WHERE tenant_id = $1 AND user_id = $2`],
  ])('%s the last owner fails at COMMIT, not at the statement', async (_action, statement) => {
    const tenant = await seedTenant(admin, 'ml-last');
    const client = await openTenantTransaction(tenant.tenantId, tenant.ownerUserId);
    try {
      const changed = await client.query(statement, [tenant.tenantId, tenant.ownerUserId]);
      expect(changed.rowCount).toBe(1);
      const error = await dbError(client.query('COMMIT'));
      expect(error?.code).toBe('23514');
      expect(error?.constraint).toBe('tenant_members_last_owner');
    } finally {
      await client.query('ROLLBACK').catch(() => undefined);
      client.release();
    }
    expect(await ownersOf(tenant.tenantId)).toEqual([tenant.ownerUserId]);
  });

  // The check is deferred to COMMIT, so the order of the two changes does not matter. An owner
  // who has stepped down can no longer give the owner role (grant bounds), so the
  // demote-first order runs as platform_admin: what it proves is the deferred last-owner check.
  const transfer = (tenant: { tenantId: string; ownerUserId: string; memberUserId: string }, first: 'promote' | 'demote') => {
    const promote = ['owner', tenant.memberUserId];
    const demote = ['admin', tenant.ownerUserId];
    return async (client: pg.PoolClient) => {
      for (const [role, userId] of first === 'promote' ? [promote, demote] : [demote, promote]) {
        await client.query('UPDATE tenant_members SET role = $1 WHERE tenant_id = $2 AND user_id = $3', [role, tenant.tenantId, userId]);
      }
    };
  };

  test('ownership is transferred in one transaction: promote another, then demote the old owner (the owner does it)', async () => {
    const tenant = await seedTenant(admin, 'ml-transfer');
    await withTenant(service, { tenantId: tenant.tenantId, userId: tenant.ownerUserId }, transfer(tenant, 'promote'));
    expect(await ownersOf(tenant.tenantId)).toEqual([tenant.memberUserId]);
  });

  test('ownership is transferred in one transaction: demote the old owner, then promote another (platform_admin)', async () => {
    const tenant = await seedTenant(admin, 'ml-transfer');
    const client = await admin.connect();
    try {
      await client.query('BEGIN');
      await transfer(tenant, 'demote')(client);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK');
      throw error;
    } finally {
      client.release();
    }
    expect(await ownersOf(tenant.tenantId)).toEqual([tenant.memberUserId]);
  });

  test('an owner who has stepped down can no longer give the owner role in the same transaction', async () => {
    const tenant = await seedTenant(admin, 'ml-transfer');
    const error = await dbError(withTenant(service, { tenantId: tenant.tenantId, userId: tenant.ownerUserId }, transfer(tenant, 'demote')));
    expect({ code: error?.code, constraint: error?.constraint }, error?.message).toEqual({
      code: '42501',
      constraint: 'tenant_members_grant_bounds',
    });
    expect(await ownersOf(tenant.tenantId)).toEqual([tenant.ownerUserId]);
  });

  test('two concurrent demotions of the only two owners: exactly one commits', async () => {
    const tenant = await seedTenant(admin, 'ml-race');
    await admin.query(`UPDATE tenant_members SET role = 'owner' WHERE tenant_id = $1 AND user_id = $2`, [
      tenant.tenantId,
      tenant.memberUserId,
    ]);
    const owners = [tenant.ownerUserId, tenant.memberUserId];
    const clients = await Promise.all(owners.map((userId) => openTenantTransaction(tenant.tenantId, userId)));
    try {
      // Both demotions succeed as statements: each transaction still sees the other owner.
      await Promise.all(
        clients.map((client, i) =>
          client.query(`UPDATE tenant_members SET role = 'admin' WHERE tenant_id = $1 AND user_id = $2`, [tenant.tenantId, owners[i]]),
        ),
      );
      const commits = await Promise.all(clients.map((client) => dbError(client.query('COMMIT'))));
      const failures = commits.filter((error) => error !== undefined);
      expect(failures).toHaveLength(1);
      expect(failures[0]!.code, failures[0]!.message).toBe('23514');
      expect(failures[0]!.constraint).toBe('tenant_members_last_owner');
    } finally {
      for (const client of clients) {
        await client.query('ROLLBACK').catch(() => undefined);
        client.release();
      }
    }
    expect(await ownersOf(tenant.tenantId)).toHaveLength(1);
  });

  test('deleting the whole tenant (platform_admin) removes its members without tripping the rule', async () => {
    const tenant = await seedTenant(admin, 'ml-drop');
    expect(await memberCount(tenant.tenantId)).toBe(2);
    const deleted = await admin.query('DELETE FROM tenants WHERE id = $1', [tenant.tenantId]);
    expect(deleted.rowCount).toBe(1);
    expect(await memberCount(tenant.tenantId)).toBe(0);
    // The users are global identities and stay.
    const { rows } = await admin.query<{ n: number }>('SELECT count(*)::int AS n FROM users WHERE id = ANY($1::uuid[])', [
      [tenant.ownerUserId, tenant.memberUserId],
    ]);
    expect(rows[0]!.n).toBe(2);
  });
});



describe('the limit and the owner rule stay inside the tenant and do not deadlock', () => {
  // The limit trigger runs AFTER row-level security: a foreign tenant's limit never shows.
  test('an insert into another tenant that is at its limit is refused by RLS, not by the limit', async () => {
    const [a, b] = await Promise.all([seedTenant(admin, 'ml-leak-a'), seedTenant(admin, 'ml-leak-b')]);
    await admin.query('UPDATE tenants SET max_users = 2 WHERE id = $1', [b.tenantId]); // b already has 2 members
    const [outsider] = await createUsers(admin, 'ml-leak-u', 1);
    const error = await dbError(
      withTenant(service, { tenantId: a.tenantId }, (client) =>
        client.query('INSERT INTO tenant_members (tenant_id, user_id) VALUES ($1, $2)', [b.tenantId, outsider]),
      ),
    );
    expect(await memberCount(b.tenantId)).toBe(2);
    expect(error?.code, error?.message).toBe('42501');
    expect(error?.message).toMatch(/row-level security/);
  });

  // The triggers lock the tenant row FOR NO KEY UPDATE, which foreign-key checks do not conflict with.
  test('two transactions that each add a project and then a member both commit', async () => {
    const tenant = await seedTenant(admin, 'ml-deadlock');
    const newcomers = await createUsers(admin, 'ml-deadlock-u', 2);
    // Both transactions act as the owner: only a member with users:write adds members.
    const clients = await Promise.all(newcomers.map(() => openTenantTransaction(tenant.tenantId, tenant.ownerUserId)));
    try {
      await Promise.all(clients.map((client) => client.query(`INSERT INTO projects (name) VALUES ('concurrent')`)));
      const errors = await Promise.all(
        clients.map(async (client, i) => {
          const error = await dbError(
            client.query('INSERT INTO tenant_members (tenant_id, user_id) VALUES ($1, $2)', [tenant.tenantId, newcomers[i]]),
          );
          return error ?? dbError(client.query('COMMIT'));
        }),
      );
      expect(errors.map((error) => error?.code)).toEqual([undefined, undefined]);
    } finally {
      for (const client of clients) {
        await client.query('ROLLBACK').catch(() => undefined);
        client.release();
      }
    }
  });
});
