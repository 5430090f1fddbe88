/**
 * Plans bind (issue 15): an API key needs the plan's `api_keys`, a custom domain (added or
 * verified) needs `custom_domains`, whoever writes: Hasura (hasura_app with `hasura.user`
 * as graphql-engine sets it), the services (app_service through withTenant) and the
 * platform (platform_admin, the CLI). The plan moves through app.billing_set_plan, as the
 * billing worker and `tenantry plan set` move it. The features in force are one answer:
 * app.tenant_has_feature, app.tenant_entitlements, the Hasura computed fields, the
 * resolver and the triggers agree for every plan and override.
 */
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { PLAN_FEATURES } from '../../scripts/hasura/registry.js';
import { hasuraSessionJson, withTenant, type TenantContext } from '../../services/shared/src/db/tenant-context.js';
import { dbError, hex, seedTenant, type DbError, type PlanId, type SeededTenant } from '../fixtures/seed.js';
import { poolAs } from '../helpers/database.js';

const admin = poolAs('platform_admin');
const service = poolAs('app_service');
const hasura = poolAs('hasura_app');
const PLANS: PlanId[] = ['free', 'starter', 'pro', 'enterprise'];

afterAll(async () => {
  await Promise.all([admin.end(), service.end(), hasura.end()]);
});

