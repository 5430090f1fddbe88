import { createHash } from 'node:crypto';
import type Stripe from 'stripe';
import { adminPool, inTransaction, type Queryable } from './context.js';
import { CliError, explainDatabaseError } from './errors.js';
import { stripeClient } from './stripe.js';
import { findTenant, purgeTenantFromEdges, type TenantRow } from './tenants.js';
import { stripeRefId } from '../../shared/src/stripe.js';

/** Plans live in the database (plans table), so --plan is checked against it, as --status is against its choices. */
export async function requireKnownPlan(plan: string): Promise<void> {
  const known = await planIds();
  if (!known.includes(plan)) {
    throw new CliError(`option '--plan <plan>' argument '${plan}' is invalid. Allowed choices are ${known.join(', ')}.`, 2);
  }
}

async function planIds(): Promise<string[]> {
  const { rows } = await adminPool().query<{ id: string }>('SELECT id FROM plans ORDER BY sort_order, id');
  return rows.map((row) => row.id);
}

export interface PlanRow {
  id: string;
  name: string;
  description: string;
  monthly_price_cents: number;
  currency: string;
  max_users: number | null;
  max_storage_bytes: number | null;
  max_api_requests_month: number | null;
  rate_limit_rps: number;
  features: Record<string, unknown>;
  is_public: boolean;
  stripe_product_id: string | null;
  stripe_price_id: string | null;
  stripe_metered_price_id: string | null;
  meter_event_name: string | null;
  meter_metric: string | null;
}

const PLAN_COLUMNS = `id, name, description, monthly_price_cents, currency, max_users,
  max_storage_bytes::float8 AS max_storage_bytes, max_api_requests_month::float8 AS max_api_requests_month,
  rate_limit_rps, features, is_public, stripe_product_id, stripe_price_id, stripe_metered_price_id,
  meter_event_name, meter_metric`;

export async function listPlans(): Promise<PlanRow[]> {
  const { rows } = await adminPool().query<PlanRow>(`SELECT ${PLAN_COLUMNS} FROM plans ORDER BY sort_order, id`);
  return rows;
}

// ---------------------------------------------------------------------------
// plan sync: the Stripe catalogue follows the plans table.
// ---------------------------------------------------------------------------

export type SyncAction = 'create' | 'update' | 'keep';

export interface PlanSyncResult {
  plan_id: string;
  product: { id: string; action: SyncAction };
  /** id is null only on a dry run that would create the price. */
  price: { id: string | null; action: Exclude<SyncAction, 'update'>; unit_amount: number; currency: string; lookup_key: string };
  /** Plans with a meter (meter_event_name) only. */
  metered_price: {
    id: string | null;
    action: Exclude<SyncAction, 'update'>;
    lookup_key: string;
    meter: { id: string | null; event_name: string; action: Exclude<SyncAction, 'update'> };
  } | null;
  /** Whether the plan's stored Stripe ids changed (or would, on a dry run). */
  database: 'update' | 'keep';
}

export interface PlanSyncReport {
  dry_run: boolean;
  plans: PlanSyncResult[];
  /** Plans without a monthly price (free, enterprise): nothing to sell through Stripe. */
  skipped: string[];
}

const productIdOf = (planId: string): string => `tenantry_${planId}`;
const meteredLookupKey = (planId: string): string => `${planId}_metered`;
const shortHash = (...parts: string[]): string => createHash('sha256').update(parts.join('\u0000')).digest('hex').slice(0, 16);

function isStripeError(error: unknown, code: string): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === code;
}

async function syncProduct(stripe: Stripe, plan: PlanRow, dryRun: boolean): Promise<{ id: string; action: SyncAction }> {
  const id = productIdOf(plan.id);
  let existing: Stripe.Product | null = null;
  try {
    existing = await stripe.products.retrieve(id);
  } catch (error) {
    if (!isStripeError(error, 'resource_missing')) throw error;
  }
  if (existing && !existing.deleted) {
    const differs = existing.name !== plan.name || (existing.description ?? '') !== plan.description || !existing.active;
    if (!differs) return { id, action: 'keep' };
    if (!dryRun) {
      // Stripe unsets a description given as an empty string.
      await stripe.products.update(id, { name: plan.name, description: plan.description, active: true });
    }
    return { id, action: 'update' };
  }
  if (!dryRun) {
    try {
      await stripe.products.create(
        { id, name: plan.name, ...(plan.description && { description: plan.description }), metadata: { plan_id: plan.id } },
        // The key covers what is sent: a renamed plan within Stripe's 24 h key lifetime is a new request.
        { idempotencyKey: `tenantry-product-${plan.id}-${shortHash(plan.name, plan.description)}` },
      );
    } catch (error) {
      // Another run created it between our retrieve and create: it exists, as wanted.
      if (!isStripeError(error, 'resource_already_exists')) throw error;
    }
  }
  return { id, action: 'create' };
}

