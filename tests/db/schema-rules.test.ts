/**
 * The data rules of the foundation schema, each with a case it accepts and a case it refuses.
 * Values that must be globally unique but are fixed by the rule under test ('acme',
 * 'xn--bcher-kva.de') are inserted in rolled-back transactions and may already be taken by
 * another test file: a unique violation there still proves the value passed its CHECK.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { hasuraSessionJson, withTenant } from '../../services/shared/src/db/tenant-context.js';
import { createUsers, dbError, hex, seedTenant, uniqueSlug, type DbError, type SeededTenant } from '../fixtures/seed.js';
import { poolAs } from '../helpers/database.js';

const admin = poolAs('platform_admin');
const service = poolAs('app_service');
const hasura = poolAs('hasura_app');
let T: SeededTenant;
let U: SeededTenant;

beforeAll(async () => {
  [T, U] = await Promise.all([seedTenant(admin, 'rules-t'), seedTenant(admin, 'rules-u')]);
});

afterAll(async () => {
  await Promise.all([admin.end(), service.end(), hasura.end()]);
});

/** Runs one statement in a transaction on `pool` that is always rolled back. */
async function rolledBack(pool: pg.Pool, sql: string, params: unknown[] = []): Promise<DbError | undefined> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    return await dbError(client.query(sql, params));
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
    client.release();
  }
}

function expectViolation(error: DbError | undefined, code: string, constraint: string): void {
  expect(error, `expected ${constraint} to refuse`).toBeDefined();
  expect({ code: error!.code, constraint: error!.constraint }, error!.message).toEqual({ code, constraint });
}

/** Accepted by every CHECK; the only acceptable failure is the value being taken already. */
function expectAcceptedUnlessTaken(error: DbError | undefined, uniqueConstraint: string): void {
  if (error) expectViolation(error, '23505', uniqueConstraint);
}

const hourUtc = `date_trunc('hour', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'`;

describe('tenant slug', () => {
  const insertTenant = (slug: string) => rolledBack(admin, `INSERT INTO tenants (slug, name) VALUES ($1, 'Slug test')`, [slug]);

  test.each([
    ['www', 'reserved'],
    ['ab', 'too short'],
    ['Acme', 'upper case'],
    ['a--b', 'double hyphen'],
    ['a'.repeat(64), '64 characters'],
    ['-acme', 'leading hyphen'],
  ])('%s is refused (%s)', async (slug) => {
    expectViolation(await insertTenant(slug), '23514', 'tenants_slug_valid');
  });

  test.each(['acme', 'acme-2'])('%s is accepted', async (slug) => {
    expectAcceptedUnlessTaken(await insertTenant(slug), 'tenants_slug_key');
  });

  test('63 characters is the longest slug accepted', async () => {
    const slug = `s${hex(31)}`; // 63 characters, unique
    expect(slug).toHaveLength(63);
    expect(await insertTenant(slug)).toBeUndefined();
  });

  test('slugs are unique', async () => {
    expectViolation(await insertTenant(T.slug), '23505', 'tenants_slug_key');
    expect(await insertTenant(uniqueSlug('rules-other'))).toBeUndefined();
  });
});

