import type { PoolClient } from 'pg';
import { hasuraSessionJson } from '../../../shared/src/db/tenant-context.js';
import type { Mailer } from '../../../shared/src/mail/mailer.js';
import type { MailContent } from '../../../shared/src/mail/templates.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface BillingTenant {
  id: string;
  name: string;
  planId: string;
  status: 'active' | 'suspended' | 'deleted';
  suspensionReason: string | null;
}

/**
 * Enters the tenant for the rest of the transaction (row-level security), as the billing
 * worker: audit entries name `actor`, and `reason` unless a definer sets its own.
 */
export async function enterTenant(client: PoolClient, tenantId: string, actor: string, reason: string): Promise<BillingTenant | null> {
  await client.query(
    `SELECT set_config('hasura.user', $1, true), set_config('tenantry.actor', $2, true), set_config('tenantry.reason', $3, true)`,
    [hasuraSessionJson({ tenantId, role: 'billing' }), actor, reason],
  );
  const { rows } = await client.query<{ id: string; name: string; plan_id: string; status: BillingTenant['status']; suspension_reason: string | null }>(
    'SELECT id, name, plan_id, status, suspension_reason FROM tenants WHERE id = $1',
    [tenantId],
  );
  const row = rows[0];
  return row ? { id: row.id, name: row.name, planId: row.plan_id, status: row.status, suspensionReason: row.suspension_reason } : null;
}

export type TenantLookup = { tenantId: string } | { ignored: string };

/**
 * The tenant of a Stripe customer: the one that stored it; else the tenant the object's
 * metadata names (Checkout's client_reference_id, the subscription's metadata.tenant_id),
 * which then keeps the customer. A tenant that already has another customer keeps it.
 */
export async function tenantOfCustomer(client: PoolClient, customerId: string | null, namedTenantId: string | null): Promise<TenantLookup> {
  if (!customerId) return { ignored: 'the event names no customer' };
  const known = await client.query<{ tenant_id: string | null }>('SELECT app.billing_tenant_by_customer($1) AS tenant_id', [customerId]);
  const tenantId = known.rows[0]?.tenant_id;
  if (tenantId) return { tenantId };
  if (!namedTenantId || !UUID.test(namedTenantId)) return { ignored: `no tenant has customer ${customerId} and the event names none` };
  const kept = await client.query<{ customer: string | null }>('SELECT app.billing_set_customer($1, $2) AS customer', [namedTenantId, customerId]);
  const customer = kept.rows[0]?.customer;
  if (customer === customerId) return { tenantId: namedTenantId };
  if (customer === null || customer === undefined) return { ignored: `tenant ${namedTenantId}, named by customer ${customerId}, does not exist` };
  return { ignored: `tenant ${namedTenantId} already has customer ${customer}, not ${customerId}` };
}

/**
 * Mails every owner of the tenant; returns how many were mailed. Called last in the event's
 * transaction: a mail that fails retries the event, and a sent one is followed only by the
 * commit that marks the event applied.
 */
export async function mailOwners(client: PoolClient, mailer: Mailer, tenantId: string, content: MailContent): Promise<number> {
  const { rows } = await client.query<{ email: string }>(
    `SELECT u.email FROM tenant_members m JOIN users u ON u.id = m.user_id
     WHERE m.tenant_id = $1 AND m.role = 'owner'
     ORDER BY u.email`,
    [tenantId],
  );
  for (const { email } of rows) await mailer.send({ to: email, ...content });
  return rows.length;
}
