import type { PoolClient } from 'pg';
import type Stripe from 'stripe';
import type { Mailer } from '../../../shared/src/mail/mailer.js';
import { paymentActionRequiredMail, paymentFailedMail, trialWillEndMail, type InvoiceNotice } from '../../../shared/src/mail/templates.js';
import { applyEffects, effectsOf } from './effects.js';
import type { ClaimedEvent, EventOutcome } from './queue.js';
import { readSubscription, stateOf, supersededBy, writeSubscription, type SubscriptionStatus } from './subscription.js';
import { enterTenant, mailOwners, tenantOfCustomer, type BillingTenant } from './tenant.js';
import { fromStripeTime, STRIPE_API_VERSION, stripeRefId } from '../../../shared/src/stripe.js';

export interface ApplyContext {
  client: PoolClient;
  stripe: Stripe;
  mailer: Mailer;
  graceDays: number;
  now: Date;
}

export interface Applied {
  outcome: EventOutcome;
  /** The tenant whose plan or status changed: the edge is told after the commit. */
  changedTenant?: string;
}

const ignored = (outcome: string): Applied => ({ outcome: { status: 'ignored', outcome } });

/** The events that carry a subscription's state, and the status an event implies whatever its object says. */
const SUBSCRIPTION_EVENTS = new Map<string, SubscriptionStatus | undefined>([
  ['customer.subscription.created', undefined],
  ['customer.subscription.updated', undefined],
  ['customer.subscription.paused', undefined],
  ['customer.subscription.resumed', undefined],
  // Stripe's object says canceled too; the event's meaning is what counts.
  ['customer.subscription.deleted', 'canceled'],
]);
const INVOICE_EVENTS = new Set(['invoice.paid', 'invoice.payment_failed', 'invoice.payment_action_required']);

const invoiceSubscription = (invoice: Stripe.Invoice): string | null => stripeRefId(invoice.parent?.subscription_details?.subscription);

/** Whose event it is: the customer, and the tenant the object names for a customer not yet known. */
function parties(event: Stripe.Event): { customerId: string | null; namedTenantId: string | null } | null {
  const object = event.data.object as unknown;
  if (event.type === 'checkout.session.completed') {
    const session = object as Stripe.Checkout.Session;
    return { customerId: stripeRefId(session.customer), namedTenantId: session.client_reference_id ?? session.metadata?.tenant_id ?? null };
  }
  if (SUBSCRIPTION_EVENTS.has(event.type) || event.type === 'customer.subscription.trial_will_end') {
    const subscription = object as Stripe.Subscription;
    return { customerId: stripeRefId(subscription.customer), namedTenantId: subscription.metadata?.tenant_id ?? null };
  }
  if (INVOICE_EVENTS.has(event.type)) {
    const invoice = object as Stripe.Invoice;
    return { customerId: stripeRefId(invoice.customer), namedTenantId: invoice.parent?.subscription_details?.metadata?.tenant_id ?? null };
  }
  return null;
}

/**
 * Applies one stored event inside the caller's transaction (the event's status is written
 * in the same one). Throws to retry it later.
 */