describe('custom domains', () => {
  const insertDomain = (tenant: SeededTenant, domain: string, primary = false) =>
    rolledBack(admin, `INSERT INTO tenant_domains (tenant_id, domain, is_primary) VALUES ($1, $2, $3)`, [tenant.tenantId, domain, primary]);

  test.each(['App.Acme.com', 'app.acme.com.', 'bücher.de', 'localhost', '-app.acme.com'])('%s is refused: not normalised', async (domain) => {
    expectViolation(await insertDomain(T, domain), '23514', 'tenant_domains_domain_normalised');
  });

  test('xn--bcher-kva.de (punycode) is accepted', async () => {
    expectAcceptedUnlessTaken(await insertDomain(T, 'xn--bcher-kva.de'), 'tenant_domains_tenant_id_domain_key');
    expect(await insertDomain(T, `xn--bcher-kva.${T.slug}.test`)).toBeUndefined();
  });

  // An unverified domain is a claim: any tenant may claim it, the first to verify owns it.
  test('a domain belongs to one tenant: the one that verifies it', async () => {
    const domain = `shared-${hex()}.example.test`;
    const claim = (tenant: SeededTenant) =>
      withTenant(service, { tenantId: tenant.tenantId }, (client) => client.query('INSERT INTO tenant_domains (domain) VALUES ($1)', [domain]));
    // Verification is the platform's (the CLI, after the DNS check): no tenant role writes verified_at.
    const verify = (tenant: SeededTenant) =>
      admin.query('UPDATE tenant_domains SET verified_at = now() WHERE tenant_id = $1 AND domain = $2', [tenant.tenantId, domain]);
    const claimants = async () =>
      (
        await admin.query<{ tenant_id: string; verified: boolean }>(
          'SELECT tenant_id, verified_at IS NOT NULL AS verified FROM tenant_domains WHERE domain = $1 ORDER BY verified_at NULLS LAST',
          [domain],
        )
      ).rows;

    await claim(T);
    await claim(U);
    expect(await claimants()).toHaveLength(2);
    // A tenant claims a name once.
    expectViolation(await dbError(claim(T)), '23505', 'tenant_domains_tenant_id_domain_key');

    const verified = await verify(T);
    expect(verified.rowCount).toBe(1);
    // Verifying removed U's unverified claim.
    expect(await claimants()).toEqual([{ tenant_id: T.tenantId, verified: true }]);

    // U may claim it again, but never verify it while T holds it.
    await claim(U);
    expectViolation(await dbError(verify(U)), '23505', 'tenant_domains_verified_domain_key');
    expect(await claimants()).toEqual([
      { tenant_id: T.tenantId, verified: true },
      { tenant_id: U.tenantId, verified: false },
    ]);
    // Another name is fine for the second tenant.
    expect(await insertDomain(U, `other-${hex()}.example.test`)).toBeUndefined();
  });

  test('one primary domain per tenant', async () => {
    // The seed gave each tenant a primary domain already.
    expectViolation(await insertDomain(T, `second-${hex()}.example.test`, true), '23505', 'tenant_domains_one_primary');
    expect(await insertDomain(T, `secondary-${hex()}.example.test`, false)).toBeUndefined();
    // Moving the primary flag in one transaction works (rolled back afterwards).
    const client = await service.connect();
    try {
      await client.query('BEGIN');
      await client.query("SELECT set_config('hasura.user', $1, true)", [hasuraSessionJson({ tenantId: T.tenantId })]);
      await client.query('UPDATE tenant_domains SET is_primary = false WHERE id = $1', [T.domainId]);
      await client.query('INSERT INTO tenant_domains (domain, is_primary) VALUES ($1, true)', [`new-primary-${hex()}.example.test`]);
      const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM tenant_domains WHERE is_primary');
      expect(rows[0]!.n).toBe(1);
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  });
});

describe('usage counters', () => {
  const upsert = (tenantId: string, metric: string, quantity: number) =>
    withTenant(service, { tenantId: T.tenantId }, async (client) => {
      const { rows } = await client.query<{ quantity: string }>(
        `INSERT INTO tenant_usage (tenant_id, metric, period_start, quantity) VALUES ($1, $2, ${hourUtc}, $3)
         ON CONFLICT (tenant_id, metric, period_start) DO UPDATE SET quantity = tenant_usage.quantity + EXCLUDED.quantity
         RETURNING quantity`,
        [tenantId, metric, quantity],
      );
      return Number(rows[0]!.quantity);
    });

  test('the upsert works as app_service under RLS and accumulates', async () => {
    const metric = `rules.upsert_${hex()}`;
    expect(await upsert(T.tenantId, metric, 3)).toBe(3);
    expect(await upsert(T.tenantId, metric, 4)).toBe(7);
    const { rows } = await admin.query<{ quantity: string; n: number }>(
      `SELECT sum(quantity)::text AS quantity, count(*)::int AS n FROM tenant_usage WHERE tenant_id = $1 AND metric = $2`,
      [T.tenantId, metric],
    );
    expect(rows[0]).toEqual({ quantity: '7', n: 1 });
  });

  test('the upsert cannot touch another tenant’s counter', async () => {
    const before = await admin.query<{ quantity: string }>(
      'SELECT quantity::text FROM tenant_usage WHERE tenant_id = $1 AND metric = $2 AND period_start = $3',
      [U.tenantId, U.usage.metric, U.usage.periodStart],
    );
    expect(before.rows).toHaveLength(1);
    const error = await dbError(upsert(U.tenantId, U.usage.metric, 1000));
    expect(error?.code, error?.message).toBe('42501');
    const after = await admin.query<{ quantity: string }>(
      'SELECT quantity::text FROM tenant_usage WHERE tenant_id = $1 AND metric = $2 AND period_start = $3',
      [U.tenantId, U.usage.metric, U.usage.periodStart],
    );
    expect(after.rows).toEqual(before.rows);
  });

  test.each([
    ['2025-01-01T10:30:00Z', 'half past'],
    ['2025-01-01T10:00:01Z', 'one second past'],
    ['2025-01-01T10:00:00+05:30', 'on the hour in +05:30, not in UTC'],
  ])('period_start %s is refused (%s)', async (periodStart) => {
    const error = await rolledBack(
      admin,
      `INSERT INTO tenant_usage (tenant_id, metric, period_start, quantity) VALUES ($1, 'rules.hourly', $2, 1)`,
      [T.tenantId, periodStart],
    );
    expectViolation(error, '23514', 'tenant_usage_hourly');
  });

  test.each(['2025-01-01T10:00:00Z', '2025-01-01T10:00:00+02:00'])('period_start %s is accepted', async (periodStart) => {
    const error = await rolledBack(
      admin,
      `INSERT INTO tenant_usage (tenant_id, metric, period_start, quantity) VALUES ($1, 'rules.hourly', $2, 1)`,
      [T.tenantId, periodStart],
    );
    expect(error).toBeUndefined();
  });
});

describe('users', () => {
  // Emails are stored normalised (lower case), so a mixed-case twin can never be stored.
  test('email uniqueness ignores case: mixed case is refused, a second identical address too', async () => {
    const local = `Case-${hex()}`;
    const mixedCase = await rolledBack(admin, 'INSERT INTO users (email) VALUES ($1)', [`${local}@Example.test`]);
    expectViolation(mixedCase, '23514', 'users_email_normalised');
    const email = `${local.toLowerCase()}@example.test`;
    await admin.query('INSERT INTO users (email) VALUES ($1)', [email]);
    const error = await rolledBack(admin, 'INSERT INTO users (email) VALUES ($1)', [email]);
    expectViolation(error, '23505', 'users_email_key');
    expect(await rolledBack(admin, 'INSERT INTO users (email) VALUES ($1)', [`${local.toLowerCase()}-2@example.test`])).toBeUndefined();
  });
});

describe('tenant status', () => {
  test('suspending stamps suspended_at; reactivating clears it', async () => {
    const tenant = await seedTenant(admin, 'rules-status');
    const read = async () =>
      (
        await admin.query<{ status: string; suspended_at: Date | null; suspension_reason: string | null; status_changed_at: Date }>(
          'SELECT status, suspended_at, suspension_reason, status_changed_at FROM tenants WHERE id = $1',
          [tenant.tenantId],
        )
      ).rows[0]!;
    const initial = await read();
    expect(initial.suspended_at).toBeNull();

    await admin.query(`UPDATE tenants SET status = 'suspended', suspension_reason = 'unpaid' WHERE id = $1`, [tenant.tenantId]);
    const suspended = await read();
    expect(suspended.status).toBe('suspended');
    expect(suspended.suspended_at).toBeInstanceOf(Date);
    expect(suspended.suspension_reason).toBe('unpaid');
    expect(suspended.status_changed_at.getTime()).toBeGreaterThan(initial.status_changed_at.getTime());

    // A suspended tenant must keep its stamp.
    const error = await rolledBack(admin, 'UPDATE tenants SET suspended_at = NULL WHERE id = $1', [tenant.tenantId]);
    expectViolation(error, '23514', 'tenants_status_timestamps');

    await admin.query(`UPDATE tenants SET status = 'active' WHERE id = $1`, [tenant.tenantId]);
    const active = await read();
    expect(active.status).toBe('active');
    expect(active.suspended_at).toBeNull();
    expect(active.suspension_reason).toBeNull();
  });
});

describe('audit log', () => {
  interface AuditRow {
    tenant_id: string | null;
    action: string;
    actor: string;
    actor_user_id: string | null;
    db_role: string;
    target_type: string;
    target_id: string | null;
    before: Record<string, unknown> | null;
    after: Record<string, unknown> | null;
  }
  const auditFor = async (tenantId: string, action: string, targetId: string) =>
    (
      await admin.query<AuditRow>(
        `SELECT tenant_id, action, actor, actor_user_id, db_role, target_type, target_id, before, after
           FROM audit_log WHERE tenant_id = $1 AND action = $2 AND target_id = $3 ORDER BY id`,
        [tenantId, action, targetId],
      )
    ).rows;

  test('a member insert is logged with the actor from tenantry.actor', async () => {
    const [userId] = await createUsers(admin, 'rules-audit', 1);
    const actor = `cli:rules-${hex()}`;
    await withTenant(service, { tenantId: T.tenantId, userId: T.ownerUserId }, async (client) => {
      await client.query("SELECT set_config('tenantry.actor', $1, true)", [actor]);
      await client.query(`INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, 'member')`, [T.tenantId, userId]);
    });
    const rows = await auditFor(T.tenantId, 'tenant_members.insert', userId!);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ actor, actor_user_id: T.ownerUserId, target_type: 'tenant_members', before: null });
    expect(rows[0]!.after).toMatchObject({ user_id: userId, tenant_id: T.tenantId, role: 'member' });
  });

  test('without tenantry.actor the actor is the session user', async () => {
    const [userId] = await createUsers(admin, 'rules-audit2', 1);
    await withTenant(service, { tenantId: T.tenantId, userId: T.ownerUserId }, (client) =>
      client.query(`INSERT INTO tenant_members (tenant_id, user_id) VALUES ($1, $2)`, [T.tenantId, userId]),
    );
    const rows = await auditFor(T.tenantId, 'tenant_members.insert', userId!);
    expect(rows.map((row) => row.actor)).toEqual([`user:${T.ownerUserId}`]);
  });

  test('secrets (key_hash, token_hash) never reach before/after', async () => {
    const keyHash = `secret-key-${hex(16)}`;
    const tokenHash = `secret-token-${hex(16)}`;
    const prefix = `rk_${hex(6)}`;
    const { apiKeyId, invitationId } = await withTenant(service, { tenantId: T.tenantId, userId: T.ownerUserId }, async (client) => {
      const key = await client.query<{ id: string }>(`INSERT INTO api_keys (name, prefix, key_hash) VALUES ('audit', $1, $2) RETURNING id`, [
        prefix,
        keyHash,
      ]);
      await client.query('UPDATE api_keys SET revoked_at = now() WHERE id = $1', [key.rows[0]!.id]);
      const invitation = await client.query<{ id: string }>(
        `INSERT INTO tenant_invitations (email, token_hash) VALUES ($1, $2) RETURNING id`,
        [`audit-${hex()}@example.test`, tokenHash],
      );
      return { apiKeyId: key.rows[0]!.id, invitationId: invitation.rows[0]!.id };
    });

    const keyRows = [...(await auditFor(T.tenantId, 'api_keys.insert', apiKeyId)), ...(await auditFor(T.tenantId, 'api_keys.update', apiKeyId))];
    const invitationRows = await auditFor(T.tenantId, 'tenant_invitations.insert', invitationId);
    expect(keyRows).toHaveLength(2);
    expect(invitationRows).toHaveLength(1);
    expect(keyRows[0]!.after).toMatchObject({ prefix, name: 'audit' });
    expect(keyRows[1]!.before).toMatchObject({ prefix, revoked_at: null });
    for (const row of [...keyRows, ...invitationRows]) {
      for (const image of [row.before, row.after]) {
        if (image === null) continue;
        expect(image).not.toHaveProperty('key_hash');
        expect(image).not.toHaveProperty('token_hash');
      }
      const text = JSON.stringify(row);
      expect(text).not.toContain(keyHash);
      expect(text).not.toContain(tokenHash);
    }
  });

  test('app_service may append to its tenant’s log but not update or delete it', async () => {
    const context = { tenantId: T.tenantId, userId: T.ownerUserId };
    const { id } = await withTenant(service, context, async (client) => {
      const { rows } = await client.query<{ id: string }>(
        `INSERT INTO audit_log (action, target_type) VALUES ('projects.exported', 'projects') RETURNING id::text`,
      );
      return rows[0]!;
    });
    const logged = await admin.query<{ tenant_id: string }>('SELECT tenant_id FROM audit_log WHERE id = $1', [id]);
    expect(logged.rows).toEqual([{ tenant_id: T.tenantId }]);

    for (const sql of ['UPDATE audit_log SET reason = $2 WHERE id = $1', 'DELETE FROM audit_log WHERE id = $1 AND $2::text IS NOT NULL']) {
      const error = await dbError(withTenant(service, context, (client) => client.query(sql, [id, 'tampered'])));
      expect(error?.code, sql).toBe('42501');
      expect(error?.message).toMatch(/permission denied for table audit_log/);
    }
    const after = await admin.query<{ reason: string | null }>('SELECT reason FROM audit_log WHERE id = $1', [id]);
    expect(after.rows).toEqual([{ reason: null }]);
  });

  // app.audit_row_change() runs as its owner; the entry must name the role that logged in.
  test('trigger-written entries record the database role that made the change', async () => {
    const [userId] = await createUsers(admin, 'rules-dbrole', 1);
    // The owner adds the member: only a member with users:write may.
    await withTenant(service, { tenantId: T.tenantId, userId: T.ownerUserId }, (client) =>
      client.query(`INSERT INTO tenant_members (tenant_id, user_id) VALUES ($1, $2)`, [T.tenantId, userId]),
    );
    const rows = await auditFor(T.tenantId, 'tenant_members.insert', userId!);
    expect(rows.map((row) => row.db_role)).toEqual(['app_service']);
  });
});

