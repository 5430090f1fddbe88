import type { PoolClient } from 'pg';
import type { BillingTenant } from './tenant.js';
import type { StoredSubscription, SubscriptionStatus } from './subscription.js';

const FREE_PLAN = 'free';
const DAY_MS = 86_400_000;

/** Statuses that pay for the subscription's plan now. */
const PAYING: readonly SubscriptionStatus[] = ['active', 'trialing', 'past_due'];
/** Statuses whose plan lasts until the period they paid for ends, then the free plan. */
const LAPSING: readonly SubscriptionStatus[] = ['canceled', 'unpaid', 'incomplete_expired', 'paused'];

export interface Effects {
  /** The plan the tenant should be on, or undefined to leave it. */
  planId?: string;
  suspend: boolean;
  why: string;
}

/**
 * What a subscription's state means for its tenant at `now`: a function of the state, the
 * clock and the tenant's plan (never of the order events came in), so events applied in any
 * order end in the same place.
 * - active, trialing, past_due: the subscription's plan;
 * - canceled, unpaid, incomplete_expired, paused: the subscription's plan until the period
 *   ends, then free (at once when Stripe canceled it for non-payment: that period was never
 *   paid) — and only from the subscription's own plan, so a plan set by hand later
 *   (`tenantry plan set`) is not taken back by an old subscription;
 * - past due (or unpaid) for the grace period: suspended (reason billing); otherwise a
 *   billing suspension is lifted (no other suspension ever is).
 */
export function effectsOf(subscription: StoredSubscription, tenant: BillingTenant, now: Date, graceDays: number): Effects {
  let planId: string | undefined;
  let why = `subscription ${subscription.stripe_subscription_id} is ${subscription.status}`;
  if (PAYING.includes(subscription.status)) {
    planId = subscription.plan_id;
  } else if (LAPSING.includes(subscription.status)) {
    // Ended by Stripe for non-payment, the period was never paid for: nothing of it is owed.
    const unpaidEnd = subscription.cancellation_reason === 'payment_failed';
    const periodOver = unpaidEnd || !subscription.current_period_end || now >= subscription.current_period_end;
    if (!periodOver) planId = subscription.plan_id;
    else if (tenant.planId === subscription.plan_id) {
      planId = FREE_PLAN;
      why += `, its period ended ${subscription.current_period_end?.toISOString() ?? '(none)'}`;
    }
  }
  const pastDueSince = subscription.past_due_since;
  const suspend =
    (subscription.status === 'past_due' || subscription.status === 'unpaid') &&
    pastDueSince !== null &&
    now.getTime() >= pastDueSince.getTime() + graceDays * DAY_MS;
  if (suspend) why = `billing: past due since ${pastDueSince.toISOString()}`;
  return { planId, suspend, why };
}

/** Applies the effects through the billing definers; true when the tenant's plan or status changed. */
export async function applyEffects(client: PoolClient, tenant: BillingTenant, effects: Effects, cause: string): Promise<boolean> {
  let changed = false;
  if (effects.planId !== undefined && effects.planId !== tenant.planId) {
    const { rows } = await client.query<{ changed: boolean }>('SELECT app.billing_set_plan($1, $2, $3) AS changed', [
      tenant.id,
      effects.planId,
      `${cause}: ${effects.why}`,
    ]);
    changed ||= rows[0]?.changed === true;
  }
  const suspendedForBilling = tenant.status === 'suspended' && tenant.suspensionReason === 'billing';
  if (effects.suspend ? tenant.status === 'active' : suspendedForBilling) {
    const { rows } = await client.query<{ changed: boolean }>('SELECT app.billing_set_suspended($1, $2, $3) AS changed', [
      tenant.id,
      effects.suspend,
      effects.suspend ? effects.why : `${cause}: ${effects.why}`,
    ]);
    changed ||= rows[0]?.changed === true;
  }
  return changed;
}
