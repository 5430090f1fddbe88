import { z } from 'zod';
import { fail } from '../../../shared/src/errors/catalog.js';
import { billingCaller, inCallerTenant } from '../access.js';
import { existingCustomer } from '../customers.js';
import { defineOperation } from '../http.js';
import { returnUrl, tenantHost } from '../return-urls.js';
import { callStripe } from '../stripe-failures.js';

export const portal = defineOperation({
  method: 'post',
  path: '/billing/portal',
  summary: "Open a Customer Portal session (billing:write): change plan, payment method, cancel; also for a tenant suspended for billing",
  tag: 'billing',
  auth: 'token',
  responses: {
    200: { description: 'the portal session to send the customer to', schema: z.object({ url: z.url() }) },
    403: { description: 'missing billing:write, or another tenant' },
    409: { description: 'the tenant has no Stripe customer yet: start with a checkout' },
    503: { description: 'Stripe did not answer' },
  },
  async handler(context) {
    const { deps, log } = context;
    const caller = await billingCaller(context, 'write', { whileBillingSuspended: true });
    const { customer, host } = await inCallerTenant(deps, caller, async (client) => ({
      customer: await existingCustomer(client, caller.tenantId),
      host: await tenantHost(client, caller.tenantId, deps.baseDomain),
    }));
    if (!customer) throw fail('no_billing_account');
    const session = await callStripe(log, 'creating a portal session', () =>
      deps.stripe.billingPortal.sessions.create({ customer, return_url: returnUrl(deps.returnUrl, host, 'portal') }),
    );
    return { body: { url: session.url } };
  },
});
