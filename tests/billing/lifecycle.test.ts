import fc from 'fast-check';
import type Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StartableBillingWorker } from '../../services/billing/src/worker/index.js';
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
  pricePlans,
  startWorkerKit,
  store,
  tenantBillingState,
  type AuditEntry,
  type BillingTenantFixture,
  type PaidPlans,
  type TenantBillingState,
  type WorkerKit,
} from './worker-kit.js';

/**
 * Issue 15's lifecycle: checkout completed → subscription created → invoice paid → updated
 * to another plan → payment failed → past due → grace over → paid → canceled. All of it
 * happened at Stripe already (it starts 70 days ago), so Stripe's current state — what the
 * worker reads on a tie or a paid invoice — is the canceled subscription; stripe-mock
 * answers exactly that.
 */
const BASE = new Date(Math.floor((Date.now() - 70 * DAY_MS) / 1000) * 1000);
const at = (days: number, seconds = 0): Date => new Date(BASE.getTime() + days * DAY_MS + seconds * 1000);
const FIRST_PERIOD = { periodStart: at(0), periodEnd: at(30) };
const SECOND_PERIOD = { periodStart: at(30), periodEnd: at(60) };
const CANCELED_AT = at(50);
/** After the cancellation, before the period it paid for ends; and after. */
const BEFORE_PERIOD_END = at(55);
const AFTER_PERIOD_END = at(61);

let kit: WorkerKit;
let plans: PaidPlans;
let stripeNow: RunningStripeMock;
let worker: StartableBillingWorker;

const canceledFields = (): Omit<SubscriptionFields, 'id' | 'customer' | 'metadata'> => ({
  priceId: plans.pro.priceId,
  status: 'canceled',
  ...SECOND_PERIOD,
  cancelAtPeriodEnd: true,
  canceledAt: CANCELED_AT,
});

beforeAll(async () => {
  kit = await startWorkerKit();
  plans = await pricePlans(kit.admin);
  stripeNow = await startStripeMockAnswering({
    subscription: await subscriptionObject({ id: 'sub_fixture', customer: 'cus_fixture', ...canceledFields() }),
  });
  worker = kit.worker(stripeNow.stripe);
});

afterAll(async () => {
  await stripeNow?.stop();
  await kit?.close();
});

interface Lifecycle {
  tenant: BillingTenantFixture;
  events: Stripe.Event[];
}

/** The thirteen events Stripe sends for one tenant's lifecycle, oldest first. */
async function lifecycle(label: string): Promise<Lifecycle> {
  const tenant = await createBillingTenant(kit.admin, label);
  const subscriptionId = stripeId('sub');
  const metadata = { tenant_id: tenant.tenantId };
  const subscription = (fields: Omit<SubscriptionFields, 'id' | 'customer' | 'metadata'>) =>
    subscriptionObject({ id: subscriptionId, customer: tenant.customerId, metadata, ...fields });
  const invoice = (id: string, status: Stripe.Invoice.Status, attemptCount = 1) =>
    invoiceObject({ id, customer: tenant.customerId, subscription: subscriptionId, status, attemptCount, subscriptionMetadata: metadata });
  const [first, proration, renewal] = [stripeId('in'), stripeId('in'), stripeId('in')];
  const events = [
    stripeEvent('checkout.session.completed', await checkoutSessionObject({ customer: tenant.customerId, subscription: subscriptionId, tenantId: tenant.tenantId }), at(0, 9)),
    stripeEvent('customer.subscription.created', await subscription({ priceId: plans.starter.priceId, status: 'active', ...FIRST_PERIOD }), at(0, 10)),
    stripeEvent('invoice.paid', await invoice(first, 'paid'), at(0, 11)),
    stripeEvent('customer.subscription.updated', await subscription({ priceId: plans.pro.priceId, status: 'active', ...FIRST_PERIOD }), at(2)),
    stripeEvent('invoice.paid', await invoice(proration, 'paid'), at(2)),
    stripeEvent('invoice.payment_failed', await invoice(renewal, 'open', 1), at(30, 60)),
    stripeEvent('customer.subscription.updated', await subscription({ priceId: plans.pro.priceId, status: 'past_due', ...SECOND_PERIOD }), at(30, 60)),
    stripeEvent('invoice.payment_failed', await invoice(renewal, 'open', 2), at(33)),
    stripeEvent('invoice.paid', await invoice(renewal, 'paid', 3), at(39)),
    stripeEvent('customer.subscription.updated', await subscription({ priceId: plans.pro.priceId, status: 'active', ...SECOND_PERIOD }), at(39)),
    stripeEvent('customer.subscription.updated', await subscription({ priceId: plans.pro.priceId, status: 'active', ...SECOND_PERIOD, cancelAtPeriodEnd: true }), at(45)),
    // Stripe sends these two in the same second: `created` cannot order them, Stripe's
    // current state (canceled) must win whichever arrives last.
    stripeEvent('customer.subscription.updated', await subscription({ priceId: plans.pro.priceId, status: 'active', ...SECOND_PERIOD, cancelAtPeriodEnd: true, canceledAt: CANCELED_AT }), at(50)),
    stripeEvent('customer.subscription.deleted', await subscription(canceledFields()), at(50)),
  ];
  return { tenant, events };
}

/** What billing decided, without what differs by construction from one tenant to the next. */
async function finalState(tenantId: string): Promise<{ beforePeriodEnd: TenantBillingState; afterPeriodEnd: TenantBillingState }> {
  await worker.tick(BEFORE_PERIOD_END);
  const beforePeriodEnd = await tenantBillingState(kit.admin, tenantId);
  await worker.tick(AFTER_PERIOD_END);
  const afterPeriodEnd = await tenantBillingState(kit.admin, tenantId);
  return { beforePeriodEnd, afterPeriodEnd };
}

