import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { hex } from '../fixtures/seed.js';
import { bearer, createPlan, expectError, seedBillingTenant, startBillingHarness, type BillingHarness, type BillingTenant } from './harness.js';

let h: BillingHarness;
let paidPlan: string;
beforeAll(async () => {
  h = await startBillingHarness();
  paidPlan = await createPlan(h.admin, 'access');
});
afterAll(() => h.close());

type Call = 'checkout' | 'portal' | 'subscription' | 'entitlements';
const CALLS: Call[] = ['checkout', 'portal', 'subscription', 'entitlements'];

function call(what: Call, token: string, headers: Record<string, string> = {}) {
  const authorised = { ...bearer(token), ...headers };
  switch (what) {
    case 'checkout':
      return request(h.app).post('/billing/checkout').set(authorised).send({ plan: paidPlan });
    case 'portal':
      return request(h.app).post('/billing/portal').set(authorised);
    case 'subscription':
      return request(h.app).get('/billing/subscription').set(authorised);
    case 'entitlements':
      return request(h.app).get('/billing/entitlements').set(authorised);
  }
}

/** A tenant with a customer already (so the portal answers), on a plan of its own name. */
async function tenantWithCustomer(label: string): Promise<BillingTenant & { customer: string }> {
  const customer = `cus_${hex(8)}`;
  const tenant = await seedBillingTenant(h.admin, label, { stripeCustomerId: customer });
  return { ...tenant, customer };
}

describe("who may use billing: the member's current role and permissions", () => {
  test('members and guests are refused everything, reads included', async () => {
    const tenant = await tenantWithCustomer('members');
    for (const role of ['member', 'guest'] as const) {
      const token = h.token(tenant.users[role], tenant.tenantId, role);
      for (const what of CALLS) expectError((await call(what, token).expect(403)).body, 'forbidden');
    }
  });

  test('admins read (billing:read) but neither check out nor open the portal', async () => {
    const tenant = await tenantWithCustomer('admins');
    const token = h.token(tenant.users.admin, tenant.tenantId, 'admin');
    await call('subscription', token).expect(200);
    await call('entitlements', token).expect(200);
    expectError((await call('checkout', token).expect(403)).body, 'forbidden');
    expectError((await call('portal', token).expect(403)).body, 'forbidden');
  });

  test('owners, and a member granted billing:write, do everything', async () => {
    const tenant = await tenantWithCustomer('writers');
    for (const [user, role] of [[tenant.users.owner, 'owner'], [tenant.users.billingWriter, 'member']] as const) {
      const token = h.token(user, tenant.tenantId, role);
      for (const what of CALLS) {
        const answer = await call(what, token);
        expect(answer.status, `${role} ${what}: ${answer.text}`).toBe(200);
      }
    }
  });

  test('the role in the token is not believed: an admin whose token says owner cannot check out', async () => {
    const tenant = await tenantWithCustomer('claims');
    const token = h.token(tenant.users.admin, tenant.tenantId, 'owner');
    expectError((await call('checkout', token).expect(403)).body, 'forbidden');
    expectError((await call('portal', token).expect(403)).body, 'forbidden');
  });

  test('a grant taken back counts at once, on a token issued before', async () => {
    const tenant = await tenantWithCustomer('revoked');
    const token = h.token(tenant.users.billingWriter, tenant.tenantId, 'member');
    await call('portal', token).expect(200);
    await h.admin.query("UPDATE tenant_members SET permissions = '{}' WHERE tenant_id = $1 AND user_id = $2", [tenant.tenantId, tenant.users.billingWriter]);
    expectError((await call('portal', token).expect(403)).body, 'forbidden');
    expectError((await call('subscription', token).expect(403)).body, 'forbidden');
  });

  test('someone removed from the tenant is refused with a still-valid token', async () => {
    const tenant = await tenantWithCustomer('removed');
    const token = h.token(tenant.users.admin, tenant.tenantId, 'admin');
    await h.admin.query('DELETE FROM tenant_members WHERE tenant_id = $1 AND user_id = $2', [tenant.tenantId, tenant.users.admin]);
    expectError((await call('subscription', token).expect(403)).body, 'not_a_member');
  });

  test("API-key tokens act with the key's role only: never the creator's extra grants, never above the creator's current role", async () => {
    const tenant = await tenantWithCustomer('keys');
    const apiKeyId = randomUUID();
    const ownerKey = h.token(tenant.users.owner, tenant.tenantId, 'owner', { apiKeyId });
    await call('portal', ownerKey).expect(200);
    const adminKey = h.token(tenant.users.owner, tenant.tenantId, 'admin', { apiKeyId });
    await call('entitlements', adminKey).expect(200);
    expectError((await call('checkout', adminKey).expect(403)).body, 'forbidden');
    const writersKey = h.token(tenant.users.billingWriter, tenant.tenantId, 'member', { apiKeyId });
    expectError((await call('subscription', writersKey).expect(403)).body, 'forbidden');
    // Claims owner, but its creator is an admin now: an admin's reach.
    const inflated = h.token(tenant.users.admin, tenant.tenantId, 'owner', { apiKeyId });
    await call('subscription', inflated).expect(200);
    expectError((await call('portal', inflated).expect(403)).body, 'forbidden');
  });

  test('read-only tokens change nothing; no token is 401; a token naming no tenant is 403', async () => {
    const tenant = await tenantWithCustomer('readonly');
    const readOnly = h.token(tenant.users.owner, tenant.tenantId, 'owner', { readOnly: true });
    await call('subscription', readOnly).expect(200);
    expectError((await call('portal', readOnly).expect(403)).body, 'forbidden');
    expectError((await request(h.app).get('/billing/subscription').expect(401)).body, 'unauthenticated');
    expectError((await call('subscription', 'not.a.token').expect(401)).body, 'unauthenticated');
    const tenantless = h.tokens.sign({ userId: tenant.users.owner, tenant: null });
    expectError((await call('subscription', tenantless).expect(403)).body, 'not_a_member');
  });
});