/** The active price under a lookup key, when it is the one wanted; the SDK's filter is trusted but checked. */
async function priceByLookupKey(stripe: Stripe, lookupKey: string, matches: (price: Stripe.Price) => boolean): Promise<Stripe.Price | null> {
  const { data } = await stripe.prices.list({ lookup_keys: [lookupKey], active: true, limit: 10 });
  return data.find((price) => price.lookup_key === lookupKey && matches(price)) ?? null;
}

async function syncMonthlyPrice(stripe: Stripe, plan: PlanRow, productId: string, dryRun: boolean): Promise<PlanSyncResult['price']> {
  const wanted = { unit_amount: plan.monthly_price_cents, currency: plan.currency, lookup_key: plan.id };
  const kept = await priceByLookupKey(
    stripe,
    plan.id,
    (price) =>
      stripeRefId(price.product) === productId &&
      price.type === 'recurring' &&
      price.unit_amount === plan.monthly_price_cents &&
      price.currency === plan.currency &&
      price.recurring?.interval === 'month' &&
      price.recurring.interval_count === 1 &&
      price.recurring.usage_type === 'licensed',
  );
  if (kept) return { id: kept.id, action: 'keep', ...wanted };
  if (dryRun) return { id: null, action: 'create', ...wanted };
  // Prices are immutable in amount: a new amount is a new Price, and the lookup key moves to it.
  const created = await stripe.prices.create(
    {
      product: productId,
      unit_amount: plan.monthly_price_cents,
      currency: plan.currency,
      recurring: { interval: 'month', interval_count: 1, usage_type: 'licensed' },
      lookup_key: plan.id,
      transfer_lookup_key: true,
      metadata: { plan_id: plan.id },
    },
    { idempotencyKey: `tenantry-price-${plan.id}-${plan.monthly_price_cents}-${plan.currency}-month` },
  );
  return { id: created.id, action: 'create', ...wanted };
}

/**
 * The Billing Meter the usage reporter sends events to, by event name. Its mapping is
 * Stripe's default: the customer in `stripe_customer_id`, the quantity in `value`.
 */
async function syncMeter(stripe: Stripe, plan: PlanRow & { meter_event_name: string; meter_metric: string }, dryRun: boolean) {
  for await (const meter of stripe.billing.meters.list({ status: 'active', limit: 100 })) {
    if (meter.event_name === plan.meter_event_name) return { id: meter.id, event_name: plan.meter_event_name, action: 'keep' as const };
  }
  if (dryRun) return { id: null, event_name: plan.meter_event_name, action: 'create' as const };
  const created = await stripe.billing.meters.create(
    {
      display_name: `Tenantry ${plan.meter_metric}`,
      event_name: plan.meter_event_name,
      default_aggregation: { formula: 'sum' },
      customer_mapping: { type: 'by_id', event_payload_key: 'stripe_customer_id' },
      value_settings: { event_payload_key: 'value' },
    },
    { idempotencyKey: `tenantry-meter-${plan.meter_event_name}` },
  );
  return { id: created.id, event_name: plan.meter_event_name, action: 'create' as const };
}

/**
 * The usage price beside the monthly one: metered, on the plan's meter. The plans table
 * holds no per-unit amount, so one is created at 0 and its amount is set in Stripe (a new
 * Price with the same lookup key, which this command then keeps whatever its amount).
 */
async function syncMeteredPrice(
  stripe: Stripe,
  plan: PlanRow,
  productId: string,
  dryRun: boolean,
): Promise<PlanSyncResult['metered_price']> {
  if (!plan.meter_event_name || !plan.meter_metric) return null;
  const meter = await syncMeter(stripe, { ...plan, meter_event_name: plan.meter_event_name, meter_metric: plan.meter_metric }, dryRun);
  const lookupKey = meteredLookupKey(plan.id);
  const kept =
    meter.id === null
      ? null
      : await priceByLookupKey(
          stripe,
          lookupKey,
          (price) =>
            stripeRefId(price.product) === productId &&
            price.currency === plan.currency &&
            price.recurring?.interval === 'month' &&
            price.recurring.usage_type === 'metered' &&
            price.recurring.meter === meter.id,
        );
  if (kept) return { id: kept.id, action: 'keep', lookup_key: lookupKey, meter };
  if (dryRun || meter.id === null) return { id: null, action: 'create', lookup_key: lookupKey, meter };
  const created = await stripe.prices.create(
    {
      product: productId,
      currency: plan.currency,
      unit_amount: 0,
      billing_scheme: 'per_unit',
      recurring: { interval: 'month', usage_type: 'metered', meter: meter.id },
      lookup_key: lookupKey,
      transfer_lookup_key: true,
      metadata: { plan_id: plan.id, meter_metric: plan.meter_metric },
    },
    { idempotencyKey: `tenantry-metered-price-${plan.id}-${meter.id}-${plan.currency}` },
  );
  return { id: created.id, action: 'create', lookup_key: lookupKey, meter };
}

