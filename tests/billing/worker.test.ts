import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backoffSeconds } from '../../services/billing/src/worker/queue.js';
import {
  checkoutSessionObject,
  invoiceObject,
  startStripeMockAnswering,
  stripeEvent,
  stripeId,
  subscriptionObject,
  type RunningStripeMock,
  type SubscriptionFields,
} from './stripe-fixtures.js';
import {
  auditEntries,
  createBillingTenant,
  DAY_MS,
  eventRow,
  GRACE_DAYS,
  pricePlans,
  purgesFor,
  purgeStreamMark,
  startWorkerKit,
  store,
  tenantBillingState,
  type BillingTenantFixture,
  type PaidPlans,
  type WorkerKit,
} from './worker-kit.js';

let kit: WorkerKit;
let plans: PaidPlans;
/** Stripe's current state of every subscription, for the worker's reads: active on pro. */
let stripeMock: RunningStripeMock;
const periodStart = new Date(Date.now() - 5 * DAY_MS);
const periodEnd = new Date(Date.now() + 25 * DAY_MS);

beforeAll(async () => {
  kit = await startWorkerKit();
  plans = await pricePlans(kit.admin);
  stripeMock = await startStripeMockAnswering({
    subscription: await subscriptionObject({ id: 'sub_fixture', customer: 'cus_fixture', priceId: plans.pro.priceId, status: 'active', periodStart, periodEnd }),
  });
});

afterAll(async () => {
  await stripeMock?.stop();
  await kit?.close();
});

const at = (offsetSeconds: number): Date => new Date(Math.floor(periodStart.getTime() / 1000) * 1000 + offsetSeconds * 1000);

function subscriptionFor(tenant: BillingTenantFixture, subscriptionId: string, fields: Partial<SubscriptionFields> = {}) {
  return subscriptionObject({
    id: subscriptionId,
    customer: tenant.customerId,
    priceId: plans.starter.priceId,
    status: 'active',
    periodStart,
    periodEnd,
    metadata: { tenant_id: tenant.tenantId },
    ...fields,
  });
}

