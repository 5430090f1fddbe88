/**
 * The billing definers of migration 1795900500000_billing, attacked where they could be
 * misused: Hasura may run none of them; a billing lift never ends another suspension; an
 * owner through Hasura cannot move its own plan, customer or overrides; and the audit log
 * holds one entry per change of state, none for a write that changes nothing. Temporary
 * tables in the definers' way: tests/db/definer-attacks.test.ts.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { hasuraSessionJson, withTenant } from '../../services/shared/src/db/tenant-context.js';
import { dbError, hex, seedTenant, type SeededTenant } from '../fixtures/seed.js';
import { poolAs } from '../helpers/database.js';

const admin = poolAs('platform_admin');
const service = poolAs('app_service');
const hasura = poolAs('hasura_app');

afterAll(async () => {
  await Promise.all([admin.end(), service.end(), hasura.end()]);
});

/** Every call a billing definer accepts, with harmless arguments. */
const BILLING_CALLS: Record<string, (tenantId: string) => [string, unknown[]]> = {
  billing_tenant_by_customer: () => ['SELECT app.billing_tenant_by_customer($1)', ['cus_nobody']],
  billing_set_customer: (tenantId) => ['SELECT app.billing_set_customer($1, $2)', [tenantId, `cus_${hex(6)}`]],
  billing_set_plan: (tenantId) => ["SELECT app.billing_set_plan($1, 'enterprise', 'hasura')", [tenantId]],
  billing_set_suspended: (tenantId) => ["SELECT app.billing_set_suspended($1, false, 'hasura')", [tenantId]],
  billing_tenants_to_evaluate: () => ['SELECT * FROM app.billing_tenants_to_evaluate()', []],
  billing_usage_to_report: () => ["SELECT * FROM app.billing_usage_to_report(now() - interval '35 days', now(), 10)", []],
  billing_record_usage_report: (tenantId) => ["SELECT app.billing_record_usage_report($1, 'api.requests', date_trunc('hour', now()), 1)", [tenantId]],
};

