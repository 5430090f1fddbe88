/**
 * The tenant lifecycle as the database enforces it (1795900400000_tenant_lifecycle):
 * active ⇄ suspended, active or suspended → deleted, deleted → active only through
 * app.restore_tenant(), purge deletes the row; a deleted tenant's data is read-only for
 * every writer; a tenant with members has an owner; pending invitations take seats.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { lintTenantIsolation, listTenantTables, type IsolationProblem } from '../../services/shared/src/db/isolation-lint.js';
import { withTenant } from '../../services/shared/src/db/tenant-context.js';
import { createUsers, dbError, hex, seedTenant, uniqueSlug, type SeededTenant } from '../fixtures/seed.js';
import { createScratchDatabase, poolAs, type ScratchDatabase } from '../helpers/database.js';

const admin = poolAs('platform_admin');
const service = poolAs('app_service');
const hasura = poolAs('hasura_app');

afterAll(async () => {
  await Promise.all([admin.end(), service.end(), hasura.end()]);
});

async function tenantRow(tenantId: string) {
  const { rows } = await admin.query<{ status: string; purge_after: Date | null; name: string }>(
    'SELECT status, purge_after, name FROM tenants WHERE id = $1',
    [tenantId],
  );
  return rows[0];
}

async function softDelete(tenantId: string): Promise<void> {
  await admin.query(`UPDATE tenants SET status = 'deleted', purge_after = now() + interval '30 days' WHERE id = $1`, [tenantId]);
}

/** A statement as Hasura runs a mutation: hasura.user set with SET LOCAL semantics. */
async function asHasura(tenant: SeededTenant, sql: string, params: unknown[] = []): Promise<void> {
  const client = await hasura.connect();
  try {
    await client.query('BEGIN');
    await client.query("SELECT set_config('hasura.user', $1, true)", [
      JSON.stringify({ 'x-hasura-role': 'tenant_admin', 'x-hasura-user-id': tenant.ownerUserId, 'x-hasura-tenant-id': tenant.tenantId }),
    ]);
    await client.query(sql, params);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

describe('the state machine', () => {
  test('suspending a soft-deleted tenant is refused and keeps its deletion (it stays on the purge list)', async () => {
    const tenant = await seedTenant(admin, 'lc-suspend-deleted');
    await softDelete(tenant.tenantId);
    const before = await tenantRow(tenant.tenantId);

    const error = await dbError(admin.query(`UPDATE tenants SET status = 'suspended', suspension_reason = 'x' WHERE id = $1`, [tenant.tenantId]));
    expect(error?.code).toBe('23514');
    expect(error?.constraint).toBe('tenants_status_transition');
    const after = await tenantRow(tenant.tenantId);
    expect(after?.status).toBe('deleted');
    expect(after?.purge_after).toEqual(before?.purge_after);
  });

  test('activating a deleted tenant directly is refused, also with the restore setting forged', async () => {
    const tenant = await seedTenant(admin, 'lc-activate-deleted');
    await softDelete(tenant.tenantId);

    const direct = await dbError(admin.query(`UPDATE tenants SET status = 'active' WHERE id = $1`, [tenant.tenantId]));
    expect(direct?.constraint).toBe('tenants_status_transition');

    // Any role may set any custom setting: the setting alone opens nothing, for the
    // platform (which may write the status) nor for the services (which may not at all).
    const forgedByPlatform = await dbError(
      (async () => {
        const client = await admin.connect();
        try {
          await client.query('BEGIN');
          await client.query("SELECT set_config('tenantry.restoring', $1, true)", [tenant.tenantId]);
          await client.query(`UPDATE tenants SET status = 'active' WHERE id = $1`, [tenant.tenantId]);
          await client.query('COMMIT');
        } finally {
          await client.query('ROLLBACK').catch(() => undefined);
          client.release();
        }
      })(),
    );
    expect(forgedByPlatform?.constraint).toBe('tenants_status_transition');
    const forged = await dbError(
      withTenant(service, { tenantId: tenant.tenantId, userId: tenant.ownerUserId, role: 'owner' }, async (client) => {
        await client.query("SELECT set_config('tenantry.restoring', $1, true)", [tenant.tenantId]);
        await client.query(`UPDATE tenants SET status = 'active' WHERE id = $1`, [tenant.tenantId]);
      }),
    );
    expect(forged?.code).toBe('42501');
    expect((await tenantRow(tenant.tenantId))?.status).toBe('deleted');
  });

  test('the other transitions hold: active ⇄ suspended, suspended → deleted', async () => {
    const tenant = await seedTenant(admin, 'lc-transitions');
    await admin.query(`UPDATE tenants SET status = 'suspended' WHERE id = $1`, [tenant.tenantId]);
    await admin.query(`UPDATE tenants SET status = 'active' WHERE id = $1`, [tenant.tenantId]);
    await admin.query(`UPDATE tenants SET status = 'suspended' WHERE id = $1`, [tenant.tenantId]);
    await softDelete(tenant.tenantId);
    expect((await tenantRow(tenant.tenantId))?.status).toBe('deleted');
    // The retention date is the deletion's own: it may move.
    await admin.query(`UPDATE tenants SET purge_after = now() - interval '1 day' WHERE id = $1`, [tenant.tenantId]);
  });

  test('a deleted tenant row is frozen: no rename, no plan change', async () => {
    const tenant = await seedTenant(admin, 'lc-frozen');
    await softDelete(tenant.tenantId);
    for (const change of [`name = 'Renamed'`, `plan_id = 'free'`, `settings = '{"a":1}'`]) {
      const error = await dbError(admin.query(`UPDATE tenants SET ${change} WHERE id = $1`, [tenant.tenantId]));
      expect(error?.constraint, change).toBe('tenants_deleted_read_only');
    }
  });

  test('app.restore_tenant brings a deleted tenant back as active, audited with its reason', async () => {
    const tenant = await seedTenant(admin, 'lc-restore');
    await softDelete(tenant.tenantId);
    const client = await admin.connect();
    try {
      await client.query('BEGIN');
      await client.query("SELECT set_config('tenantry.actor', 'cli:lifecycle-test', true)");
      await client.query('SELECT app.restore_tenant($1, $2)', [tenant.tenantId, 'deleted by mistake']);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    const row = await tenantRow(tenant.tenantId);
    expect(row?.status).toBe('active');
    expect(row?.purge_after).toBeNull();
    const { rows } = await admin.query<{ action: string; actor: string; reason: string; db_role: string }>(
      `SELECT action, actor, reason, db_role FROM audit_log WHERE tenant_id = $1 AND action IN ('tenants.restore', 'tenants.update')
        ORDER BY id DESC LIMIT 2`,
      [tenant.tenantId],
    );
    expect(rows.map((entry) => entry.action).sort()).toEqual(['tenants.restore', 'tenants.update']);
    for (const entry of rows) {
      expect(entry.reason).toBe('deleted by mistake');
      expect(entry.actor).toBe('cli:lifecycle-test');
      expect(entry.db_role).toBe('platform_admin');
    }
    // Its data is writable again.
    await admin.query(`INSERT INTO tenant_settings (tenant_id, key, value) VALUES ($1, 'restored.ok', 'true')`, [tenant.tenantId]);
  });

  test('app.restore_tenant needs a reason, a deleted tenant, and platform_admin', async () => {
    const tenant = await seedTenant(admin, 'lc-restore-refused');
    expect((await dbError(admin.query('SELECT app.restore_tenant($1, $2)', [tenant.tenantId, 'why'])))?.constraint).toBe(
      'tenants_status_transition',
    );
    await softDelete(tenant.tenantId);
    expect((await dbError(admin.query('SELECT app.restore_tenant($1, $2)', [tenant.tenantId, ' '])))?.constraint).toBe(
      'tenants_restore_reason',
    );
    expect((await dbError(admin.query('SELECT app.restore_tenant($1, $2)', [crypto.randomUUID(), 'why'])))?.code).toBe('P0002');
    for (const pool of [service, hasura]) {
      const error = await dbError(pool.query('SELECT app.restore_tenant($1, $2)', [tenant.tenantId, 'why']));
      expect(error?.code).toBe('42501');
    }
    expect((await tenantRow(tenant.tenantId))?.status).toBe('deleted');
  });
});

describe("a deleted tenant's data is read-only", () => {
  let tenant: SeededTenant;
  beforeAll(async () => {
    tenant = await seedTenant(admin, 'lc-readonly');
    await softDelete(tenant.tenantId);
  });

  test('platform_admin: member add, setting set, and a delete in every tenant table are refused', async () => {
    const [userId] = (await createUsers(admin, 'lc-late', 1)) as [string];
    const memberAdd = await dbError(
      admin.query(`INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, 'member')`, [tenant.tenantId, userId]),
    );
    expect(memberAdd?.constraint).toBe('tenants_deleted_read_only');
    const settingSet = await dbError(
      admin.query(
        `INSERT INTO tenant_settings (tenant_id, key, value) VALUES ($1, $2, '"#000000"')
         ON CONFLICT (tenant_id, key) DO UPDATE SET value = EXCLUDED.value`,
        [tenant.tenantId, tenant.settingKey],
      ),
    );
    expect(settingSet?.constraint).toBe('tenants_deleted_read_only');

    const client = await admin.connect();
    try {
      const tables = (await listTenantTables(client)).filter((table) => !['tenants', 'audit_log'].includes(table.table));
      expect(tables.length).toBeGreaterThanOrEqual(8);
      for (const table of tables) {
        const error = await dbError(client.query(`DELETE FROM ${table.table} WHERE tenant_id = $1`, [tenant.tenantId]));
        expect(error?.constraint, table.table).toBe('tenants_deleted_read_only');
      }
    } finally {
      client.release();
    }
  });

  test('app_service and hasura_app in the tenant session are refused too', async () => {
    const serviceWrite = await dbError(
      withTenant(service, { tenantId: tenant.tenantId, userId: tenant.ownerUserId, role: 'owner' }, (client) =>
        client.query(`UPDATE projects SET name = 'changed' WHERE tenant_id = $1`, [tenant.tenantId]),
      ),
    );
    expect(serviceWrite?.constraint).toBe('tenants_deleted_read_only');
    const hasuraWrite = await dbError(
      asHasura(tenant, `INSERT INTO projects (tenant_id, name) VALUES ($1, 'new')`, [tenant.tenantId]),
    );
    expect(hasuraWrite?.constraint).toBe('tenants_deleted_read_only');
    const { rows } = await admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM projects WHERE tenant_id = $1 AND name IN ('changed', 'new')`, [
      tenant.tenantId,
    ]);
    expect(rows[0]!.n).toBe(0);
  });

  test("another tenant's session learns nothing: row-level security answers, not the deleted-tenant rule", async () => {
    const other = await seedTenant(admin, 'lc-foreign');
    const error = await dbError(
      withTenant(service, { tenantId: other.tenantId, userId: other.ownerUserId, role: 'owner' }, (client) =>
        client.query(`INSERT INTO projects (tenant_id, name) VALUES ($1, 'probe')`, [tenant.tenantId]),
      ),
    );
    expect(error?.code).toBe('42501');
    expect(error?.message).not.toContain(tenant.slug);
    expect(error?.constraint).toBeUndefined();
  });

  test('removing a user who is a member of a deleted tenant still works (the cascade runs as the owner)', async () => {
    const other = await seedTenant(admin, 'lc-user-drop');
    await softDelete(other.tenantId);
    await admin.query('DELETE FROM users WHERE id = $1', [other.memberUserId]);
    const { rows } = await admin.query<{ n: number }>('SELECT count(*)::int AS n FROM tenant_members WHERE tenant_id = $1', [other.tenantId]);
    expect(rows[0]!.n).toBe(1);
  });

  test('the purge deletes the tenant row and its whole cascade', async () => {
    const doomed = await seedTenant(admin, 'lc-purge');
    await softDelete(doomed.tenantId);
    const deleted = await admin.query('DELETE FROM tenants WHERE id = $1', [doomed.tenantId]);
    expect(deleted.rowCount).toBe(1);
    const client = await admin.connect();
    try {
      for (const table of await listTenantTables(client)) {
        if (table.table === 'tenants') continue;
        const { rows } = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table.table} WHERE tenant_id = $1`, [doomed.tenantId]);
        expect(rows[0]!.n, table.table).toBe(0);
      }
    } finally {
      client.release();
    }
  });
});

