import { createHash } from 'node:crypto';
import type { PoolClient } from 'pg';
import type { Logger } from '../../shared/src/logger.js';
import { inCallerTenant, type BillingCaller } from './access.js';
import type { BillingDependencies } from './deps.js';
import { callStripe } from './stripe-failures.js';

interface TenantRow {
  name: string;
  slug: string;
  stripe_customer_id: string | null;
}

async function readTenant(client: PoolClient, tenantId: string): Promise<TenantRow> {
  const { rows } = await client.query<TenantRow>({
    name: 'billing-tenant-customer',
    text: 'SELECT name, slug, stripe_customer_id FROM tenants WHERE id = $1',
    values: [tenantId],
  });
  return rows[0]!;
}

/**
 * The idempotency key of the tenant's customer creation: the tenant and what is sent, so a
 * retry (the SDK's, or the next request after a crash between creating and storing) gets the
 * customer Stripe already made instead of a second one, and a tenant renamed in between
 * does not collide with the key of its old name (Stripe refuses a key reused with other
 * parameters).
 */
function customerIdempotencyKey(tenantId: string, params: Record<string, unknown>): string {
  const digest = createHash('sha256').update(JSON.stringify(params)).digest('hex').slice(0, 16);
  return `tenantry-customer-${tenantId}-${digest}`;
}

/**
 * The tenant's Stripe customer, created on first need. Creation is serialised per tenant
 * (a transaction-scoped advisory lock, re-reading under it), so two first checkouts at once
 * make one customer; app.billing_set_customer keeps the first id stored and returns it.
 */
export async function ensureCustomer(deps: BillingDependencies, caller: BillingCaller, log: Logger): Promise<string> {
  const existing = await inCallerTenant(deps, caller, (client) => readTenant(client, caller.tenantId));
  if (existing.stripe_customer_id) return existing.stripe_customer_id;
  return inCallerTenant(deps, caller, async (client) => {
    await client.query({ name: 'billing-customer-lock', text: "SELECT pg_advisory_xact_lock(hashtextextended('billing.customer:' || $1::text, 0))", values: [caller.tenantId] });
    const tenant = await readTenant(client, caller.tenantId);
    if (tenant.stripe_customer_id) return tenant.stripe_customer_id;
    const params = { name: tenant.name, metadata: { tenant_id: caller.tenantId, tenant_slug: tenant.slug } };
    const customer = await callStripe(log, 'creating the customer', () =>
      deps.stripe.customers.create(params, { idempotencyKey: customerIdempotencyKey(caller.tenantId, params) }),
    );
    const { rows } = await client.query<{ kept: string }>({
      name: 'billing-set-customer',
      text: 'SELECT app.billing_set_customer($1, $2) AS kept',
      values: [caller.tenantId, customer.id],
    });
    if (rows[0]!.kept !== customer.id) log.warn({ created: customer.id, kept: rows[0]!.kept }, 'the tenant already had a customer; the new one is unused');
    return rows[0]!.kept;
  });
}

/** The customer a tenant pays with, if it has one: its own, else its subscription's. */
export async function existingCustomer(client: PoolClient, tenantId: string): Promise<string | null> {
  const { rows } = await client.query<{ customer: string | null }>({
    name: 'billing-existing-customer',
    text: `SELECT coalesce(t.stripe_customer_id, s.stripe_customer_id) AS customer
           FROM tenants t LEFT JOIN tenant_subscriptions s ON s.tenant_id = t.id WHERE t.id = $1`,
    values: [tenantId],
  });
  return rows[0]?.customer ?? null;
}