describe("the token's tenant only", () => {
  test("tenant A's owner token with X-Tenant-Id or X-Tenant-Slug of B is 403 tenant_mismatch, and nothing of B comes back", async () => {
    const a = await tenantWithCustomer('tenant-a');
    const bPlan = await createPlan(h.admin, 'secretplan');
    const b = await seedBillingTenant(h.admin, 'tenant-b', { plan: bPlan, stripeCustomerId: `cus_${hex(8)}` });
    const token = h.token(a.users.owner, a.tenantId, 'owner');
    for (const headers of [{ 'X-Tenant-Id': b.tenantId }, { 'X-Tenant-Slug': b.slug }] as Record<string, string>[]) {
      for (const what of CALLS) {
        const answer = await call(what, token, headers).expect(403);
        expectError(answer.body, 'tenant_mismatch');
        expect(answer.text).not.toContain(bPlan);
        expect(answer.text).not.toContain(b.tenantId);
      }
    }
    // With its own tenant's headers it works, and it is A's answer.
    const own = await call('subscription', token, { 'X-Tenant-Id': a.tenantId, 'X-Tenant-Slug': a.slug }).expect(200);
    expect(own.body.plan).toBe('free');
  });

  test("a token naming B for a user who is not B's member (a stale or forged claim) is refused, and B is never touched", async () => {
    const a = await tenantWithCustomer('outsider-a');
    const b = await seedBillingTenant(h.admin, 'outsider-b');
    const token = h.token(a.users.owner, b.tenantId, 'owner');
    for (const what of CALLS) expectError((await call(what, token).expect(403)).body, 'not_a_member');
    const { rows } = await h.admin.query<{ stripe_customer_id: string | null }>('SELECT stripe_customer_id FROM tenants WHERE id = $1', [b.tenantId]);
    expect(rows[0]!.stripe_customer_id).toBeNull();
  });
});

describe('suspended tenants', () => {
  test('suspended for billing: owners read and open the portal to pay, but start no new checkout', async () => {
    const customer = `cus_${hex(8)}`;
    const tenant = await seedBillingTenant(h.admin, 'unpaid', { stripeCustomerId: customer, status: 'suspended', suspensionReason: 'billing' });
    const token = h.token(tenant.users.owner, tenant.tenantId, 'owner');
    await call('subscription', token).expect(200);
    await call('portal', token).expect(200);
    expectError((await call('checkout', token).expect(403)).body, 'tenant_suspended');
    // Still only for those who may: a member is refused as ever.
    expectError((await call('portal', h.token(tenant.users.member, tenant.tenantId, 'member')).expect(403)).body, 'forbidden');
    // As at the edge: only owners, with their own token, and only the subscription and the portal.
    expectError((await call('entitlements', token).expect(403)).body, 'tenant_suspended');
    expectError((await call('subscription', h.token(tenant.users.admin, tenant.tenantId, 'admin')).expect(403)).body, 'tenant_suspended');
    const ownersKey = h.token(tenant.users.owner, tenant.tenantId, 'owner', { apiKeyId: '00000000-0000-4000-8000-000000000001' });
    expectError((await call('portal', ownersKey).expect(403)).body, 'tenant_suspended');
  });

  test('suspended for another reason: nothing', async () => {
    const tenant = await seedBillingTenant(h.admin, 'abuse', { stripeCustomerId: `cus_${hex(8)}`, status: 'suspended', suspensionReason: 'abuse' });
    const token = h.token(tenant.users.owner, tenant.tenantId, 'owner');
    for (const what of CALLS) expectError((await call(what, token).expect(403)).body, 'tenant_suspended');
  });
});
