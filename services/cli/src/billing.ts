import { setTimeout as sleep } from 'node:timers/promises';
import { adminPool, inTransaction, type Queryable } from './context.js';
import { CliError } from './errors.js';
import { namedTenant } from './plans.js';

export type StripeEventStatus = 'pending' | 'applied' | 'ignored' | 'failed';

export interface StripeEventRow {
  id: string;
  type: string;
  status: StripeEventStatus;
  attempts: number;
  last_error: string | null;
  outcome: string | null;
  /** The Stripe object (customer, else the object itself) whose events apply one at a time. */
  object_id: string | null;
  /** Stripe's `created`: when the event happened. */
  created_at: Date;
  received_at: Date;
  next_attempt_at: Date;
  processed_at: Date | null;
}

const EVENT_COLUMNS = `e.id, e.type, e.status, e.attempts, e.last_error, e.outcome, e.object_id,
  e.stripe_created_at AS created_at, e.received_at, e.next_attempt_at, e.processed_at`;

/**
 * The Stripe objects a tenant's events are filed under: its customer (the inbox files every
 * event that names one there) and its subscription, for an event that names no customer.
 */
async function stripeObjectsOf(db: Queryable, tenantId: string): Promise<string[]> {
  const { rows } = await db.query<{ object_id: string }>(
    `SELECT stripe_customer_id AS object_id FROM tenants WHERE id = $1 AND stripe_customer_id IS NOT NULL
     UNION SELECT stripe_customer_id FROM tenant_subscriptions WHERE tenant_id = $1 AND stripe_customer_id IS NOT NULL
     UNION SELECT stripe_subscription_id FROM tenant_subscriptions WHERE tenant_id = $1 AND stripe_subscription_id IS NOT NULL`,
    [tenantId],
  );
  return rows.map((row) => row.object_id);
}

export interface EventFilter {
  /** Events that gave up (failed) or are retrying after an error (pending with last_error). */
  failed?: boolean;
  tenant?: string;
  limit: number;
}

/** A --limit as typed: a whole number from 1 to 1000, else a usage error. */
export function parseLimit(text: string): number {
  const limit = /^\d{1,4}$/.test(text) ? Number(text) : Number.NaN;
  if (!(limit >= 1 && limit <= 1000)) throw new CliError(`--limit '${text}' must be a whole number from 1 to 1000`, 2);
  return limit;
}

/** The inbox, newest received first. */
export async function listEvents(filter: EventFilter): Promise<StripeEventRow[]> {
  const db = adminPool();
  const objects = filter.tenant === undefined ? null : await stripeObjectsOf(db, (await namedTenant(filter.tenant, db)).id);
  const { rows } = await db.query<StripeEventRow>(
    `SELECT ${EVENT_COLUMNS} FROM stripe_events e
      WHERE (NOT $1::boolean OR e.status = 'failed' OR (e.status = 'pending' AND e.last_error IS NOT NULL))
        AND ($2::text[] IS NULL OR e.object_id = ANY ($2))
      ORDER BY e.received_at DESC, e.id DESC
      LIMIT $3`,
    [filter.failed ?? false, objects, filter.limit],
  );
  return rows;
}

export interface BillingStatus {
  tenant: { id: string; slug: string; name: string; status: string };
  plan: { id: string; name: string };
  customer_id: string | null;
  subscription: {
    status: string;
    plan_id: string;
    stripe_subscription_id: string | null;
    stripe_price_id: string | null;
    current_period_start: Date | null;
    current_period_end: Date | null;
    trial_end: Date | null;
    cancel_at_period_end: boolean;
    canceled_at: Date | null;
    past_due_since: Date | null;
    updated_at: Date;
  } | null;
  suspension: { reason: string | null; since: Date | null } | null;
  entitlements: {
    features: Record<string, unknown>;
    limits: { max_users: number | null; max_storage_bytes: number | null; max_api_requests_month: number | null; rate_limit_rps: number };
  };
  recent_events: StripeEventRow[];
}

const RECENT_EVENTS = 10;

/** Everything billing knows about one tenant, as `billing status` prints it. */
export async function billingStatus(reference: string): Promise<BillingStatus> {
  const db = adminPool();
  const tenant = await namedTenant(reference, db);
  const [details, subscription, entitlements, objects] = await Promise.all([
    db.query<{ plan_name: string; stripe_customer_id: string | null }>(
      `SELECT p.name AS plan_name, t.stripe_customer_id FROM tenants t JOIN plans p ON p.id = t.plan_id WHERE t.id = $1`,
      [tenant.id],
    ),
    db.query<NonNullable<BillingStatus['subscription']>>(
      `SELECT status, plan_id, stripe_subscription_id, stripe_price_id, current_period_start, current_period_end, trial_end,
              cancel_at_period_end, canceled_at, past_due_since, updated_at
         FROM tenant_subscriptions WHERE tenant_id = $1`,
      [tenant.id],
    ),
    db.query<{ features: Record<string, unknown> } & BillingStatus['entitlements']['limits']>(
      `SELECT features, max_users, max_storage_bytes::float8 AS max_storage_bytes,
              max_api_requests_month::float8 AS max_api_requests_month, rate_limit_rps
         FROM app.tenant_entitlements($1)`,
      [tenant.id],
    ),
    stripeObjectsOf(db, tenant.id),
  ]);
  const { rows: events } = await db.query<StripeEventRow>(
    `SELECT ${EVENT_COLUMNS} FROM stripe_events e WHERE e.object_id = ANY ($1)
      ORDER BY e.stripe_created_at DESC, e.received_at DESC LIMIT $2`,
    [objects, RECENT_EVENTS],
  );
  const { features, ...limits } = entitlements.rows[0]!;
  return {
    tenant: { id: tenant.id, slug: tenant.slug, name: tenant.name, status: tenant.status },
    plan: { id: tenant.plan_id, name: details.rows[0]!.plan_name },
    customer_id: details.rows[0]!.stripe_customer_id,
    subscription: subscription.rows[0] ?? null,
    suspension: tenant.status === 'suspended' ? { reason: tenant.suspension_reason, since: tenant.suspended_at } : null,
    entitlements: { features, limits },
    recent_events: events,
  };
}