/** One GraphQL mutation's transaction: hasura_app, `hasura.user` set for the transaction. */
async function asHasura<T extends pg.QueryResultRow>(context: TenantContext, statement: string, params: unknown[] = []): Promise<T[]> {
  const client = await hasura.connect();
  try {
    await client.query('BEGIN');
    await client.query("SELECT set_config('hasura.user', $1, true)", [hasuraSessionJson(context)]);
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

const setPlan = async (tenant: SeededTenant, plan: PlanId, reason: string) =>
  (await service.query<{ changed: boolean }>('SELECT app.billing_set_plan($1, $2, $3) AS changed', [tenant.tenantId, plan, reason])).rows[0]!.changed;

type Writer = (tenant: SeededTenant) => Promise<unknown>;

/** insert_tenant_domains_one as an owner and a tenant admin; the services; the CLI. */
const domainWriters: Record<string, Writer> = {
  'hasura_app as owner': (tenant) =>
    asHasura({ tenantId: tenant.tenantId, userId: tenant.ownerUserId, role: 'owner' }, 'INSERT INTO tenant_domains (tenant_id, domain, is_primary) VALUES ($1, $2, false)', [
      tenant.tenantId,
      `gql-owner-${hex()}.example.test`,
    ]),
  'hasura_app as tenant_admin': (tenant) =>
    asHasura({ tenantId: tenant.tenantId, userId: tenant.ownerUserId, role: 'tenant_admin' }, 'INSERT INTO tenant_domains (tenant_id, domain, is_primary) VALUES ($1, $2, false)', [
      tenant.tenantId,
      `gql-admin-${hex()}.example.test`,
    ]),
  app_service: (tenant) =>
    withTenant(service, { tenantId: tenant.tenantId, userId: tenant.ownerUserId, role: 'owner' }, (client) =>
      client.query('INSERT INTO tenant_domains (domain) VALUES ($1)', [`svc-${hex()}.example.test`]),
    ),
  platform_admin: (tenant) => admin.query('INSERT INTO tenant_domains (tenant_id, domain) VALUES ($1, $2)', [tenant.tenantId, `cli-${hex()}.example.test`]),
};

/** The auth service's insert (app_service in the tenant), and the platform's. */
const keyWriters: Record<string, Writer> = {
  app_service: (tenant) =>
    withTenant(service, { tenantId: tenant.tenantId, userId: tenant.ownerUserId, role: 'owner' }, (client) =>
      client.query(`INSERT INTO api_keys (name, prefix, key_hash, role) VALUES ('ci', $1, $2, 'member')`, [`pf_${hex(6)}`, `hash-${hex(8)}`]),
    ),
  platform_admin: (tenant) =>
    admin.query(`INSERT INTO api_keys (tenant_id, name, prefix, key_hash, role, created_by) VALUES ($1, 'ops', $2, $3, 'member', $4)`, [
      tenant.tenantId,
      `pf_${hex(6)}`,
      `hash-${hex(8)}`,
      tenant.ownerUserId,
    ]),
};

/** `tenantry domain verify`'s statement, after its DNS check: the platform's alone. */
const verify = (domainId: string) => admin.query('UPDATE tenant_domains SET verified_at = now() WHERE id = $1 AND verified_at IS NULL', [domainId]);

function refusedFor(error: DbError | undefined, feature: string) {
  expect(error, `expected plan_feature_${feature} to refuse`).toBeDefined();
  expect({ code: error!.code, constraint: error!.constraint }).toEqual({ code: '42501', constraint: `plan_feature_${feature}` });
}

const rowCounts = async (tenantId: string) =>
  (
    await admin.query<{ keys: number; domains: number; verified: number }>(
      `SELECT (SELECT count(*)::int FROM api_keys WHERE tenant_id = $1) AS keys,
              (SELECT count(*)::int FROM tenant_domains WHERE tenant_id = $1) AS domains,
              (SELECT count(*)::int FROM tenant_domains WHERE tenant_id = $1 AND verified_at IS NOT NULL) AS verified`,
      [tenantId],
    )
  ).rows[0]!;

const resolved = async (domain: string) =>
  (await service.query<{ plan_id: string; custom_domains: boolean }>('SELECT plan_id, custom_domains FROM app.resolve_tenant_by_domain($1)', [domain])).rows;

describe('features bind where every writer passes', () => {
  let tenant: SeededTenant;
  let unverifiedId: string;
  beforeAll(async () => {
    // Seeded on pro, then down to free: it keeps the key and the verified domain it had.
    tenant = await seedTenant(admin, 'features', { plan: 'free' });
    // An unverified claim made while the plan had custom domains.
    await admin.query('UPDATE tenants SET feature_overrides = $2 WHERE id = $1', [tenant.tenantId, { custom_domains: true }]);
    unverifiedId = (
      await admin.query<{ id: string }>('INSERT INTO tenant_domains (tenant_id, domain) VALUES ($1, $2) RETURNING id', [tenant.tenantId, `later-${tenant.domain}`])
    ).rows[0]!.id;
    await admin.query(`UPDATE tenants SET feature_overrides = '{}' WHERE id = $1`, [tenant.tenantId]);
  });

  test('free refuses keys, domains and verification for every role; starter allows them; back on free the rows stay and the domain stops resolving', async () => {
    const before = await rowCounts(tenant.tenantId);
    for (const [role, write] of Object.entries(domainWriters)) {
      const error = await dbError(write(tenant));
      expect(error?.code, role).toBe('42501');
      refusedFor(error, 'custom_domains');
    }
    for (const write of Object.values(keyWriters)) refusedFor(await dbError(write(tenant)), 'api_keys');
    refusedFor(await dbError(verify(unverifiedId)), 'custom_domains');
    expect(await rowCounts(tenant.tenantId)).toEqual(before);
    expect(await resolved(tenant.domain)).toEqual([{ plan_id: 'free', custom_domains: false }]);

    expect(await setPlan(tenant, 'starter', 'upgrade: checkout completed')).toBe(true);
    for (const write of Object.values(domainWriters)) await write(tenant);
    for (const write of Object.values(keyWriters)) await write(tenant);
    expect((await verify(unverifiedId)).rowCount).toBe(1);
    const onStarter = await rowCounts(tenant.tenantId);
    expect(onStarter).toEqual({
      keys: before.keys + Object.keys(keyWriters).length,
      domains: before.domains + Object.keys(domainWriters).length,
      verified: before.verified + 1,
    });
    expect(await resolved(tenant.domain)).toEqual([{ plan_id: 'starter', custom_domains: true }]);

    expect(await setPlan(tenant, 'free', 'subscription canceled')).toBe(true);
    expect(await rowCounts(tenant.tenantId)).toEqual(onStarter);
    expect(await resolved(tenant.domain)).toEqual([{ plan_id: 'free', custom_domains: false }]);
    expect(await resolved(`later-${tenant.domain}`)).toEqual([{ plan_id: 'free', custom_domains: false }]);
  });

  test('Hasura reads the features through the computed-field functions, for every tenant role, without a session', async () => {
    const fields = PLAN_FEATURES.map((feature) => `app.tenant_has_feature_${feature}(t) AS ${feature}`).join(', ');
    for (const role of ['owner', 'tenant_admin', 'member', 'guest']) {
      const rows = await asHasura({ tenantId: tenant.tenantId, userId: tenant.memberUserId, role }, `SELECT ${fields} FROM tenants t`);
      expect(rows, role).toEqual([{ api_keys: false, custom_domains: false, sso: false, audit_export: false }]);
    }
    // The insert check's relationship, as Hasura evaluates it after the insert.
    const check = await asHasura<{ allowed: boolean }>(
      { tenantId: tenant.tenantId, userId: tenant.ownerUserId, role: 'owner' },
      'SELECT app.tenant_has_feature_custom_domains(t) AS allowed FROM tenants t WHERE t.id = $1',
      [tenant.tenantId],
    );
    expect(check).toEqual([{ allowed: false }]);
  });
});

describe('overrides', () => {
  let tenant: SeededTenant;
  beforeAll(async () => {
    tenant = await seedTenant(admin, 'overrides', { plan: 'free' });
  });
  const override = (value: unknown) => admin.query('UPDATE tenants SET feature_overrides = $2 WHERE id = $1', [tenant.tenantId, JSON.stringify(value)]);

  test('{"api_keys": true} on free allows keys, and nothing else', async () => {
    await override({ api_keys: true });
    try {
      for (const write of Object.values(keyWriters)) await write(tenant);
      for (const write of Object.values(domainWriters)) refusedFor(await dbError(write(tenant)), 'custom_domains');
    } finally {
      await override({});
    }
    refusedFor(await dbError(keyWriters.app_service!(tenant)), 'api_keys');
  });

  test('a value that is not JSON true denies: a string, a number, an object, null; over a plan that has the feature too', async () => {
    for (const malformed of ['true', 1, { enabled: true }, null, [true]]) {
      await override({ api_keys: malformed, custom_domains: malformed });
      for (const write of Object.values(keyWriters)) refusedFor(await dbError(write(tenant)), 'api_keys');
      for (const write of Object.values(domainWriters)) refusedFor(await dbError(write(tenant)), 'custom_domains');
    }
    expect(await setPlan(tenant, 'pro', 'malformed overrides over pro')).toBe(true);
    try {
      await override({ api_keys: 'true', custom_domains: 1 });
      refusedFor(await dbError(keyWriters.app_service!(tenant)), 'api_keys');
      refusedFor(await dbError(domainWriters.app_service!(tenant)), 'custom_domains');
      expect(await resolved(tenant.domain)).toEqual([{ plan_id: 'pro', custom_domains: false }]);
    } finally {
      await override({});
      await setPlan(tenant, 'free', 'back');
    }
  });
});

describe('one answer', () => {
  let tenant: SeededTenant;
  let planFeatures: Map<string, Record<string, unknown>>;
  beforeAll(async () => {
    tenant = await seedTenant(admin, 'one-answer', { plan: 'free' });
    const { rows } = await admin.query<{ id: string; features: Record<string, unknown> }>('SELECT id, features FROM plans');
    planFeatures = new Map(rows.map((row) => [row.id, row.features]));
  });

  /** Whether the trigger lets the write through, undone either way. */
  async function triggerAllows(statement: string, params: unknown[]): Promise<boolean> {
    const client = await admin.connect();
    try {
      await client.query('BEGIN');
      const error = await dbError(client.query(statement, params));
      if (error && error.code !== '42501') throw error;
      return error === undefined;
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  }

  test('app.tenant_has_feature, app.tenant_entitlements, the computed fields, the resolver and the triggers agree for every plan × override', async () => {
    const overrideValue = fc.constantFrom<unknown>(true, false, 'true', 1, 0, null, { on: true });
    const overrides = fc.dictionary(fc.constantFrom(...PLAN_FEATURES, 'white_label'), overrideValue, { maxKeys: 5 });
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...PLANS), overrides, async (plan, featureOverrides) => {
        await admin.query('UPDATE tenants SET plan_id = $2, feature_overrides = $3 WHERE id = $1', [tenant.tenantId, plan, JSON.stringify(featureOverrides)]);
        const inForce = { ...planFeatures.get(plan), ...featureOverrides };
        const expected = Object.fromEntries(PLAN_FEATURES.map((feature) => [feature, inForce[feature] === true]));

        const bySql = Object.fromEntries(
          await Promise.all(
            PLAN_FEATURES.map(async (feature) => {
              const { rows } = await service.query<{ on: boolean }>('SELECT app.tenant_has_feature($1, $2) AS on', [tenant.tenantId, feature]);
              return [feature, rows[0]!.on] as const;
            }),
          ),
        );
        const { rows: entitlements } = await service.query<{ plan_id: string; features: Record<string, unknown> }>(
          'SELECT plan_id, features FROM app.tenant_entitlements($1)',
          [tenant.tenantId],
        );
        const [computed] = await asHasura<Record<string, boolean>>(
          { tenantId: tenant.tenantId, userId: tenant.memberUserId, role: 'guest' },
          `SELECT ${PLAN_FEATURES.map((feature) => `app.tenant_has_feature_${feature}(t) AS ${feature}`).join(', ')} FROM tenants t`,
        );
        const keyAllowed = await triggerAllows(`INSERT INTO api_keys (tenant_id, name, prefix, key_hash, role) VALUES ($1, 'p', $2, 'h', 'member')`, [
          tenant.tenantId,
          `pp_${hex(6)}`,
        ]);
        const domainAllowed = await triggerAllows('INSERT INTO tenant_domains (tenant_id, domain) VALUES ($1, $2)', [tenant.tenantId, `pp-${hex()}.example.test`]);

        expect(bySql).toEqual(expected);
        expect(entitlements).toEqual([{ plan_id: plan, features: inForce }]);
        expect(computed).toEqual(expected);
        expect({ api_keys: keyAllowed, custom_domains: domainAllowed }).toEqual({ api_keys: expected.api_keys, custom_domains: expected.custom_domains });
        expect(await resolved(tenant.domain)).toEqual([{ plan_id: plan, custom_domains: expected.custom_domains }]);
      }),
      { numRuns: 40 },
    );
  });

  test('an unknown tenant or feature is off', async () => {
    const { rows } = await service.query<{ unknown_tenant: boolean; unknown_feature: boolean }>(
      "SELECT app.tenant_has_feature(gen_random_uuid(), 'api_keys') AS unknown_tenant, app.tenant_has_feature($1, 'teleport') AS unknown_feature",
      [tenant.tenantId],
    );
    expect(rows).toEqual([{ unknown_tenant: false, unknown_feature: false }]);
  });
});