/** Stores the plan's Stripe ids; false when they already were the stored ones. */
async function storeStripeIds(plan: PlanRow, ids: { product: string; price: string; meteredPrice: string | null }): Promise<boolean> {
  const { rowCount } = await adminPool().query(
    `UPDATE plans SET stripe_product_id = $2, stripe_price_id = $3, stripe_metered_price_id = $4
      WHERE id = $1 AND (stripe_product_id, stripe_price_id, stripe_metered_price_id) IS DISTINCT FROM ($2, $3, $4)`,
    [plan.id, ids.product, ids.price, ids.meteredPrice],
  );
  return rowCount === 1;
}

/**
 * Makes Stripe's catalogue match every paid plan: a Product `tenantry_<plan>`, a monthly
 * Price whose lookup_key is the plan id (kept while amount, currency and interval match),
 * a metered Price for plans with a meter, and their ids in the plans table. Idempotent: a
 * second run finds everything and writes nothing. Each plan is stored as soon as it is
 * synced, so a run that fails half-way keeps what it did.
 */
export async function syncPlans(options: { dryRun: boolean }): Promise<PlanSyncReport> {
  const plans = await listPlans();
  const paid = plans.filter((plan) => plan.monthly_price_cents > 0);
  const stripe = stripeClient();
  const results: PlanSyncResult[] = [];
  for (const plan of paid) {
    const product = await syncProduct(stripe, plan, options.dryRun);
    const price = await syncMonthlyPrice(stripe, plan, product.id, options.dryRun);
    const meteredPrice = await syncMeteredPrice(stripe, plan, product.id, options.dryRun);
    const ids = { product: product.id, price: price.id, meteredPrice: meteredPrice?.id ?? null };
    let database: PlanSyncResult['database'];
    if (ids.price === null) {
      // A dry run that would create the price: the stored id would change.
      database = 'update';
    } else if (options.dryRun) {
      const same = plan.stripe_product_id === ids.product && plan.stripe_price_id === ids.price && plan.stripe_metered_price_id === ids.meteredPrice;
      database = same ? 'keep' : 'update';
    } else {
      database = (await storeStripeIds(plan, { ...ids, price: ids.price })) ? 'update' : 'keep';
    }
    results.push({ plan_id: plan.id, product, price, metered_price: meteredPrice, database });
  }
  return { dry_run: options.dryRun, plans: results, skipped: plans.filter((plan) => plan.monthly_price_cents <= 0).map((plan) => plan.id) };
}

// ---------------------------------------------------------------------------
// plan set: a plan by hand.
// ---------------------------------------------------------------------------

export interface PlanChange {
  tenant: TenantRow;
  previous_plan_id: string;
  changed: boolean;
  /** A Stripe subscription the next subscription event applies again, over this plan. */
  subscription: { status: string; plan_id: string } | null;
}

/** A tenant the operator named; an unknown one is a usage error (exit 2). */
export async function namedTenant(reference: string, db: Queryable = adminPool(), lock = false): Promise<TenantRow> {
  try {
    return await findTenant(reference, db, lock);
  } catch (error) {
    if (error instanceof CliError) throw new CliError(error.message, 2);
    throw error;
  }
}

/**
 * Moves a tenant to a plan by hand (an enterprise contract, say; non-public plans too).
 * One audited change of the tenant's plan with the reason (app.billing_set_plan); the edges forget the tenant so its new
 * rate limit and features hold at once. A tenant already on the plan is left alone.
 */
export async function setTenantPlan(reference: string, planId: string, reason: string): Promise<PlanChange> {
  if (reason.trim().length === 0) throw new CliError('--reason is empty — say why, e.g. --reason "enterprise contract 2026-12"', 2);
  const known = await planIds();
  if (!known.includes(planId)) throw new CliError(`plan '${planId}' does not exist — choose one of ${known.join(', ')} (see \`tenantry plan list\`)`, 2);
  try {
    const change = await inTransaction(
      async (client) => {
        const tenant = await namedTenant(reference, client, true);
        // The billing worker's own way to move a plan: one audited change, none when it is already there.
        const { rows: moved } = await client.query<{ changed: boolean }>('SELECT app.billing_set_plan($1, $2, $3) AS changed', [tenant.id, planId, reason]);
        const changed = moved[0]!.changed;
        const { rows: subscriptions } = await client.query<{ status: string; plan_id: string }>(
          `SELECT status, plan_id FROM tenant_subscriptions WHERE tenant_id = $1 AND status NOT IN ('canceled', 'incomplete_expired')`,
          [tenant.id],
        );
        const { rows: domains } = await client.query<{ domain: string }>(`SELECT domain FROM tenant_domains WHERE tenant_id = $1`, [tenant.id]);
        return {
          change: {
            tenant: changed ? await findTenant(tenant.id, client) : tenant,
            previous_plan_id: tenant.plan_id,
            changed,
            subscription: subscriptions[0] ?? null,
          },
          domains: domains.map((row) => row.domain),
        };
      },
      { reason },
    );
    if (change.change.changed) await purgeTenantFromEdges(change.change.tenant, change.domains);
    return change.change;
  } catch (error) {
    throw explainDatabaseError(error, { tenant: reference, plan: planId });
  }
}