// ---------------------------------------------------------------------------
// replay: one event again, by the running billing worker.
// ---------------------------------------------------------------------------

const EVENT_ID = /^evt_[A-Za-z0-9_]{1,250}$/;

/** --wait as typed: whole seconds from 0 (queue only) to 600. */
export function parseWait(text: string): number {
  const seconds = /^\d{1,3}$/.test(text) ? Number(text) : Number.NaN;
  if (!(seconds >= 0 && seconds <= 600)) throw new CliError(`--wait '${text}' must be a whole number of seconds from 0 to 600`, 2);
  return seconds;
}

export type ReplayResult =
  /** The worker took it: applied or ignored (exit 0), or failed for good (exit 1). */
  | { event: StripeEventRow; state: 'done' }
  /** The worker tried and failed; it retries at next_attempt_at. */
  | { event: StripeEventRow; state: 'retrying' }
  /** Nothing took it within --wait (or --wait 0): it stays queued for the worker. */
  | { event: StripeEventRow; state: 'queued' };

async function eventById(db: Queryable, id: string, lock = false): Promise<StripeEventRow | undefined> {
  const { rows } = await db.query<StripeEventRow>(`SELECT ${EVENT_COLUMNS} FROM stripe_events e WHERE e.id = $1${lock ? ' FOR UPDATE' : ''}`, [id]);
  return rows[0];
}

/**
 * Puts an event back in the queue: pending, no attempts, due now (last_error stays until
 * the next attempt replaces it). The UPDATE notifies `stripe_events`, which wakes the billing
 * worker; this command applies nothing itself, so an event is only ever applied by the
 * worker, under its per-customer lock. Every replay is a platform audit entry
 * (`stripe_events.replay`, on the tenant whose customer the event names), with --reason
 * when given.
 */
export async function replayEvent(id: string, options: { waitSeconds: number; reason?: string }): Promise<ReplayResult> {
  if (!EVENT_ID.test(id)) throw new CliError(`'${id}' is not a Stripe event id — give one such as evt_1Q2w3E4r (see \`tenantry billing events\`)`, 2);
  if (options.reason !== undefined && options.reason.trim().length === 0) throw new CliError('--reason is empty — say why, or leave it out', 2);
  await inTransaction(
    async (client) => {
      const before = await eventById(client, id, true);
      if (!before) throw new CliError(`event '${id}' is not in the inbox — see \`tenantry billing events\``, 2);
      await client.query(`UPDATE stripe_events SET status = 'pending', attempts = 0, next_attempt_at = now() WHERE id = $1`, [id]);
      await client.query(
        `INSERT INTO audit_log (tenant_id, action, target_type, target_id, before, after, reason)
         VALUES ((SELECT t.id FROM tenants t WHERE t.stripe_customer_id = $2
                  UNION SELECT s.tenant_id FROM tenant_subscriptions s WHERE s.stripe_subscription_id = $2 LIMIT 1),
                 'stripe_events.replay', 'stripe_events', $1,
                 jsonb_build_object('status', $3::text, 'attempts', $4::int, 'last_error', $5::text, 'outcome', $6::text),
                 jsonb_build_object('status', 'pending', 'attempts', 0), $7)`,
        [id, before.object_id, before.status, before.attempts, before.last_error, before.outcome, options.reason ?? null],
      );
    },
    { reason: options.reason },
  );
  return awaitWorker(id, options.waitSeconds);
}

const POLL_MS = 200;

/** Watches the event until the worker has taken it (it leaves pending, or an attempt is recorded) or the wait is over. */
async function awaitWorker(id: string, waitSeconds: number): Promise<ReplayResult> {
  const deadline = Date.now() + waitSeconds * 1000;
  for (;;) {
    const event = (await eventById(adminPool(), id))!;
    if (event.status !== 'pending') return { event, state: 'done' };
    if (event.attempts > 0) return { event, state: 'retrying' };
    if (Date.now() >= deadline) return { event, state: 'queued' };
    await sleep(Math.min(POLL_MS, Math.max(0, deadline - Date.now())));
  }
}
