import { pino } from 'pino';
import request from 'supertest';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildBillingApp } from '../../services/billing/src/app.js';
import { stripeFailure } from '../../services/billing/src/stripe-failures.js';
import { returnUrl, tenantHost } from '../../services/billing/src/return-urls.js';
import { createServicePool } from '../../services/shared/src/db/pool.js';
import { withTenant } from '../../services/shared/src/db/tenant-context.js';
import { HttpError } from '../../services/shared/src/http/errors.js';
import { hex } from '../fixtures/seed.js';
import {
  BASE_DOMAIN,
  bearer,
  createPlan,
  expectError,
  recordingStripe,
  seedBillingTenant,
  seedSubscription,
  startBillingHarness,
  STRIPE_SECRET_KEY,
  testStripe,
  type BillingHarness,
  type RecordingStripe,
} from './harness.js';

let h: BillingHarness;
let recorder: RecordingStripe;
let paidPlan: string;
beforeAll(async () => {
  recorder = await recordingStripe();
  h = await startBillingHarness({ stripe: recorder.stripe });
  paidPlan = await createPlan(h.admin, 'growth');
});
afterAll(async () => {
  await h.close();
  await recorder.close();
});

const requestsTo = (path: string, tenantId: string) =>
  recorder.requests.filter((sent) => sent.path === path && Object.values(sent.params).includes(tenantId));

async function storedCustomer(tenantId: string): Promise<string | null> {
  const { rows } = await h.admin.query<{ stripe_customer_id: string | null }>('SELECT stripe_customer_id FROM tenants WHERE id = $1', [tenantId]);
  return rows[0]!.stripe_customer_id;
}

