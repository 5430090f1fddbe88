import type { PoolClient } from 'pg';
import type Stripe from 'stripe';
import { fromStripeTime } from '../../../shared/src/stripe.js';

export const SUBSCRIPTION_STATUSES = ['incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due', 'canceled', 'unpaid', 'paused'] as const;
export type SubscriptionStatus = (typeof SUBSCRIPTION_STATUSES)[number];
const isSubscriptionStatus = (status: string): status is SubscriptionStatus => (SUBSCRIPTION_STATUSES as readonly string[]).includes(status);

/** The columns of tenant_subscriptions that mirror Stripe (the state an audit entry is about). */
export interface SubscriptionState {
  plan_id: string;
  status: SubscriptionStatus;
  stripe_customer_id: string;
  stripe_subscription_id: string;
  stripe_price_id: string | null;
  current_period_start: Date | null;
  current_period_end: Date | null;
  cancel_at_period_end: boolean;
  canceled_at: Date | null;
  trial_end: Date | null;
  past_due_since: Date | null;
  /** Stripe's cancellation_details.reason: `payment_failed` when Stripe ended it for non-payment. */
  cancellation_reason: string | null;
}
const STATE_COLUMNS = [
  'plan_id', 'status', 'stripe_customer_id', 'stripe_subscription_id', 'stripe_price_id', 'current_period_start',
  'current_period_end', 'cancel_at_period_end', 'canceled_at', 'trial_end', 'past_due_since', 'cancellation_reason',
] as const satisfies readonly (keyof SubscriptionState)[];

export interface StoredSubscription extends SubscriptionState {
  stripe_event_at: Date | null;
}

/** A subscription that can no longer come back: a new one may take its place. */
const ENDED: readonly SubscriptionStatus[] = ['canceled', 'incomplete_expired'];
const PAST_DUE: readonly SubscriptionStatus[] = ['past_due', 'unpaid'];

/** The plan a Stripe price pays for could not be found: retried, `tenantry plan sync` may come later. */
export class UnknownPlanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnknownPlanError';
  }
}


export async function readSubscription(client: PoolClient, tenantId: string): Promise<StoredSubscription | null> {
  const { rows } = await client.query<StoredSubscription>(
    `SELECT ${STATE_COLUMNS.join(', ')}, stripe_event_at FROM tenant_subscriptions WHERE tenant_id = $1 FOR UPDATE`,
    [tenantId],
  );
  return rows[0] ?? null;
}

/**
 * The plan a subscription pays for: the plan whose monthly price one of its items has
 * (items of a metered price sit beside it), else the plan its metadata names.
 */
async function planOf(client: PoolClient, subscription: Stripe.Subscription): Promise<{ planId: string; item: Stripe.SubscriptionItem | undefined }> {
  const items = subscription.items?.data ?? [];
  const priceIds = items.map((item) => item.price.id);
  const byPrice = await client.query<{ id: string; stripe_price_id: string }>(
    'SELECT id, stripe_price_id FROM plans WHERE stripe_price_id = ANY($1::text[])',
    [priceIds],
  );
  const match = byPrice.rows[0];
  if (match) return { planId: match.id, item: items.find((item) => item.price.id === match.stripe_price_id) };
  const named = subscription.metadata?.plan_id;
  if (named) {
    const exists = await client.query('SELECT 1 FROM plans WHERE id = $1', [named]);
    if (exists.rowCount === 1) return { planId: named, item: items[0] };
  }
  throw new UnknownPlanError(
    `subscription ${subscription.id}: no plan has price ${priceIds.join(', ') || '(none)'}` +
      `${named ? ` and metadata.plan_id "${named}" is no plan` : ' and it names no metadata.plan_id'} (run \`tenantry plan sync\`)`,
  );
}

/**
 * The row a Stripe subscription means. The billing period lives on the items in this API
 * version: the paying item's. `observedAt` starts the grace period when it becomes past due.
 */
export async function stateOf(
  client: PoolClient,
  subscription: Stripe.Subscription,
  customerId: string,
  current: StoredSubscription | null,
  observedAt: Date,
  forceStatus?: SubscriptionStatus,
): Promise<SubscriptionState> {
  const { planId, item } = await planOf(client, subscription);
  const status = forceStatus ?? subscription.status;
  if (!isSubscriptionStatus(status)) throw new Error(`subscription ${subscription.id} has an unknown status "${status}"`);
  const wasPastDue = current !== null && current.stripe_subscription_id === subscription.id && PAST_DUE.includes(current.status);
  return {
    plan_id: planId,
    status,
    // The event's customer: the tenant's, and the lock the event was applied under.
    stripe_customer_id: customerId,
    stripe_subscription_id: subscription.id,
    stripe_price_id: item?.price.id ?? null,
    current_period_start: fromStripeTime(item?.current_period_start),
    current_period_end: fromStripeTime(item?.current_period_end),
    cancel_at_period_end: subscription.cancel_at_period_end,
    canceled_at: fromStripeTime(subscription.canceled_at),
    trial_end: fromStripeTime(subscription.trial_end),
    past_due_since: PAST_DUE.includes(status) ? (wasPastDue && current.past_due_since ? current.past_due_since : observedAt) : null,
    cancellation_reason: subscription.cancellation_details?.reason ?? null,
  };
}

/** An ended subscription's late event must not replace the tenant's live one. */
export function supersededBy(current: StoredSubscription | null, subscriptionId: string, incomingStatus: string): string | null {
  if (!current || current.stripe_subscription_id === subscriptionId) return null;
  if (ENDED.includes(incomingStatus as SubscriptionStatus) && !ENDED.includes(current.status)) {
    return `subscription ${subscriptionId} ended; the tenant's current subscription is ${current.stripe_subscription_id}`;
  }
  return null;
}

const sameValue = (a: unknown, b: unknown): boolean =>
  a instanceof Date || b instanceof Date ? (a as Date | null)?.getTime() === (b as Date | null)?.getTime() : a === b;

/**
 * Writes the state when something differs, and moves the watermark when it is newer: a
 * write of only stripe_event_at is no audit entry. True when the state changed.
 */
export async function writeSubscription(
  client: PoolClient,
  tenantId: string,
  current: StoredSubscription | null,
  next: SubscriptionState,
  eventAt: Date,
): Promise<boolean> {
  const watermark = current?.stripe_event_at && current.stripe_event_at > eventAt ? current.stripe_event_at : eventAt;
  const values = STATE_COLUMNS.map((column) => next[column]);
  if (!current) {
    await client.query(
      `INSERT INTO tenant_subscriptions (tenant_id, ${STATE_COLUMNS.join(', ')}, stripe_event_at)
       VALUES ($1, ${STATE_COLUMNS.map((_, index) => `$${index + 2}`).join(', ')}, $${STATE_COLUMNS.length + 2})`,
      [tenantId, ...values, watermark],
    );
    return true;
  }
  const changed = STATE_COLUMNS.some((column) => !sameValue(current[column], next[column]));
  if (changed) {
    await client.query(
      `UPDATE tenant_subscriptions SET ${STATE_COLUMNS.map((column, index) => `${column} = $${index + 2}`).join(', ')},
              stripe_event_at = $${STATE_COLUMNS.length + 2}
       WHERE tenant_id = $1`,
      [tenantId, ...values, watermark],
    );
  } else if (!sameValue(current.stripe_event_at, watermark)) {
    await client.query('UPDATE tenant_subscriptions SET stripe_event_at = $2 WHERE tenant_id = $1', [tenantId, watermark]);
  }
  return changed;
}