async function asHasuraOwner<T extends pg.QueryResultRow>(tenant: SeededTenant, statement: string, params: unknown[] = []): Promise<T[]> {
  const client = await hasura.connect();
  try {
    await client.query('BEGIN');
    await client.query("SELECT set_config('hasura.user', $1, true)", [
      hasuraSessionJson({ tenantId: tenant.tenantId, userId: tenant.ownerUserId, role: 'owner' }),
    ]);
    const { rows } = await client.query<T>(statement, params);
    await client.query('COMMIT');
    return rows;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

const tenantState = async (tenantId: string) =>
  (
    await admin.query<{ plan_id: string; status: string; suspension_reason: string | null; stripe_customer_id: string | null; feature_overrides: object }>(
      'SELECT plan_id, status::text, suspension_reason, stripe_customer_id, feature_overrides FROM tenants WHERE id = $1',
      [tenantId],
    )
  ).rows[0]!;

const lastAuditId = async () => (await admin.query<{ id: string }>('SELECT coalesce(max(id), 0)::text AS id FROM audit_log')).rows[0]!.id;
const auditSince = async (tenantId: string, since: string) =>
  (
    await admin.query<{ action: string; reason: string | null; before: Record<string, unknown>; after: Record<string, unknown> }>(
      'SELECT action, reason, before, after FROM audit_log WHERE tenant_id = $1 AND id > $2 ORDER BY id',
      [tenantId, since],
    )
  ).rows;

let tenant: SeededTenant;
beforeAll(async () => {
  tenant = await seedTenant(admin, 'billing-definers', { plan: 'starter' });
});

describe('who may run the billing definers', () => {
  test('every billing definer is in the list, owned by app_definer, with a pinned search_path', async () => {
    const { rows } = await admin.query<{ name: string; owner: string; definer: boolean; config: string[] | null }>(
      `SELECT p.proname AS name, pg_get_userbyid(p.proowner) AS owner, p.prosecdef AS definer, p.proconfig AS config
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'app' AND p.proname LIKE 'billing\\_%' ORDER BY 1`,
    );
    expect(rows.map((row) => row.name)).toEqual(Object.keys(BILLING_CALLS).sort());
    for (const row of rows) {
      expect({ owner: row.owner, definer: row.definer, config: row.config }, row.name).toEqual({
        owner: 'app_definer',
        definer: true,
        config: ['search_path=pg_catalog, public, pg_temp'],
      });
    }
  });

  test('hasura_app may EXECUTE none of them, nor the entitlement definers, whatever role its session claims', async () => {
    const calls: typeof BILLING_CALLS = {
      ...BILLING_CALLS,
      tenant_has_feature: (tenantId) => ["SELECT app.tenant_has_feature($1, 'api_keys')", [tenantId]],
      tenant_entitlements: (tenantId) => ['SELECT * FROM app.tenant_entitlements($1)', [tenantId]],
    };
    const before = await tenantState(tenant.tenantId);
    for (const [name, call] of Object.entries(calls)) {
      const [statement, params] = call(tenant.tenantId);
      const error = await dbError(asHasuraOwner(tenant, statement, params));
      expect({ name, code: error?.code, message: error?.message }).toEqual({ name, code: '42501', message: `permission denied for function ${name}` });
    }
    expect(await tenantState(tenant.tenantId)).toEqual(before);
  });

  test('app_service and platform_admin may run them (the worker and the CLI)', async () => {
    for (const pool of [service, admin]) {
      const { rows } = await pool.query<{ id: string | null }>('SELECT app.billing_tenant_by_customer($1) AS id', ['cus_nobody']);
      expect(rows).toEqual([{ id: null }]);
    }
  });
});

describe('suspensions: billing lifts only its own', () => {
  let suspended: SeededTenant;
  beforeAll(async () => {
    suspended = await seedTenant(admin, 'billing-suspension', { plan: 'starter' });
  });
  const setSuspended = async (suspend: boolean, reason: string) =>
    (await service.query<{ changed: boolean }>('SELECT app.billing_set_suspended($1, $2, $3) AS changed', [suspended.tenantId, suspend, reason])).rows[0]!
      .changed;

  test('a suspension for abuse stays: not lifted by a paid invoice, not relabelled billing by a failed one', async () => {
    await admin.query(`UPDATE tenants SET status = 'suspended', suspension_reason = 'abuse report #12' WHERE id = $1`, [suspended.tenantId]);
    expect(await setSuspended(false, 'invoice.paid')).toBe(false);
    expect(await setSuspended(true, 'grace period over')).toBe(false);
    // Relabelled 'billing', the next paid invoice would lift it: the reason must stay.
    expect(await setSuspended(false, 'invoice.paid')).toBe(false);
    expect(await tenantState(suspended.tenantId)).toMatchObject({ status: 'suspended', suspension_reason: 'abuse report #12' });
    await admin.query(`UPDATE tenants SET status = 'active' WHERE id = $1`, [suspended.tenantId]);
  });

  test('a billing suspension is lifted by billing; a deleted tenant is never revived', async () => {
    expect(await setSuspended(true, 'grace period over')).toBe(true);
    expect(await tenantState(suspended.tenantId)).toMatchObject({ status: 'suspended', suspension_reason: 'billing' });
    expect(await setSuspended(true, 'again')).toBe(false);
    expect(await setSuspended(false, 'invoice.paid')).toBe(true);
    expect(await tenantState(suspended.tenantId)).toMatchObject({ status: 'active', suspension_reason: null });

    await admin.query(`UPDATE tenants SET status = 'deleted' WHERE id = $1`, [suspended.tenantId]);
    expect(await setSuspended(false, 'invoice.paid')).toBe(false);
    expect(await setSuspended(true, 'grace period over')).toBe(false);
    expect(await tenantState(suspended.tenantId)).toMatchObject({ status: 'deleted' });
  });
});

describe('an owner through Hasura', () => {
  test.each(['stripe_customer_id', 'feature_overrides', 'plan_id'])('cannot write tenants.%s', async (column) => {
    const values: Record<string, unknown> = { stripe_customer_id: `cus_${hex(6)}`, feature_overrides: '{"api_keys": true, "custom_domains": true}', plan_id: 'enterprise' };
    const before = await tenantState(tenant.tenantId);
    const error = await dbError(asHasuraOwner(tenant, `UPDATE tenants SET ${column} = $2 WHERE id = $1`, [tenant.tenantId, values[column]]));
    expect({ code: error?.code, message: error?.message }).toEqual({ code: '42501', message: 'permission denied for table tenants' });
    expect(await tenantState(tenant.tenantId)).toEqual(before);
    // What the owner may write, it writes: the refusal is the column's.
    expect(await asHasuraOwner(tenant, 'UPDATE tenants SET name = $2 WHERE id = $1 RETURNING name', [tenant.tenantId, `Renamed ${column}`])).toEqual([
      { name: `Renamed ${column}` },
    ]);
  });

  test.each([
    ['plan_id', "'enterprise'"],
    ['stripe_customer_id', "'cus_forged'"],
    ['feature_overrides', `'{"api_keys": true}'`],
    ['max_users', '100000'],
    ['status', "'active'"],
    ['suspension_reason', "'billing'"],
  ])('nor can the services: app_service writes tenants.%s only through the definers', async (column, value) => {
    const before = await tenantState(tenant.tenantId);
    const error = await dbError(
      withTenant(service, { tenantId: tenant.tenantId, userId: tenant.ownerUserId, role: 'owner' }, (client) =>
        client.query(`UPDATE tenants SET ${column} = ${value} WHERE id = $1`, [tenant.tenantId]),
      ),
    );
    expect({ code: error?.code, message: error?.message }).toEqual({ code: '42501', message: 'permission denied for table tenants' });
    expect(await tenantState(tenant.tenantId)).toEqual(before);
  });

  test('the auth service still transfers ownership as app_service', async () => {
    const { rows } = await withTenant(service, { tenantId: tenant.tenantId, userId: tenant.ownerUserId, role: 'owner' }, (client) =>
      client.query<{ owner_user_id: string }>('UPDATE tenants SET owner_user_id = $2 WHERE id = $1 RETURNING owner_user_id', [tenant.tenantId, tenant.ownerUserId]),
    );
    expect(rows).toEqual([{ owner_user_id: tenant.ownerUserId }]);
  });
});

describe('audit: one entry per change of state', () => {
  let audited: SeededTenant;
  beforeAll(async () => {
    audited = await seedTenant(admin, 'billing-audit', { plan: 'starter' });
  });

  test('a plan change writes exactly one tenants.update entry with its reason; the same plan again writes none', async () => {
    const since = await lastAuditId();
    const move = (plan: string, reason: string) =>
      withTenant(service, { tenantId: audited.tenantId }, async (client) => (await client.query<{ changed: boolean }>('SELECT app.billing_set_plan($1, $2, $3) AS changed', [audited.tenantId, plan, reason])).rows[0]!.changed);
    expect(await move('pro', 'customer.subscription.updated evt_1')).toBe(true);
    expect(await move('pro', 'customer.subscription.updated evt_2')).toBe(false);
    const entries = await auditSince(audited.tenantId, since);
    expect(entries.map(({ action, reason, before, after }) => ({ action, reason, from: before.plan_id, to: after.plan_id }))).toEqual([
      { action: 'tenants.update', reason: 'customer.subscription.updated evt_1', from: 'starter', to: 'pro' },
    ]);
  });

  test('an update that changes nothing writes nothing, on tenants and on subscriptions; the worker watermark alone is no entry', async () => {
    const since = await lastAuditId();
    await admin.query('UPDATE tenants SET name = name, plan_id = plan_id WHERE id = $1', [audited.tenantId]);
    await admin.query('UPDATE tenant_subscriptions SET status = status WHERE tenant_id = $1', [audited.tenantId]);
    await admin.query('UPDATE tenant_subscriptions SET stripe_event_at = now() WHERE tenant_id = $1', [audited.tenantId]);
    expect(await auditSince(audited.tenantId, since)).toEqual([]);

    await admin.query(`UPDATE tenant_subscriptions SET status = 'past_due', past_due_since = now() WHERE tenant_id = $1`, [audited.tenantId]);
    expect((await auditSince(audited.tenantId, since)).map((entry) => [entry.action, entry.after.status])).toEqual([['tenant_subscriptions.update', 'past_due']]);
  });

  test('the customer is set once: a second customer does not replace it', async () => {
    const first = `cus_${hex(8)}`;
    const call = (customer: string) =>
      service.query<{ kept: string }>('SELECT app.billing_set_customer($1, $2) AS kept', [audited.tenantId, customer]).then(({ rows }) => rows[0]!.kept);
    expect(await call(first)).toBe(first);
    expect(await call(`cus_${hex(8)}`)).toBe(first);
    expect((await service.query('SELECT app.billing_tenant_by_customer($1) AS id', [first])).rows).toEqual([{ id: audited.tenantId }]);
  });
});