describe('POST /billing/checkout', () => {
  test("an owner gets a Checkout Session for the plan's price, on a customer created once and kept", async () => {
    const tenant = await seedBillingTenant(h.admin, 'checkout');
    const token = h.token(tenant.users.owner, tenant.tenantId, 'owner');
    const answer = await request(h.app).post('/billing/checkout').set(bearer(token)).send({ plan: paidPlan }).expect(200);
    expect(answer.body.url).toMatch(/^https:\/\/checkout\.stripe\.com\//);
    expect(answer.body.id).toMatch(/^cs_/);

    const customer = await storedCustomer(tenant.tenantId);
    expect(customer).toMatch(/^cus_/);
    const [created] = requestsTo('/v1/customers', tenant.tenantId);
    expect(created!.params['metadata[tenant_id]']).toBe(tenant.tenantId);
    expect(created!.idempotencyKey).toContain(tenant.tenantId);

    const [session] = requestsTo('/v1/checkout/sessions', tenant.tenantId);
    const { rows } = await h.admin.query<{ stripe_price_id: string }>('SELECT stripe_price_id FROM plans WHERE id = $1', [paidPlan]);
    expect(session!.params).toMatchObject({
      mode: 'subscription',
      customer,
      'line_items[0][price]': rows[0]!.stripe_price_id,
      'line_items[0][quantity]': '1',
      client_reference_id: tenant.tenantId,
      'metadata[tenant_id]': tenant.tenantId,
      'metadata[plan_id]': paidPlan,
      'subscription_data[metadata][tenant_id]': tenant.tenantId,
      'subscription_data[metadata][plan_id]': paidPlan,
      success_url: `https://${tenant.slug}.${BASE_DOMAIN}/settings/billing?checkout=success`,
      cancel_url: `https://${tenant.slug}.${BASE_DOMAIN}/settings/billing?checkout=cancel`,
    });

    // A second checkout (the first was abandoned) reuses the customer.
    await request(h.app).post('/billing/checkout').set(bearer(token)).send({ plan: paidPlan }).expect(200);
    expect(requestsTo('/v1/customers', tenant.tenantId)).toHaveLength(1);
    expect(requestsTo('/v1/checkout/sessions', tenant.tenantId).map((sent) => sent.params.customer)).toEqual([customer, customer]);
  });

  test('two concurrent first checkouts create one customer and both sessions use it', async () => {
    const tenant = await seedBillingTenant(h.admin, 'race');
    const token = h.token(tenant.users.owner, tenant.tenantId, 'owner');
    const answers = await Promise.all([1, 2, 3].map(() => request(h.app).post('/billing/checkout').set(bearer(token)).send({ plan: paidPlan })));
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200]);
    const customer = await storedCustomer(tenant.tenantId);
    expect(customer).toMatch(/^cus_/);
    expect(requestsTo('/v1/customers', tenant.tenantId)).toHaveLength(1);
    expect(new Set(requestsTo('/v1/checkout/sessions', tenant.tenantId).map((sent) => sent.params.customer))).toEqual(new Set([customer]));
  });

  test("a metered price rides along (no quantity), and the return URL is the tenant's verified custom domain while its plan has custom domains", async () => {
    const metered = await createPlan(h.admin, 'metered', { stripeMeteredPriceId: `price_${hex(8)}` });
    const domain = `billing-${hex(4)}.example.test`;
    const withFeature = await seedBillingTenant(h.admin, 'domain', { plan: 'starter', customDomain: domain });
    await request(h.app).post('/billing/checkout').set(bearer(h.token(withFeature.users.owner, withFeature.tenantId, 'owner'))).send({ plan: metered }).expect(200);
    const [session] = requestsTo('/v1/checkout/sessions', withFeature.tenantId);
    expect(session!.params.success_url).toBe(`https://${domain}/settings/billing?checkout=success`);
    expect(session!.params['line_items[1][price]']).toMatch(/^price_/);
    expect(session!.params['line_items[1][quantity]']).toBeUndefined();

    // The same domain on a free tenant (it lost custom_domains): the edge no longer serves it, so the slug's host.
    const withoutFeature = await seedBillingTenant(h.admin, 'nodomain', { customDomain: `billing-${hex(4)}.example.test` });
    await request(h.app).post('/billing/checkout').set(bearer(h.token(withoutFeature.users.owner, withoutFeature.tenantId, 'owner'))).send({ plan: paidPlan }).expect(200);
    expect(requestsTo('/v1/checkout/sessions', withoutFeature.tenantId)[0]!.params.cancel_url).toBe(`https://${withoutFeature.slug}.${BASE_DOMAIN}/settings/billing?checkout=cancel`);
  });

  test('plans that cannot be bought are 422 plan_not_available, and nothing reaches Stripe', async () => {
    const tenant = await seedBillingTenant(h.admin, 'plans');
    const token = h.token(tenant.users.owner, tenant.tenantId, 'owner');
    const hidden = await createPlan(h.admin, 'hidden', { isPublic: false });
    const unsynced = await createPlan(h.admin, 'unsynced', { stripePriceId: null });
    const free = await createPlan(h.admin, 'gratis', { priceCents: 0 });
    for (const plan of [hidden, 'enterprise', free, 'free', `nosuch-${hex(3)}`]) {
      expectError((await request(h.app).post('/billing/checkout').set(bearer(token)).send({ plan }).expect(422)).body, 'plan_not_available');
    }
    const missingPrice = await request(h.app).post('/billing/checkout').set(bearer(token)).send({ plan: unsynced }).expect(422);
    expectError(missingPrice.body, 'plan_not_available');
    expect(missingPrice.body.error.message).toContain('tenantry plan sync');
    expectError((await request(h.app).post('/billing/checkout').set(bearer(token)).send({ plan: 'Not A Plan!' }).expect(422)).body, 'validation_failed');
    expectError((await request(h.app).post('/billing/checkout').set(bearer(token)).send({}).expect(422)).body, 'validation_failed');
    expect(requestsTo('/v1/customers', tenant.tenantId)).toHaveLength(0);
    expect(await storedCustomer(tenant.tenantId)).toBeNull();
  });

  test('a tenant with a live subscription is 409 subscription_exists (pointing to the portal); after cancellation it may check out again', async () => {
    const tenant = await seedBillingTenant(h.admin, 'subscribed');
    const token = h.token(tenant.users.owner, tenant.tenantId, 'owner');
    await seedSubscription(h.admin, tenant.tenantId, { plan: paidPlan, status: 'active' });
    const conflict = await request(h.app).post('/billing/checkout').set(bearer(token)).send({ plan: paidPlan }).expect(409);
    expectError(conflict.body, 'subscription_exists');
    expect(conflict.body.error.message).toContain('/billing/portal');
    for (const status of ['past_due', 'trialing', 'unpaid', 'paused', 'incomplete']) {
      await h.admin.query('UPDATE tenant_subscriptions SET status = $2 WHERE tenant_id = $1', [tenant.tenantId, status]);
      expectError((await request(h.app).post('/billing/checkout').set(bearer(token)).send({ plan: paidPlan }).expect(409)).body, 'subscription_exists');
    }
    await h.admin.query("UPDATE tenant_subscriptions SET status = 'canceled' WHERE tenant_id = $1", [tenant.tenantId]);
    await request(h.app).post('/billing/checkout').set(bearer(token)).send({ plan: paidPlan }).expect(200);
  });
});