export async function applyEvent(context: ApplyContext, claimed: ClaimedEvent): Promise<Applied> {
  const event = claimed.payload as Stripe.Event;
  const who = parties(event);
  if (!who) return ignored(`${event.type} is not an event billing acts on`);
  // Another version shapes objects otherwise (dahlia keeps the period on the items): read
  // with ours, a cancellation could end a paid period at once. Retried, then failed, so
  // `tenantry billing events --failed` shows it while the endpoint's version is fixed.
  if (event.api_version && event.api_version !== STRIPE_API_VERSION) {
    throw new Error(`the event is of Stripe API version ${event.api_version}, not ${STRIPE_API_VERSION}: create the webhook endpoint with ${STRIPE_API_VERSION}`);
  }
  const lookup = await tenantOfCustomer(context.client, who.customerId, who.namedTenantId);
  if ('ignored' in lookup) return ignored(lookup.ignored);
  const tenant = await enterTenant(context.client, lookup.tenantId, `billing:${claimed.id}`, `stripe ${event.type} ${claimed.id}`);
  if (!tenant) return ignored(`tenant ${lookup.tenantId} does not exist`);
  if (tenant.status === 'deleted') return ignored(`tenant ${tenant.id} is deleted`);
  const customerId = who.customerId!;
  const object = event.data.object as unknown;

  if (event.type === 'checkout.session.completed') {
    const subscriptionId = stripeRefId((object as Stripe.Checkout.Session).subscription);
    if (!subscriptionId) return { outcome: { status: 'applied', outcome: `customer ${customerId} linked to tenant ${tenant.id}` } };
    return applySubscription(context, claimed, tenant, customerId, { retrieve: subscriptionId });
  }
  if (SUBSCRIPTION_EVENTS.has(event.type)) {
    return applySubscription(context, claimed, tenant, customerId, { object: object as Stripe.Subscription }, SUBSCRIPTION_EVENTS.get(event.type));
  }
  if (event.type === 'customer.subscription.trial_will_end') {
    const mailed = await mailOwners(context.client, context.mailer, tenant.id, trialWillEndMail(tenant.name, fromStripeTime((object as Stripe.Subscription).trial_end)));
    return { outcome: { status: 'applied', outcome: `trial ends: mailed ${mailed} owner(s)` } };
  }
  const invoice = object as Stripe.Invoice;
  const notice: InvoiceNotice = { amountDue: invoice.amount_due, currency: invoice.currency, invoiceUrl: invoice.hosted_invoice_url ?? null };
  if (event.type === 'invoice.paid') {
    const subscriptionId = invoiceSubscription(invoice);
    if (tenant.status !== 'suspended' || tenant.suspensionReason !== 'billing') return ignored(`invoice ${invoice.id} paid; tenant ${tenant.id} is not suspended for billing`);
    if (!subscriptionId) return ignored(`invoice ${invoice.id} paid belongs to no subscription`);
    // The subscription's own event may come later: its state now decides the suspension.
    return applySubscription(context, claimed, tenant, customerId, { retrieve: subscriptionId });
  }
  if (event.type === 'invoice.payment_failed') {
    const mail = paymentFailedMail(tenant.name, { ...notice, nextAttempt: fromStripeTime(invoice.next_payment_attempt), graceDays: context.graceDays });
    const mailed = await mailOwners(context.client, context.mailer, tenant.id, mail);
    return { outcome: { status: 'applied', outcome: `payment of invoice ${invoice.id} failed (attempt ${invoice.attempt_count}): mailed ${mailed} owner(s)` } };
  }
  const mailed = await mailOwners(context.client, context.mailer, tenant.id, paymentActionRequiredMail(tenant.name, notice));
  return { outcome: { status: 'applied', outcome: `invoice ${invoice.id} needs the customer's action: mailed ${mailed} owner(s)` } };
}

/**
 * A subscription's state, ordered by the events' `created` (the watermark): an older event
 * changes nothing; one of the same second as the state applied cannot be ordered by its
 * timestamp, so Stripe's current state is read and applied instead; a newer one applies
 * its own object (or, when it carries none, the state read from Stripe).
 */
async function applySubscription(
  context: ApplyContext,
  claimed: ClaimedEvent,
  tenant: BillingTenant,
  customerId: string,
  source: { object: Stripe.Subscription } | { retrieve: string },
  forceStatus?: SubscriptionStatus,
): Promise<Applied> {
  const { client } = context;
  const current = await readSubscription(client, tenant.id);
  const watermark = current?.stripe_event_at ?? null;
  if (watermark && claimed.createdAt < watermark) {
    return ignored(`stale: created ${claimed.createdAt.toISOString()}, older than the state applied (${watermark.toISOString()})`);
  }
  const tie = watermark !== null && claimed.createdAt.getTime() === watermark.getTime();
  const subscriptionId = 'object' in source ? source.object.id : source.retrieve;
  let subscription: Stripe.Subscription;
  let readFromStripe = false;
  if ('object' in source && !tie) {
    subscription = source.object;
  } else {
    subscription = await context.stripe.subscriptions.retrieve(subscriptionId);
    if (subscription.id !== subscriptionId) throw new Error(`Stripe answered subscription ${subscription.id} for ${subscriptionId}`);
    readFromStripe = true;
  }
  const status = readFromStripe ? subscription.status : (forceStatus ?? subscription.status);
  const superseded = supersededBy(current, subscription.id, status);
  if (superseded) return ignored(superseded);

  const next = await stateOf(client, subscription, customerId, current, claimed.createdAt, readFromStripe ? undefined : forceStatus);
  const changed = await writeSubscription(client, tenant.id, current, next, claimed.createdAt);
  const stored = { ...next, stripe_event_at: watermark && watermark > claimed.createdAt ? watermark : claimed.createdAt };
  const effects = effectsOf(stored, tenant, context.now, context.graceDays);
  const tenantChanged = await applyEffects(client, tenant, effects, `stripe ${(claimed.payload as Stripe.Event).type} ${claimed.id}`);
  const how = readFromStripe ? (tie ? ' (same second as the state applied: read from Stripe)' : ' (read from Stripe)') : '';
  return {
    outcome: {
      status: 'applied',
      outcome: `${changed ? 'changed' : 'unchanged'}: subscription ${next.stripe_subscription_id} ${next.status} on plan ${next.plan_id}${how}` +
        (tenantChanged ? `; tenant: ${effects.why}` : ''),
    },
    ...((changed || tenantChanged) && { changedTenant: tenant.id }),
  };
}