describe('the billing worker', () => {
  it('maps a subscription to its tenant by metadata, stores the customer, applies the plan, and purges the edge', async () => {
    const tenant = await createBillingTenant(kit.admin, 'map');
    const mark = await purgeStreamMark(kit.redis);
    const event = stripeEvent('customer.subscription.created', await subscriptionFor(tenant, stripeId('sub')), at(10));
    await store(kit, event);
    await kit.worker(stripeMock.stripe).drain();

    expect(await eventRow(kit.admin, event.id)).toMatchObject({ status: 'applied', attempts: 1 });
    const state = await tenantBillingState(kit.admin, tenant.tenantId);
    expect(state).toMatchObject({ plan: 'starter', status: 'active', subscription: { status: 'active', plan_id: 'starter' } });
    expect(state.entitlements).toMatchObject({ plan_id: 'starter', rate_limit_rps: 20 });
    const customer = await kit.admin.query('SELECT stripe_customer_id FROM tenants WHERE id = $1', [tenant.tenantId]);
    expect(customer.rows[0].stripe_customer_id).toBe(tenant.customerId);
    expect(await purgesFor(kit.redis, tenant.tenantId, mark)).toBeGreaterThanOrEqual(1);
    const planChange = (await auditEntries(kit.admin, tenant.tenantId, 'tenants')).find((entry) => entry.after?.plan_id === 'starter');
    expect(planChange?.reason).toContain(event.id);
    expect(planChange?.actor).toBe(`billing:${event.id}`);
  });

  it('ignores, with the reason, an event of no known tenant and a type it does not act on', async () => {
    const stranger = stripeEvent('customer.subscription.updated', await subscriptionObject({
      id: stripeId('sub'), customer: stripeId('cus'), priceId: plans.pro.priceId, status: 'active', periodStart, periodEnd,
    }), at(10));
    const other = stripeEvent('charge.succeeded', { object: 'charge', id: stripeId('ch'), customer: stripeId('cus') } as never, at(10));
    await store(kit, stranger);
    await store(kit, other);
    await kit.worker(stripeMock.stripe).drain();
    expect(await eventRow(kit.admin, stranger.id)).toMatchObject({ status: 'ignored', outcome: expect.stringMatching(/no tenant has customer cus_/) });
    expect(await eventRow(kit.admin, other.id)).toMatchObject({ status: 'ignored', outcome: expect.stringMatching(/charge\.succeeded is not an event billing acts on/) });
  });

  it('checkout.session.completed links the customer and applies the subscription it names, read from Stripe', async () => {
    const tenant = await createBillingTenant(kit.admin, 'checkout');
    const subscriptionId = stripeId('sub');
    const event = stripeEvent('checkout.session.completed', await checkoutSessionObject({ customer: tenant.customerId, subscription: subscriptionId, tenantId: tenant.tenantId }), at(5));
    await store(kit, event);
    await kit.worker(stripeMock.stripe).drain();
    expect(await eventRow(kit.admin, event.id)).toMatchObject({ status: 'applied', outcome: expect.stringContaining('read from Stripe') });
    const row = await kit.admin.query('SELECT stripe_subscription_id, stripe_customer_id, plan_id FROM tenant_subscriptions WHERE tenant_id = $1', [tenant.tenantId]);
    expect(row.rows[0]).toEqual({ stripe_subscription_id: subscriptionId, stripe_customer_id: tenant.customerId, plan_id: 'pro' });
  });

  it('never lets an older event overwrite a newer state, and resolves a tie in `created` with the state read from Stripe', async () => {
    const tenant = await createBillingTenant(kit.admin, 'order');
    const subscriptionId = stripeId('sub');
    const newer = stripeEvent('customer.subscription.updated', await subscriptionFor(tenant, subscriptionId, { status: 'active' }), at(100));
    const older = stripeEvent('customer.subscription.updated', await subscriptionFor(tenant, subscriptionId, { status: 'past_due' }), at(50));
    const worker = kit.worker(stripeMock.stripe);
    await store(kit, newer);
    await worker.drain();
    const entriesBefore = await auditEntries(kit.admin, tenant.tenantId, 'tenant_subscriptions');
    await store(kit, older);
    await worker.drain();
    expect(await eventRow(kit.admin, older.id)).toMatchObject({ status: 'ignored', outcome: expect.stringMatching(/^stale/) });
    expect((await tenantBillingState(kit.admin, tenant.tenantId)).subscription).toMatchObject({ status: 'active', plan_id: 'starter' });
    expect(await auditEntries(kit.admin, tenant.tenantId, 'tenant_subscriptions')).toHaveLength(entriesBefore.length);

    // Same second as the state applied: arrival order means nothing, Stripe's state (pro) wins
    // over the event's own object (past_due on starter).
    const tie = stripeEvent('customer.subscription.updated', await subscriptionFor(tenant, subscriptionId, { status: 'past_due' }), at(100));
    await store(kit, tie);
    await worker.drain();
    expect(await eventRow(kit.admin, tie.id)).toMatchObject({ status: 'applied', outcome: expect.stringContaining('same second') });
    const state = await tenantBillingState(kit.admin, tenant.tenantId);
    expect(state).toMatchObject({ plan: 'pro', subscription: { status: 'active', plan_id: 'pro', past_due_since: null } });
    const entries = await auditEntries(kit.admin, tenant.tenantId, 'tenant_subscriptions');
    expect(entries).toHaveLength(entriesBefore.length + 1);
  });

  it('two workers draining at once apply each event once', async () => {
    // Customers already stored (checkout came first): nothing but the customer's lock keeps
    // two workers from applying one tenant's events side by side.
    const tenants = await Promise.all(Array.from({ length: 12 }, (_, index) => createBillingTenant(kit.admin, `race${index}`, { customerStored: true })));
    const events = [];
    for (const tenant of tenants) {
      const subscriptionId = stripeId('sub');
      events.push(
        stripeEvent('customer.subscription.created', await subscriptionFor(tenant, subscriptionId, { status: 'active' }), at(10)),
        stripeEvent('customer.subscription.updated', await subscriptionFor(tenant, subscriptionId, { status: 'trialing' }), at(15)),
        stripeEvent('customer.subscription.updated', await subscriptionFor(tenant, subscriptionId, { priceId: plans.pro.priceId }), at(20)),
        stripeEvent('invoice.payment_failed', await invoiceObject({ customer: tenant.customerId, subscription: subscriptionId, status: 'open' }), at(30)),
      );
    }
    for (const event of events) expect(await store(kit, event)).toBe(true);
    // Delivered again: the inbox's primary key keeps one copy.
    for (const event of events) expect(await store(kit, event)).toBe(false);
    const mailsBefore = kit.mail.mails.length;
    const [first, second] = [kit.worker(stripeMock.stripe), kit.worker(stripeMock.stripe)];
    const handled = await Promise.all([first.drain(), second.drain()]);
    expect(handled[0] + handled[1]).toBe(events.length);
    // Each handled once and without error: applied, or ignored as stale when a newer event
    // of its customer happened to be applied first.
    for (const event of events) {
      const row = await eventRow(kit.admin, event.id);
      expect(row).toMatchObject({ attempts: 1, last_error: null });
      expect(row.status === 'applied' || (row.status === 'ignored' && row.outcome!.startsWith('stale'))).toBe(true);
    }
    for (const tenant of tenants) {
      expect(await tenantBillingState(kit.admin, tenant.tenantId)).toMatchObject({ plan: 'pro', subscription: { status: 'active', plan_id: 'pro' } });
      // Created, trialing, moved to pro: at most three entries whatever the interleaving (an
      // older event applied after a newer one is stale and writes none).
      const entries = await auditEntries(kit.admin, tenant.tenantId, 'tenant_subscriptions');
      expect(entries.length).toBeGreaterThanOrEqual(1);
      expect(entries.length).toBeLessThanOrEqual(3);
      expect(entries.at(-1)!.after).toMatchObject({ plan_id: 'pro' });
      expect(kit.mail.mails.slice(mailsBefore).filter((mail) => mail.to === tenant.ownerEmail.toLowerCase())).toHaveLength(1);
    }
  });

  it('retries a failing event with backoff, gives up after maxAttempts with the last error, and applies it once replayed after plan sync', async () => {
    const tenant = await createBillingTenant(kit.admin, 'unknown-price');
    const price = stripeId('price');
    const event = stripeEvent('customer.subscription.created', await subscriptionFor(tenant, stripeId('sub'), { priceId: price }), at(10));
    await store(kit, event);
    const worker = kit.worker(stripeMock.stripe, { maxAttempts: 3 });
    kit.clock.now = new Date();
    for (let attempt = 1; attempt <= 3; attempt += 1) {
      expect(await worker.drain()).toBe(1);
      // Not due again until the backoff has passed: a drain now handles nothing.
      expect(await worker.drain()).toBe(0);
      const row = await eventRow(kit.admin, event.id);
      expect(row).toMatchObject({ attempts: attempt, status: attempt < 3 ? 'pending' : 'failed' });
      expect(row.last_error).toMatch(new RegExp(`no plan has price ${price}.*plan sync`));
      const waited = (row.next_attempt_at.getTime() - kit.clock.now.getTime()) / 1000;
      expect(waited).toBeGreaterThanOrEqual(backoffSeconds(attempt) - 1);
      expect(waited).toBeLessThanOrEqual(backoffSeconds(attempt) + 5);
      kit.clock.now = new Date(row.next_attempt_at.getTime() + 1000);
    }
    expect(await worker.drain()).toBe(0);
    expect(await tenantBillingState(kit.admin, tenant.tenantId)).toMatchObject({ plan: 'free', subscription: null });

    await kit.admin.query("INSERT INTO plans (id, name, monthly_price_cents, rate_limit_rps, stripe_price_id) VALUES ($1, 'Team', 4900, 30, $2)", [
      `team-${price.slice(-6)}`,
      price,
    ]);
    await kit.admin.query("UPDATE stripe_events SET status = 'pending', next_attempt_at = now() WHERE id = $1", [event.id]);
    expect(await worker.drain()).toBe(1);
    expect(await eventRow(kit.admin, event.id)).toMatchObject({ status: 'applied', attempts: 4 });
    expect((await tenantBillingState(kit.admin, tenant.tenantId)).plan).toBe(`team-${price.slice(-6)}`);
    kit.clock.now = new Date();
  });

  it('past due for the grace period suspends (reason billing); a paid invoice reactivates; owners are mailed once per failed attempt', async () => {
    const tenant = await createBillingTenant(kit.admin, 'grace');
    const subscriptionId = stripeId('sub');
    const worker = kit.worker(stripeMock.stripe);
    const pastDueAt = at(1000);
    kit.clock.now = pastDueAt;
    await store(kit, stripeEvent('customer.subscription.created', await subscriptionFor(tenant, subscriptionId, { priceId: plans.pro.priceId }), at(10)));
    const failures = [
      stripeEvent('invoice.payment_failed', await invoiceObject({ customer: tenant.customerId, subscription: subscriptionId, status: 'open', attemptCount: 1 }), pastDueAt),
      stripeEvent('invoice.payment_failed', await invoiceObject({ customer: tenant.customerId, subscription: subscriptionId, status: 'open', attemptCount: 2 }), at(1000 + 3 * 86_400)),
    ];
    await store(kit, failures[0]!);
    await store(kit, stripeEvent('customer.subscription.updated', await subscriptionFor(tenant, subscriptionId, { priceId: plans.pro.priceId, status: 'past_due' }), pastDueAt));
    await worker.drain();
    await store(kit, failures[1]!);
    await store(kit, failures[1]!);
    await worker.drain();
    expect(kit.mail.mails.filter((mail) => mail.to === tenant.ownerEmail.toLowerCase() && /Payment failed/.test(mail.subject))).toHaveLength(2);

    const state = await tenantBillingState(kit.admin, tenant.tenantId);
    expect(state).toMatchObject({ plan: 'pro', status: 'active', subscription: { status: 'past_due' } });
    expect(state.subscription!.past_due_since).toEqual(pastDueAt);

    const graceOver = new Date(pastDueAt.getTime() + GRACE_DAYS * DAY_MS);
    await worker.tick(new Date(graceOver.getTime() - 1000));
    expect(await tenantBillingState(kit.admin, tenant.tenantId)).toMatchObject({ status: 'active' });
    const mark = await purgeStreamMark(kit.redis);
    await worker.tick(graceOver);
    expect(await tenantBillingState(kit.admin, tenant.tenantId)).toMatchObject({ status: 'suspended', suspensionReason: 'billing', plan: 'pro' });
    expect(await purgesFor(kit.redis, tenant.tenantId, mark)).toBe(1);
    const suspension = (await auditEntries(kit.admin, tenant.tenantId, 'tenants')).at(-1)!;
    expect(suspension.reason).toBe(`billing: past due since ${pastDueAt.toISOString()}`);
    // The clock again changes nothing more.
    const tenantEntries = (await auditEntries(kit.admin, tenant.tenantId, 'tenants')).length;
    await worker.tick(new Date(graceOver.getTime() + DAY_MS));
    expect(await auditEntries(kit.admin, tenant.tenantId, 'tenants')).toHaveLength(tenantEntries);

    // Paid: Stripe's subscription (the fixture) is active again, before its own event comes.
    kit.clock.now = new Date(graceOver.getTime() + 2 * DAY_MS);
    const paid = stripeEvent('invoice.paid', await invoiceObject({ customer: tenant.customerId, subscription: subscriptionId, status: 'paid' }), kit.clock.now);
    const reactivation = await purgeStreamMark(kit.redis);
    await store(kit, paid);
    await worker.drain();
    expect(await eventRow(kit.admin, paid.id)).toMatchObject({ status: 'applied', outcome: expect.stringContaining('read from Stripe') });
    expect(await tenantBillingState(kit.admin, tenant.tenantId)).toMatchObject({ status: 'active', suspensionReason: null, subscription: { status: 'active', past_due_since: null } });
    expect(await purgesFor(kit.redis, tenant.tenantId, reactivation)).toBe(1);
    kit.clock.now = new Date();
  });

  it('never lifts a suspension the platform imposed', async () => {
    const tenant = await createBillingTenant(kit.admin, 'platform');
    const subscriptionId = stripeId('sub');
    await kit.admin.query("UPDATE tenants SET status = 'suspended', suspension_reason = 'abuse' WHERE id = $1", [tenant.tenantId]);
    const worker = kit.worker(stripeMock.stripe);
    await store(kit, stripeEvent('customer.subscription.created', await subscriptionFor(tenant, subscriptionId, { status: 'past_due' }), at(10)));
    await worker.drain();
    await worker.tick(new Date(at(10).getTime() + (GRACE_DAYS + 1) * DAY_MS));
    await store(kit, stripeEvent('invoice.paid', await invoiceObject({ customer: tenant.customerId, subscription: subscriptionId, status: 'paid' }), at(20)));
    await store(kit, stripeEvent('customer.subscription.updated', await subscriptionFor(tenant, subscriptionId, { status: 'active' }), at(30)));
    await worker.drain();
    await worker.tick();
    expect(await tenantBillingState(kit.admin, tenant.tenantId)).toMatchObject({ status: 'suspended', suspensionReason: 'abuse', subscription: { status: 'active' } });
  });

  it('a subscription Stripe ended for non-payment gives back no paid period: the free plan at once, and the billing suspension ends with it', async () => {
    const tenant = await createBillingTenant(kit.admin, 'dunned');
    const subscriptionId = stripeId('sub');
    const worker = kit.worker(stripeMock.stripe);
    kit.clock.now = at(10);
    await store(kit, stripeEvent('customer.subscription.created', await subscriptionFor(tenant, subscriptionId, { priceId: plans.pro.priceId, status: 'past_due' }), at(10)));
    await worker.drain();
    await worker.tick(new Date(at(10).getTime() + (GRACE_DAYS + 1) * DAY_MS));
    expect(await tenantBillingState(kit.admin, tenant.tenantId)).toMatchObject({ plan: 'pro', status: 'suspended', suspensionReason: 'billing' });
    const ended = { priceId: plans.pro.priceId, status: 'canceled', canceledAt: at(20), cancellationReason: 'payment_failed' } as const;
    kit.clock.now = at(20);
    await store(kit, stripeEvent('customer.subscription.deleted', await subscriptionFor(tenant, subscriptionId, ended), at(20)));
    await worker.drain();
    // Long before the period's end: the unpaid period is not the tenant's.
    expect(at(20).getTime()).toBeLessThan(periodEnd.getTime());
    expect(await tenantBillingState(kit.admin, tenant.tenantId)).toMatchObject({ plan: 'free', status: 'active', suspensionReason: null, subscription: { status: 'canceled' } });
    kit.clock.now = new Date();
  });

  it('an event of another Stripe API version changes nothing and says why', async () => {
    const tenant = await createBillingTenant(kit.admin, 'version');
    const worker = kit.worker(stripeMock.stripe);
    const event = stripeEvent('customer.subscription.created', await subscriptionFor(tenant, stripeId('sub'), { priceId: plans.pro.priceId }), at(10));
    await store(kit, { ...event, api_version: '2024-06-20' });
    await worker.drain();
    const row = await eventRow(kit.admin, event.id);
    expect(row.status).toBe('pending');
    expect(row.last_error).toMatch(/API version 2024-06-20.*2026-08-26\.dahlia/);
    expect((await tenantBillingState(kit.admin, tenant.tenantId)).plan).not.toBe('pro');
  });

  it('a canceled subscription keeps its paid plan until the period ends, then the free plan; nothing is deleted', async () => {
    const tenant = await createBillingTenant(kit.admin, 'cancel');
    const subscriptionId = stripeId('sub');
    const worker = kit.worker(stripeMock.stripe);
    kit.clock.now = at(100);
    await store(kit, stripeEvent('customer.subscription.created', await subscriptionFor(tenant, subscriptionId, { priceId: plans.pro.priceId }), at(10)));
    await store(kit, stripeEvent('customer.subscription.deleted', await subscriptionFor(tenant, subscriptionId, { priceId: plans.pro.priceId, status: 'canceled', canceledAt: at(90) }), at(90)));
    await worker.drain();
    expect(await tenantBillingState(kit.admin, tenant.tenantId)).toMatchObject({ plan: 'pro', subscription: { status: 'canceled' } });
    await worker.tick(new Date(periodEnd.getTime() - 1000));
    expect((await tenantBillingState(kit.admin, tenant.tenantId)).plan).toBe('pro');
    const mark = await purgeStreamMark(kit.redis);
    await worker.tick(periodEnd);
    const after = await tenantBillingState(kit.admin, tenant.tenantId);
    expect(after).toMatchObject({ plan: 'free', status: 'active', subscription: { status: 'canceled', plan_id: 'pro' } });
    expect(after.entitlements).toMatchObject({ plan_id: 'free', max_users: 3 });
    expect(await purgesFor(kit.redis, tenant.tenantId, mark)).toBe(1);
    const members = await kit.admin.query('SELECT count(*)::int AS n FROM tenant_members WHERE tenant_id = $1', [tenant.tenantId]);
    expect(members.rows[0].n).toBe(1);
    kit.clock.now = new Date();
  });

  it('mails the owners when a trial is about to end and when a payment needs their action', async () => {
    const tenant = await createBillingTenant(kit.admin, 'notices');
    const subscriptionId = stripeId('sub');
    await store(kit, stripeEvent('customer.subscription.trial_will_end', await subscriptionFor(tenant, subscriptionId, { status: 'trialing', trialEnd: at(3 * 86_400) }), at(10)));
    await store(kit, stripeEvent('invoice.payment_action_required', await invoiceObject({ customer: tenant.customerId, subscription: subscriptionId, status: 'open' }), at(20)));
    await kit.worker(stripeMock.stripe).drain();
    const mails = kit.mail.mails.filter((mail) => mail.to === tenant.ownerEmail.toLowerCase());
    expect(mails.map((mail) => mail.subject).sort()).toEqual([`Confirm the payment for Tenant notices`, `The trial of Tenant notices ends soon`]);
    expect(mails.find((mail) => /Confirm/.test(mail.subject))!.text).toContain('https://invoice.stripe.com/i/in_');
  });

  it('started, it applies an event as soon as it is stored (LISTEN, not the poll), and stop() ends the loop', async () => {
    const tenant = await createBillingTenant(kit.admin, 'listen');
    const hour = 3_600_000;
    const worker = kit.worker(stripeMock.stripe, { pollIntervalMs: hour, tickIntervalMs: hour });
    kit.clock.now = new Date();
    await worker.start();
    try {
      const event = stripeEvent('customer.subscription.created', await subscriptionFor(tenant, stripeId('sub')), at(10));
      await store(kit, event);
      await expect.poll(async () => (await eventRow(kit.admin, event.id)).status, { timeout: 15_000, interval: 50 }).toBe('applied');
    } finally {
      await worker.stop();
    }
    const listeners = await kit.admin.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'tenantry-billing-listener' AND datname = current_database()");
    expect(listeners.rows[0].n).toBe(0);
  });
});