const STATE_IGNORED = ['updated_at', 'stripe_event_at'];
const state = (row: Record<string, unknown> | null) =>
  row && Object.fromEntries(Object.entries(row).filter(([column]) => !STATE_IGNORED.includes(column)));

/**
 * One audit entry per change of state: every entry changes something, each starts where
 * the previous one ended (no change went unrecorded), and the subscription's entries are
 * exactly the events whose outcome says they changed it.
 */
async function expectOneEntryPerChange({ tenant, events }: Lifecycle): Promise<void> {
  const outcomes = await Promise.all(events.map((event) => eventRow(kit.admin, event.id)));
  expect(outcomes.every((row) => row.status === 'applied' || row.status === 'ignored')).toBe(true);
  const subscriptionEntries = await auditEntries(kit.admin, tenant.tenantId, 'tenant_subscriptions');
  expect(subscriptionEntries).toHaveLength(outcomes.filter((row) => row.outcome?.startsWith('changed')).length);
  for (const entries of [subscriptionEntries, await auditEntries(kit.admin, tenant.tenantId, 'tenants')]) {
    const changes = entries.filter((entry: AuditEntry) => entry.action.endsWith('.update'));
    for (const entry of changes) expect(state(entry.before)).not.toEqual(state(entry.after));
    for (let index = 1; index < entries.length; index += 1) {
      if (entries[index]!.before) expect(state(entries[index]!.before)).toEqual(state(entries[index - 1]!.after));
    }
  }
}

/** Delivering every event again changes nothing: the inbox keeps one copy, the worker has nothing to do. */
async function expectRedeliveryChangesNothing({ tenant, events }: Lifecycle): Promise<void> {
  const before = [...(await auditEntries(kit.admin, tenant.tenantId, 'tenants')), ...(await auditEntries(kit.admin, tenant.tenantId, 'tenant_subscriptions'))];
  for (const event of events) expect(await store(kit, event)).toBe(false);
  expect(await worker.drain()).toBe(0);
  const after = [...(await auditEntries(kit.admin, tenant.tenantId, 'tenants')), ...(await auditEntries(kit.admin, tenant.tenantId, 'tenant_subscriptions'))];
  expect(after).toHaveLength(before.length);
}

const paymentFailedMails = (run: Lifecycle) =>
  kit.mail.mails.filter((mail) => mail.to === run.tenant.ownerEmail.toLowerCase() && /Payment failed/.test(mail.subject)).length;

let inOrder: Awaited<ReturnType<typeof finalState>>;

describe('the billing lifecycle', () => {
  it('delivered in order once: suspended when the grace is over, reactivated when paid, the paid plan until the canceled period ends', async () => {
    const run = await lifecycle('inorder');
    for (const [index, event] of run.events.entries()) {
      kit.clock.now = new Date(event.created * 1000);
      await store(kit, event);
      expect(await worker.drain()).toBe(1);
      if (index === 7) {
        // Past due since the renewal failed; the grace (7 days) is over on day 37.
        expect(await tenantBillingState(kit.admin, run.tenant.tenantId)).toMatchObject({ status: 'active', plan: 'pro', subscription: { status: 'past_due' } });
        await worker.tick(at(38));
        expect(await tenantBillingState(kit.admin, run.tenant.tenantId)).toMatchObject({ status: 'suspended', suspensionReason: 'billing', plan: 'pro' });
      }
      if (index === 8) expect(await tenantBillingState(kit.admin, run.tenant.tenantId)).toMatchObject({ status: 'active', suspensionReason: null });
    }
    inOrder = await finalState(run.tenant.tenantId);
    expect(inOrder.beforePeriodEnd).toMatchObject({ plan: 'pro', status: 'active', subscription: { status: 'canceled', plan_id: 'pro', past_due_since: null } });
    expect(inOrder.afterPeriodEnd).toMatchObject({ plan: 'free', status: 'active', subscription: { status: 'canceled', plan_id: 'pro' } });
    expect(inOrder.afterPeriodEnd.entitlements).toMatchObject({ plan_id: 'free', rate_limit_rps: 5 });
    const tenantEntries = await auditEntries(kit.admin, run.tenant.tenantId, 'tenants');
    expect(tenantEntries.map((entry) => [entry.after?.plan_id, entry.after?.status])).toContainEqual(['pro', 'suspended']);
    expect(tenantEntries.at(-1)!.after).toMatchObject({ plan_id: 'free', status: 'active' });
    expect(paymentFailedMails(run)).toBe(2);
    await expectOneEntryPerChange(run);
    await expectRedeliveryChangesNothing(run);
  });

  it('delivered three times each in any order, with the worker draining at any point, ends in the same state', async () => {
    expect(inOrder).toBeDefined();
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 39, maxLength: 39 }),
        fc.array(fc.boolean(), { minLength: 39, maxLength: 39 }),
        async (sortKeys, drainAfter) => {
          runs += 1;
          const run = await lifecycle(`random${runs}`);
          const deliveries = [...run.events, ...run.events, ...run.events]
            .map((event, index) => ({ event, key: sortKeys[index]! }))
            .sort((a, b) => a.key - b.key)
            .map(({ event }) => event);
          kit.clock.now = BEFORE_PERIOD_END;
          for (const [index, event] of deliveries.entries()) {
            await store(kit, event);
            if (drainAfter[index]) await worker.drain();
          }
          await worker.drain();
          const reached = await finalState(run.tenant.tenantId);
          expect(reached).toEqual(inOrder);
          expect(paymentFailedMails(run)).toBe(2);
          await expectOneEntryPerChange(run);
          await expectRedeliveryChangesNothing(run);
        },
      ),
      { numRuns: 4 },
    );
  });
});
