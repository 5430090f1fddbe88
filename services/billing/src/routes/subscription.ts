import { z } from 'zod';
import { billingCaller, inCallerTenant } from '../access.js';
import { defineOperation } from '../http.js';

const SUBSCRIPTION_STATUSES = ['none', 'incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due', 'canceled', 'unpaid', 'paused'] as const;

const timestamp = z.iso.datetime().nullable();

export const subscriptionSchema = z.object({
  /** The plan in force (a manual plan has no subscription). */
  plan: z.string(),
  status: z.enum(SUBSCRIPTION_STATUSES),
  currentPeriodStart: timestamp,
  currentPeriodEnd: timestamp,
  trialEnd: timestamp,
  cancelAtPeriodEnd: z.boolean(),
  pastDueSince: timestamp,
});

interface SubscriptionRow {
  plan_id: string;
  status: (typeof SUBSCRIPTION_STATUSES)[number] | null;
  current_period_start: Date | null;
  current_period_end: Date | null;
  trial_end: Date | null;
  cancel_at_period_end: boolean | null;
  past_due_since: Date | null;
}

const iso = (value: Date | null) => value?.toISOString() ?? null;

export const getSubscription = defineOperation({
  method: 'get',
  path: '/billing/subscription',
  summary: "The tenant's plan and subscription (billing:read); status `none` without one. Reachable while suspended for billing",
  tag: 'billing',
  auth: 'token',
  responses: {
    200: { description: 'the plan in force and the subscription', schema: subscriptionSchema },
    403: { description: 'missing billing:read, or another tenant' },
  },
  async handler(context) {
    const caller = await billingCaller(context, 'read', { whileBillingSuspended: true });
    const row = await inCallerTenant(context.deps, caller, async (client) => {
      const { rows } = await client.query<SubscriptionRow>({
        name: 'billing-subscription',
        text: `SELECT t.plan_id, s.status, s.current_period_start, s.current_period_end, s.trial_end, s.cancel_at_period_end, s.past_due_since
               FROM tenants t LEFT JOIN tenant_subscriptions s ON s.tenant_id = t.id WHERE t.id = $1`,
        values: [caller.tenantId],
      });
      return rows[0]!;
    });
    return {
      body: {
        plan: row.plan_id,
        status: row.status ?? 'none',
        currentPeriodStart: iso(row.current_period_start),
        currentPeriodEnd: iso(row.current_period_end),
        trialEnd: iso(row.trial_end),
        cancelAtPeriodEnd: row.cancel_at_period_end ?? false,
        pastDueSince: iso(row.past_due_since),
      } satisfies z.infer<typeof subscriptionSchema>,
    };
  },
});
