import { z } from 'zod';
import { fail } from '../../../shared/src/errors/catalog.js';
import { billingCaller, inCallerTenant } from '../access.js';
import { ensureCustomer } from '../customers.js';
import { defineOperation } from '../http.js';
import { returnUrl, tenantHost } from '../return-urls.js';
import { callStripe } from '../stripe-failures.js';

interface PlanRow {
  id: string;
  is_public: boolean;
  monthly_price_cents: number;
  stripe_price_id: string | null;
  stripe_metered_price_id: string | null;
}

/** Subscription states after which a tenant may subscribe again. */
const ENDED_STATUSES = new Set(['canceled', 'incomplete_expired']);

export const checkout = defineOperation({
  method: 'post',
  path: '/billing/checkout',
  summary: "Start a Checkout Session for a paid plan (billing:write); the customer returns to the tenant's own host",
  tag: 'billing',
  auth: 'token',
  body: z.object({ plan: z.string().regex(/^[a-z][a-z0-9_-]{1,31}$/, 'a plan id') }),
  responses: {
    200: { description: 'the Checkout Session to send the customer to', schema: z.object({ url: z.url(), id: z.string() }) },
    403: { description: 'missing billing:write, another tenant, or a suspended tenant' },
    409: { description: 'the tenant already has a subscription: change it in the portal' },
    422: { description: 'the plan does not exist, is not public, is free, or has no Stripe price yet' },
    503: { description: 'Stripe did not answer' },
  },
  async handler(context) {
    const { deps, body, log } = context;
    const caller = await billingCaller(context, 'write', { whileBillingSuspended: false });
    const { plan, subscriptionStatus, host } = await inCallerTenant(deps, caller, async (client) => {
      const plans = await client.query<PlanRow>({
        name: 'billing-checkout-plan',
        text: 'SELECT id, is_public, monthly_price_cents, stripe_price_id, stripe_metered_price_id FROM plans WHERE id = $1',
        values: [body.plan],
      });
      const subscriptions = await client.query<{ status: string }>({
        name: 'billing-checkout-subscription',
        text: 'SELECT status FROM tenant_subscriptions WHERE tenant_id = $1',
        values: [caller.tenantId],
      });
      return { plan: plans.rows[0], subscriptionStatus: subscriptions.rows[0]?.status ?? null, host: await tenantHost(client, caller.tenantId, deps.baseDomain) };
    });
    if (!plan || !plan.is_public) throw fail('plan_not_available', `there is no plan ${body.plan} to buy`);
    if (plan.monthly_price_cents <= 0) throw fail('plan_not_available', `the plan ${plan.id} is not a paid plan`);
    if (!plan.stripe_price_id) throw fail('plan_not_available', `the plan ${plan.id} has no Stripe price yet: the operators must run \`tenantry plan sync\``);
    if (subscriptionStatus !== null && !ENDED_STATUSES.has(subscriptionStatus)) {
      throw fail('subscription_exists', `the tenant already has a subscription (${subscriptionStatus}): change it in the billing portal (POST /billing/portal)`);
    }
    const customer = await ensureCustomer(deps, caller, log);
    const metadata = { tenant_id: caller.tenantId, plan_id: plan.id };
    const session = await callStripe(log, 'creating a Checkout Session', () =>
      deps.stripe.checkout.sessions.create({
        mode: 'subscription',
        customer,
        // A metered price beside the monthly one, so that usage reported to its meter is billed.
        line_items: [{ price: plan.stripe_price_id!, quantity: 1 }, ...(plan.stripe_metered_price_id ? [{ price: plan.stripe_metered_price_id }] : [])],
        client_reference_id: caller.tenantId,
        metadata,
        subscription_data: { metadata },
        success_url: returnUrl(deps.returnUrl, host, 'success'),
        cancel_url: returnUrl(deps.returnUrl, host, 'cancel'),
      }),
    );
    if (!session.url) throw fail('payment_provider_unavailable', 'Stripe returned a Checkout Session without a URL');
    log.info({ tenantId: caller.tenantId, plan: plan.id, session: session.id }, 'checkout started');
    return { body: { url: session.url, id: session.id } };
  },
});