describe('a tenant with members has an owner', () => {
  async function bareTenant(label: string): Promise<string> {
    const { rows } = await admin.query<{ id: string }>(`INSERT INTO tenants (slug, name) VALUES ($1, 'Ownerless') RETURNING id`, [uniqueSlug(label)]);
    return rows[0]!.id;
  }

  test("a tenant's first member cannot be a non-owner", async () => {
    const tenantId = await bareTenant('lc-ownerless');
    const [userId] = (await createUsers(admin, 'lc-ownerless', 1)) as [string];
    const error = await dbError(
      admin.query(`INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, 'admin')`, [tenantId, userId]),
    );
    expect(error?.code).toBe('23514');
    expect(error?.constraint).toBe('tenant_members_last_owner');
    const { rows } = await admin.query<{ n: number }>('SELECT count(*)::int AS n FROM tenant_members WHERE tenant_id = $1', [tenantId]);
    expect(rows[0]!.n).toBe(0);
  });

  test('members and their owner may go in in any order inside one transaction', async () => {
    const tenantId = await bareTenant('lc-owner-later');
    const [memberId, ownerId] = (await createUsers(admin, 'lc-owner-later', 2)) as [string, string];
    const client = await admin.connect();
    try {
      await client.query('BEGIN');
      await client.query(`INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, 'member')`, [tenantId, memberId]);
      await client.query(`INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, 'owner')`, [tenantId, ownerId]);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    const { rows } = await admin.query<{ n: number }>('SELECT count(*)::int AS n FROM tenant_members WHERE tenant_id = $1', [tenantId]);
    expect(rows[0]!.n).toBe(2);
  });
});

describe('pending invitations take seats', () => {
  /** A tenant limited to `maxUsers`, with its owner as the only member. */
  async function smallTenant(label: string, maxUsers: number) {
    const tenant = await seedTenant(admin, label);
    await admin.query(`DELETE FROM tenant_invitations WHERE tenant_id = $1`, [tenant.tenantId]);
    await admin.query(`DELETE FROM tenant_members WHERE tenant_id = $1 AND role <> 'owner'`, [tenant.tenantId]);
    await admin.query('UPDATE tenants SET max_users = $2 WHERE id = $1', [tenant.tenantId, maxUsers]);
    return tenant;
  }
  const invite = (client: pg.Pool | pg.ClientBase, tenant: SeededTenant, email: string, tokenHash = `tokhash-${hex(16)}`) =>
    client.query(
      `INSERT INTO tenant_invitations (tenant_id, email, role, token_hash, invited_by) VALUES ($1, $2, 'member', $3, $4)`,
      [tenant.tenantId, email, tokenHash, tenant.ownerUserId],
    );

  test('an invitation into a full tenant (members + pending invitations) is refused when written', async () => {
    const tenant = await smallTenant('lc-invite-full', 2);
    await withTenant(service, { tenantId: tenant.tenantId, userId: tenant.ownerUserId, role: 'owner' }, (client) =>
      invite(client, tenant, `first-${hex()}@example.test`),
    );
    const error = await dbError(
      withTenant(service, { tenantId: tenant.tenantId, userId: tenant.ownerUserId, role: 'owner' }, (client) =>
        invite(client, tenant, `second-${hex()}@example.test`),
      ),
    );
    expect(error?.code).toBe('23514');
    expect(error?.constraint).toBe('tenant_members_user_limit');

    // The pending invitation holds the last seat against a direct add, too.
    const [userId] = (await createUsers(admin, 'lc-invite-full', 1)) as [string];
    const add = await dbError(
      admin.query(`INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, 'member')`, [tenant.tenantId, userId]),
    );
    expect(add?.constraint).toBe('tenant_members_user_limit');
  });

  test('a lapsed invitation takes no seat', async () => {
    const tenant = await smallTenant('lc-invite-lapsed', 2);
    await admin.query(
      `INSERT INTO tenant_invitations (tenant_id, email, role, token_hash, invited_by, expires_at)
       VALUES ($1, $2, 'member', $3, $4, now() - interval '1 minute')`,
      [tenant.tenantId, `lapsed-${hex()}@example.test`, `tokhash-${hex(16)}`, tenant.ownerUserId],
    );
    await invite(admin, tenant, `fresh-${hex()}@example.test`);
  });

  test('accepting an invitation at exactly the limit works: its seat was already counted', async () => {
    const tenant = await smallTenant('lc-invite-accept', 2);
    const tokenHash = `tokhash-${hex(16)}`;
    const email = `accept-${hex()}@example.test`;
    await invite(admin, tenant, email, tokenHash);
    const { rows } = await admin.query<{ id: string }>(`INSERT INTO users (email, email_verified_at) VALUES ($1, now()) RETURNING id`, [email]);
    const accepted = await service.query<{ tenant_id: string; role: string }>('SELECT * FROM app.accept_invitation($1, $2)', [
      tokenHash,
      rows[0]!.id,
    ]);
    expect(accepted.rows[0]).toEqual({ tenant_id: tenant.tenantId, role: 'member' });
    const seats = await admin.query<{ n: number }>('SELECT app.tenant_seats_taken($1) AS n', [tenant.tenantId]);
    expect(seats.rows[0]!.n).toBe(2);
  });
});

describe('the isolation lint demands the guard', () => {
  let scratch: ScratchDatabase;
  let owner: pg.Client;
  beforeAll(async () => {
    scratch = await createScratchDatabase({ migrated: true });
    owner = new pg.Client({ connectionString: scratch.url('tenantry_owner') });
    await owner.connect();
  });
  afterAll(async () => {
    await owner.end();
    await scratch.drop();
  });

  async function lintAfter(ddl: string): Promise<IsolationProblem[]> {
    await owner.query('BEGIN');
    try {
      await owner.query(ddl);
      return (await lintTenantIsolation(owner)).filter((problem) => problem.table === 'gadgets');
    } finally {
      await owner.query('ROLLBACK');
    }
  }
  const table = `CREATE TABLE gadgets (id uuid PRIMARY KEY, tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE);
                 CREATE INDEX ON gadgets (tenant_id);
                 SELECT app.enable_tenant_isolation('gadgets');`;

  test('enable_tenant_isolation adds the trigger: no problem', async () => {
    expect(await lintAfter(table)).toEqual([]);
  });

  test('a tenant table without it is reported', async () => {
    const problems = await lintAfter(`${table} DROP TRIGGER deleted_tenant_read_only ON gadgets;`);
    expect(problems.map((problem) => problem.rule)).toEqual(['deleted-tenant-writable']);
  });
});