describe('POST /billing/portal', () => {
  test('without a customer it is 409 no_billing_account; with one, a portal session returning to the tenant host', async () => {
    const tenant = await seedBillingTenant(h.admin, 'portal');
    const token = h.token(tenant.users.owner, tenant.tenantId, 'owner');
    expectError((await request(h.app).post('/billing/portal').set(bearer(token)).expect(409)).body, 'no_billing_account');
    const customer = `cus_${hex(8)}`;
    await h.admin.query('UPDATE tenants SET stripe_customer_id = $2 WHERE id = $1', [tenant.tenantId, customer]);
    const answer = await request(h.app).post('/billing/portal').set(bearer(token)).expect(200);
    expect(answer.body.url).toMatch(/^https:\/\//);
    const [sent] = recorder.requests.filter((entry) => entry.path === '/v1/billing_portal/sessions' && entry.params.customer === customer);
    expect(sent!.params.return_url).toBe(`https://${tenant.slug}.${BASE_DOMAIN}/settings/billing?checkout=portal`);
  });
});

describe('GET /billing/subscription and /billing/entitlements', () => {
  test("without a subscription: the plan in force and status none", async () => {
    const tenant = await seedBillingTenant(h.admin, 'nosub');
    const answer = await request(h.app).get('/billing/subscription').set(bearer(h.token(tenant.users.owner, tenant.tenantId, 'owner'))).expect(200);
    expect(answer.body).toEqual({ plan: 'free', status: 'none', currentPeriodStart: null, currentPeriodEnd: null, trialEnd: null, cancelAtPeriodEnd: false, pastDueSince: null });
  });

  test('with one: its status, period, trial end, cancel at period end and past-due start', async () => {
    const tenant = await seedBillingTenant(h.admin, 'sub', { plan: paidPlan });
    await seedSubscription(h.admin, tenant.tenantId, { plan: paidPlan, status: 'past_due' });
    await h.admin.query(
      `UPDATE tenant_subscriptions SET current_period_start = '2026-11-01T00:00:00Z', current_period_end = '2026-12-01T00:00:00Z',
         trial_end = '2026-11-08T00:00:00Z', cancel_at_period_end = true, past_due_since = '2026-11-20T10:00:00Z' WHERE tenant_id = $1`,
      [tenant.tenantId],
    );
    const answer = await request(h.app).get('/billing/subscription').set(bearer(h.token(tenant.users.admin, tenant.tenantId, 'admin'))).expect(200);
    expect(answer.body).toEqual({
      plan: paidPlan,
      status: 'past_due',
      currentPeriodStart: '2026-11-01T00:00:00.000Z',
      currentPeriodEnd: '2026-12-01T00:00:00.000Z',
      trialEnd: '2026-11-08T00:00:00.000Z',
      cancelAtPeriodEnd: true,
      pastDueSince: '2026-11-20T10:00:00.000Z',
    });
  });

  test("entitlements: the plan's features with the tenant's overrides, limits with null for unlimited, the same as SQL says", async () => {
    const tenant = await seedBillingTenant(h.admin, 'ent', { plan: paidPlan });
    await h.admin.query(`UPDATE tenants SET feature_overrides = '{"sso": true, "api_keys": false}', max_storage_bytes = 5000000000000 WHERE id = $1`, [tenant.tenantId]);
    await h.admin.query('UPDATE plans SET max_api_requests_month = NULL WHERE id = $1', [paidPlan]);
    const answer = await request(h.app).get('/billing/entitlements').set(bearer(h.token(tenant.users.owner, tenant.tenantId, 'owner'))).expect(200);
    expect(answer.body).toEqual({
      plan: paidPlan,
      features: { api_keys: false, custom_domains: true, sso: true },
      limits: { users: 10, storageBytes: 5_000_000_000_000, apiRequestsMonth: null, rateLimitRps: 30 },
    });
    const { rows } = await h.admin.query<{ has: boolean }>("SELECT app.tenant_has_feature($1, 'sso') AS has", [tenant.tenantId]);
    expect(rows[0]!.has).toBe(true);
  });
});

describe('the return host', () => {
  test('the primary verified domain only while the plan has custom_domains; an unverified one never', async () => {
    const domain = `host-${hex(4)}.example.test`;
    const tenant = await seedBillingTenant(h.admin, 'host', { plan: 'starter', customDomain: domain });
    const host = () => withTenant(h.pool, { tenantId: tenant.tenantId }, (client) => tenantHost(client, tenant.tenantId, BASE_DOMAIN));
    expect(await host()).toBe(domain);
    await h.admin.query('UPDATE tenant_domains SET verified_at = NULL WHERE tenant_id = $1', [tenant.tenantId]);
    expect(await host()).toBe(`${tenant.slug}.${BASE_DOMAIN}`);
    expect(returnUrl('https://{host}/b?r={result}&again={result}', 'x.test', 'cancel')).toBe('https://x.test/b?r=cancel&again=cancel');
  });
});

describe('Stripe failures', () => {
  test('Stripe unreachable: 503 payment_provider_unavailable, no customer stored, and nothing of the key in the answer', async () => {
    const app = buildBillingApp({ ...h.deps, stripe: testStripe('http://127.0.0.1:1', { maxNetworkRetries: 0, timeoutMs: 2000 }) });
    const tenant = await seedBillingTenant(h.admin, 'down');
    const token = h.token(tenant.users.owner, tenant.tenantId, 'owner');
    const answer = await request(app).post('/billing/checkout').set(bearer(token)).send({ plan: paidPlan }).expect(503);
    expectError(answer.body, 'payment_provider_unavailable');
    expect(await storedCustomer(tenant.tenantId)).toBeNull();
    await h.admin.query('UPDATE tenants SET stripe_customer_id = $2 WHERE id = $1', [tenant.tenantId, `cus_${hex(8)}`]);
    const portal = await request(app).post('/billing/portal').set(bearer(token)).expect(503);
    expectError(portal.body, 'payment_provider_unavailable');
    for (const body of [answer.text, portal.text]) {
      expect(body).not.toContain(STRIPE_SECRET_KEY);
      expect(body).not.toContain(STRIPE_SECRET_KEY.slice(-4));
    }
  });

  test("a request Stripe refuses is answered in our words, never Stripe's; an unknown price points to plan sync", async () => {
    const log = pino({ level: 'silent' });
    const refused = new Stripe.errors.StripeAuthenticationError({ message: `Invalid API Key provided: sk_test_****${STRIPE_SECRET_KEY.slice(-4)}`, statusCode: 401, type: 'invalid_request_error' });
    const answer = stripeFailure(refused, log, 'test');
    expect(answer).toBeInstanceOf(HttpError);
    expect([answer.status, answer.code]).toEqual([502, 'payment_provider_error']);
    expect(answer.message).not.toContain(STRIPE_SECRET_KEY.slice(-4));
    const noPrice = stripeFailure(new Stripe.errors.StripeInvalidRequestError({ message: 'No such price', param: 'line_items[0][price]', code: 'resource_missing', statusCode: 400, type: 'invalid_request_error' }), log, 'test');
    expect([noPrice.status, noPrice.code]).toEqual([422, 'plan_not_available']);
    expect(noPrice.message).toContain('tenantry plan sync');
    const overloaded = stripeFailure(new Stripe.errors.StripeAPIError({ message: 'boom', statusCode: 500, type: 'api_error' }), log, 'test');
    expect([overloaded.status, overloaded.code]).toEqual([503, 'payment_provider_unavailable']);
    expect(() => stripeFailure(new Error('a bug'), log, 'test')).toThrow('a bug');
  });
});

describe('the service', () => {
  test('the OpenAPI document lists every route, and /healthz checks Postgres and Redis', async () => {
    const document = (await request(h.app).get('/billing/openapi.json').expect(200)).body as { paths: Record<string, Record<string, unknown>> };
    const routes = Object.entries(document.paths).flatMap(([path, methods]) => Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`));
    expect(routes.sort()).toEqual(
      [
        'POST /billing/checkout',
        'POST /billing/portal',
        'GET /billing/subscription',
        'GET /billing/entitlements',
        'GET /billing/usage',
        'POST /billing/webhooks/stripe',
        'GET /billing/openapi.json',
        'GET /healthz',
      ].sort(),
    );
    expect(document.paths['/billing/checkout']!.post).toMatchObject({ requestBody: { required: true } });
    expect((await request(h.app).get('/healthz').expect(200)).body).toEqual({ status: 'ok' });
  });

  test('bad input is a 4xx, and a database away is 503 on every route, never a 500', async () => {
    const tenant = await seedBillingTenant(h.admin, 'inputs');
    const token = h.token(tenant.users.owner, tenant.tenantId, 'owner');
    expectError((await request(h.app).post('/billing/checkout').set(bearer(token)).set('Content-Type', 'application/json').send('{"plan": ').expect(400)).body, 'bad_request');
    expectError((await request(h.app).post('/billing/checkout').set(bearer(token)).send({ plan: 'x'.repeat(100_000) }).expect(413)).body, 'payload_too_large');

    const unreachable = new URL(h.deps.pool.options.connectionString!);
    unreachable.port = '1';
    const pool = createServicePool({ connectionString: unreachable.toString(), applicationName: 'billing-test-down', logger: pino({ level: 'silent' }), connectionTimeoutMillis: 500 });
    const app = buildBillingApp({ ...h.deps, pool });
    try {
      for (const pending of [
        request(app).get('/billing/subscription').set(bearer(token)),
        request(app).get('/billing/entitlements').set(bearer(token)),
        request(app).post('/billing/checkout').set(bearer(token)).send({ plan: paidPlan }),
        request(app).post('/billing/portal').set(bearer(token)),
      ]) {
        expectError((await pending.expect(503)).body, 'unavailable');
      }
      expect((await request(app).get('/healthz').expect(503)).body.error.code).toBe('unavailable');
    } finally {
      await pool.end();
    }
  });
});