describe('membership helpers', () => {
  let user: string;
  let deletedTenant: SeededTenant;

  beforeAll(async () => {
    // A user who belongs to T (owner), U (admin) and a deleted tenant.
    deletedTenant = await seedTenant(admin, 'rules-gone');
    user = T.ownerUserId;
    await admin.query(`INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $3, 'admin'), ($2, $3, 'member')`, [
      U.tenantId,
      deletedTenant.tenantId,
      user,
    ]);
    await admin.query(`UPDATE tenants SET status = 'deleted' WHERE id = $1`, [deletedTenant.tenantId]);
  });

  test('app.user_tenants lists a user’s tenants across tenants for app_service', async () => {
    const expected = [
      { tenant_id: T.tenantId, slug: T.slug, role: 'owner' },
      { tenant_id: U.tenantId, slug: U.slug, role: 'admin' },
    ].sort((a, b) => (a.slug < b.slug ? -1 : 1));
    const query = 'SELECT tenant_id::text, slug, role::text FROM app.user_tenants($1)';
    // Without a context, and from inside one tenant's context: both cross tenants.
    const outside = await service.query(query, [user]);
    expect(outside.rows).toEqual(expected);
    const inside = await withTenant(service, { tenantId: T.tenantId, userId: user }, (client) => client.query(query, [user]));
    expect(inside.rows).toEqual(expected);
    // The deleted tenant is left out.
    expect(inside.rows.map((row) => row.tenant_id)).not.toContain(deletedTenant.tenantId);
  });

  test('hasura_app may not execute app.user_tenants', async () => {
    const error = await dbError(hasura.query('SELECT * FROM app.user_tenants($1)', [user]));
    expect(error?.code).toBe('42501');
    expect(error?.message).toMatch(/permission denied for function user_tenants/);
  });

  test('app.member_role works from inside a tenant context', async () => {
    const [outsider] = await createUsers(admin, 'rules-outsider', 1);
    const roles = await withTenant(service, { tenantId: T.tenantId, userId: T.ownerUserId }, async (client) => {
      const { rows } = await client.query<{ owner: string | null; member: string | null; outsider: string | null; current: string | null }>(
        `SELECT app.member_role($1, $2)::text AS owner, app.member_role($1, $3)::text AS member,
                app.member_role($1, $4)::text AS outsider, app.current_member_role()::text AS current`,
        [T.tenantId, T.ownerUserId, T.memberUserId, outsider],
      );
      return rows[0]!;
    });
    expect(roles).toEqual({ owner: 'owner', member: 'member', outsider: null, current: 'owner' });

    const asMember = await withTenant(service, { tenantId: T.tenantId, userId: T.memberUserId }, (client) =>
      client.query<{ current: string | null }>('SELECT app.current_member_role()::text AS current'),
    );
    expect(asMember.rows).toEqual([{ current: 'member' }]);
  });
});
