import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { bearer, decode, expectError, PASSWORD, signUp, startHarness, type Harness, type SignedUp } from './harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

const tenantOf = (token: string) => (decode(token)['https://hasura.io/jwt/claims'] as Record<string, string>)['x-hasura-tenant-id'];
const login = (email: string, tenant?: string) => request(h.app).post('/auth/login').send({ email, password: PASSWORD, ...(tenant ? { tenant } : {}) });

/** An owner's tenant with an admin beside the owner, both signed in while it was active. */
async function tenantWithAdmin(): Promise<{ owner: SignedUp; admin: SignedUp }> {
  const owner = await signUp(h.app, 'billing-owner');
  const admin = await signUp(h.app, 'billing-admin', false);
  await h.admin.query("INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, 'admin')", [owner.tenantId, admin.userId]);
  return { owner, admin };
}

const suspendForBilling = async (tenantId: string) => {
  const { rows } = await h.admin.query<{ changed: boolean }>('SELECT app.billing_set_suspended($1, true, $2) AS changed', [tenantId, 'grace over']);
  expect(rows[0]!.changed).toBe(true);
};
const suspendForAbuse = (tenantId: string) => h.admin.query("UPDATE tenants SET status = 'suspended', suspension_reason = 'abuse' WHERE id = $1", [tenantId]);

describe('a tenant suspended for billing', () => {
  test('its owner logs in to it, by default too, refreshes and switches to it', async () => {
    const { owner } = await tenantWithAdmin();
    await suspendForBilling(owner.tenantId!);

    const named = await login(owner.email, owner.slug!).expect(200);
    expect(named.body.tenant).toMatchObject({ id: owner.tenantId, role: 'owner' });
    expect(tenantOf(named.body.accessToken)).toBe(owner.tenantId);

    // Its only tenant: the default session lands there rather than nowhere.
    const byDefault = await login(owner.email).expect(200);
    expect(byDefault.body.tenant?.id).toBe(owner.tenantId);

    // A session started while the tenant was active keeps its tenant across the suspension.
    const refreshed = await request(h.app).post('/auth/refresh').send({ refreshToken: owner.refreshToken }).expect(200);
    expect(refreshed.body.tenant?.id).toBe(owner.tenantId);
    expect(tenantOf(refreshed.body.accessToken)).toBe(owner.tenantId);

    const switched = await request(h.app).post('/auth/switch-tenant').set(bearer(refreshed.body.accessToken)).send({ tenant: owner.tenantId }).expect(200);
    expect(tenantOf(switched.body.accessToken)).toBe(owner.tenantId);
    expect(switched.body.tenant.role).toBe('owner');

    const listed = await request(h.app).get('/auth/tenants').set(bearer(owner.accessToken)).expect(200);
    expect(listed.body.tenants).toEqual([expect.objectContaining({ id: owner.tenantId, status: 'suspended', suspensionReason: 'billing', role: 'owner' })]);
  });

  test("the owner's token still reaches none of the tenant's own auth routes", async () => {
    const { owner } = await tenantWithAdmin();
    await suspendForBilling(owner.tenantId!);
    const token = (await login(owner.email, owner.slug!).expect(200)).body.accessToken as string;
    for (const path of ['/auth/members', '/auth/api-keys']) {
      const answer = await request(h.app).get(path).set(bearer(token)).expect(403);
      expectError(answer.body, 'tenant_inactive');
    }
  });

  test('its other members are kept out as before', async () => {
    const { owner, admin } = await tenantWithAdmin();
    await suspendForBilling(owner.tenantId!);
    expectError((await login(admin.email, owner.slug!).expect(403)).body, 'tenant_inactive');
    expect((await login(admin.email).expect(200)).body.tenant).toBeNull();
    expectError((await request(h.app).post('/auth/switch-tenant').set(bearer(admin.accessToken)).send({ tenant: owner.tenantId }).expect(403)).body, 'tenant_inactive');
  });

  test('a suspension for another reason keeps the owner out too', async () => {
    const { owner } = await tenantWithAdmin();
    await suspendForAbuse(owner.tenantId!);
    expectError((await login(owner.email, owner.slug!).expect(403)).body, 'tenant_inactive');
    expect((await login(owner.email).expect(200)).body.tenant).toBeNull();
    const refreshed = await request(h.app).post('/auth/refresh').send({ refreshToken: owner.refreshToken }).expect(200);
    expect(refreshed.body.tenant).toBeNull();
    expectError((await request(h.app).post('/auth/switch-tenant').set(bearer(owner.accessToken)).send({ tenant: owner.tenantId }).expect(403)).body, 'tenant_inactive');
  });

  test('an owner demoted while suspended loses the way in', async () => {
    const { owner, admin } = await tenantWithAdmin();
    await h.admin.query("UPDATE tenant_members SET role = 'owner' WHERE tenant_id = $1 AND user_id = $2", [owner.tenantId, admin.userId]);
    await h.admin.query("UPDATE tenant_members SET role = 'admin' WHERE tenant_id = $1 AND user_id = $2", [owner.tenantId, owner.userId]);
    await suspendForBilling(owner.tenantId!);
    const refreshed = await request(h.app).post('/auth/refresh').send({ refreshToken: owner.refreshToken }).expect(200);
    expect(refreshed.body.tenant).toBeNull();
    expect((await login(admin.email, owner.slug!).expect(200)).body.tenant.role).toBe('owner');
  });
});

describe('plan features bind API keys', () => {
  test("a free tenant's API key is refused with feature_not_in_plan, and created once the plan has the feature", async () => {
    const owner = await signUp(h.app, 'free-keys');
    const { rows } = await h.admin.query<{ plan_id: string }>('SELECT plan_id FROM tenants WHERE id = $1', [owner.tenantId]);
    expect(rows[0]!.plan_id).toBe('free');
    const refused = await request(h.app).post('/auth/api-keys').set(bearer(owner.accessToken)).send({ name: 'ci' }).expect(403);
    expectError(refused.body, 'feature_not_in_plan');
    const stored = await h.admin.query('SELECT 1 FROM api_keys WHERE tenant_id = $1', [owner.tenantId]);
    expect(stored.rowCount).toBe(0);

    await h.admin.query('SELECT app.billing_set_plan($1, $2, $3)', [owner.tenantId, 'starter', 'upgrade']);
    await request(h.app).post('/auth/api-keys').set(bearer(owner.accessToken)).send({ name: 'ci' }).expect(201);
  });

  test('a feature override grants API keys on the free plan', async () => {
    const owner = await signUp(h.app, 'override-keys');
    await h.admin.query(`UPDATE tenants SET feature_overrides = '{"api_keys": true}' WHERE id = $1`, [owner.tenantId]);
    await request(h.app).post('/auth/api-keys').set(bearer(owner.accessToken)).send({ name: 'ci' }).expect(201);
  });
});
