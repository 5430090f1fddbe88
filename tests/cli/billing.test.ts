import type Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { services } from '../helpers/database.js';
import { stripeClientFor, stripeEvent, stripeId, subscriptionObject } from '../billing/stripe-fixtures.js';
import { createBillingTenant, eventRow, pricePlans, startWorkerKit, store, type WorkerKit } from '../billing/worker-kit.js';
import { cli, cliEnv } from './helpers.js';

interface EventJson {
  id: string;
  type: string;
  status: string;
  attempts: number;
  last_error: string | null;
  outcome: string | null;
  object_id: string | null;
  created_at: string;
  received_at: string;
}

const DAY_MS = 86_400_000;

/**
 * One database of this file's own (the worker kit's): a billing worker of another suite on
 * the shared database would apply these events, and "no worker is running" must be true.
 */
describe('billing status, events and replay', () => {
  let kit: WorkerKit;
  const run = (args: string[]) => cli(args, { env: cliEnv({ PLATFORM_ADMIN_DATABASE_URL: kit.database.url('platform_admin') }) });

  /** An event stored as the webhook stores it, then put in the state a test needs. */
  async function storedEvent(
    customer: string,
    created: Date,
    state: { status?: string; attempts?: number; last_error?: string | null; outcome?: string | null } = {},
    type = 'invoice.payment_failed',
  ): Promise<string> {
    const event = stripeEvent(type, { object: 'invoice', id: stripeId('in'), customer } as { object: string }, created);
    await store(kit, event);
    await kit.admin.query(
      `UPDATE stripe_events SET status = $2, attempts = $3, last_error = $4, outcome = $5 WHERE id = $1`,
      [event.id, state.status ?? 'pending', state.attempts ?? 0, state.last_error ?? null, state.outcome ?? null],
    );
    return event.id;
  }

  beforeAll(async () => {
    kit = await startWorkerKit();
  });
  afterAll(async () => kit?.close());

  test('status of a tenant without a subscription: the free plan, no customer, no events', async () => {
    const tenant = await createBillingTenant(kit.admin, 'status-free');
    const result = await run(['billing', 'status', tenant.tenantId, '--json']);
    expect(result.code, result.stderr).toBe(0);
    const status = result.json<Record<string, unknown>>();
    expect(status).toEqual({
      tenant: { id: tenant.tenantId, slug: expect.stringMatching(/^status-free-/), name: 'Tenant status-free', status: 'active' },
      plan: { id: 'free', name: 'Free' },
      customer_id: null,
      subscription: null,
      suspension: null,
      entitlements: {
        features: { custom_domains: false, api_keys: false, sso: false },
        limits: { max_users: 3, max_storage_bytes: 1073741824, max_api_requests_month: 10000, rate_limit_rps: 5 },
      },
      recent_events: [],
    });
  });

  test('status of a past-due tenant suspended for billing: subscription, customer, suspension, entitlements, its own events newest first', async () => {
    const tenant = await createBillingTenant(kit.admin, 'status-paid', { customerStored: true });
    const periodStart = new Date(Date.now() - 20 * DAY_MS);
    const periodEnd = new Date(periodStart.getTime() + 30 * DAY_MS);
    const pastDueSince = new Date(Date.now() - 9 * DAY_MS);
    const subscriptionId = stripeId('sub');
    await kit.admin.query(
      `INSERT INTO tenant_subscriptions (tenant_id, plan_id, status, stripe_customer_id, stripe_subscription_id, stripe_price_id,
                                         current_period_start, current_period_end, cancel_at_period_end, trial_end, past_due_since)
       VALUES ($1, 'pro', 'past_due', $2, $3, 'price_pro_cli', $4, $5, true, $6, $7)`,
      [tenant.tenantId, tenant.customerId, subscriptionId, periodStart, periodEnd, periodStart, pastDueSince],
    );
    await kit.admin.query(`UPDATE tenants SET plan_id = 'pro', status = 'suspended', suspension_reason = 'billing' WHERE id = $1`, [tenant.tenantId]);
    const older = await storedEvent(tenant.customerId, new Date(Date.now() - 2 * DAY_MS), { status: 'applied', attempts: 1, outcome: 'payment failed: mailed 1 owner(s)' });
    const newer = await storedEvent(tenant.customerId, new Date(Date.now() - DAY_MS), { status: 'failed', attempts: 8, last_error: 'boom' });
    await storedEvent(stripeId('cus'), new Date(), { status: 'applied' });

    const result = await run(['billing', 'status', tenant.tenantId, '--json']);
    expect(result.code, result.stderr).toBe(0);
    const status = result.json<{
      plan: unknown;
      customer_id: string;
      subscription: Record<string, unknown>;
      suspension: { reason: string; since: string };
      entitlements: { features: Record<string, boolean>; limits: Record<string, number> };
      recent_events: EventJson[];
    }>();
    expect(status.plan).toEqual({ id: 'pro', name: 'Pro' });
    expect(status.customer_id).toBe(tenant.customerId);
    expect(status.subscription).toEqual({
      status: 'past_due',
      plan_id: 'pro',
      stripe_subscription_id: subscriptionId,
      stripe_price_id: 'price_pro_cli',
      current_period_start: periodStart.toISOString(),
      current_period_end: periodEnd.toISOString(),
      trial_end: periodStart.toISOString(),
      cancel_at_period_end: true,
      canceled_at: null,
      past_due_since: pastDueSince.toISOString(),
      updated_at: expect.any(String),
    });
    expect(status.suspension.reason).toBe('billing');
    expect(status.entitlements.features).toMatchObject({ sso: true, api_keys: true, custom_domains: true });
    expect(status.entitlements.limits.rate_limit_rps).toBe(50);
    expect(status.recent_events.map((event) => event.id)).toEqual([newer, older]);
    expect(status.recent_events[0]).toMatchObject({ status: 'failed', attempts: 8, last_error: 'boom', type: 'invoice.payment_failed' });

    const text = await run(['billing', 'status', tenant.tenantId]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^suspended:\s+billing since /m);
    expect(text.stdout).toMatch(/^subscription:\s+past_due on pro/m);
    expect(text.stdout).toContain(newer);
  });

  test('an unknown tenant is a usage error', async () => {
    const result = await run(['billing', 'status', 'no-such-tenant-here']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("tenant 'no-such-tenant-here' not found");
  });

  test('events --failed lists the failed and the retrying events only; --tenant and --limit filter', async () => {
    const tenant = await createBillingTenant(kit.admin, 'events', { customerStored: true });
    const base = Date.now() - 10 * DAY_MS;
    const failed = await storedEvent(tenant.customerId, new Date(base), { status: 'failed', attempts: 8, last_error: 'no plan has price x' });
    const retrying = await storedEvent(tenant.customerId, new Date(base + 1000), { status: 'pending', attempts: 2, last_error: 'Stripe timed out' });
    const applied = await storedEvent(tenant.customerId, new Date(base + 2000), { status: 'applied', attempts: 1, outcome: 'mailed 1 owner(s)' });
    const ignored = await storedEvent(tenant.customerId, new Date(base + 3000), { status: 'ignored', attempts: 1, outcome: 'not an event billing acts on' });
    const otherFailed = await storedEvent(stripeId('cus'), new Date(base), { status: 'failed', attempts: 8, last_error: 'elsewhere' });

    const onlyFailed = await run(['billing', 'events', '--tenant', tenant.tenantId, '--failed', '--json']);
    expect(onlyFailed.code, onlyFailed.stderr).toBe(0);
    expect(onlyFailed.json<EventJson[]>().map((event) => event.id).sort()).toEqual([failed, retrying].sort());

    const all = await run(['billing', 'events', '--tenant', tenant.tenantId, '--json']);
    expect(all.json<EventJson[]>().map((event) => event.id).sort()).toEqual([failed, retrying, applied, ignored].sort());
    expect(all.json<EventJson[]>().find((event) => event.id === applied)).toMatchObject({ status: 'applied', attempts: 1, outcome: 'mailed 1 owner(s)' });

    const everyFailed = await run(['billing', 'events', '--failed', '--json', '--limit', '1000']);
    const everyFailedIds = everyFailed.json<EventJson[]>().map((event) => event.id);
    expect(everyFailedIds).toEqual(expect.arrayContaining([failed, retrying, otherFailed]));
    expect(everyFailedIds).not.toContain(applied);
    expect(everyFailedIds).not.toContain(ignored);

    const limited = await run(['billing', 'events', '--tenant', tenant.tenantId, '--limit', '2', '--json']);
    expect(limited.json<EventJson[]>()).toHaveLength(2);

    const table = await run(['billing', 'events', '--tenant', tenant.tenantId, '--failed']);
    expect(table.stdout).toMatch(/^ID\s+TYPE\s+STATUS\s+ATTEMPTS\s+ERROR \/ OUTCOME\s+RECEIVED\s+CREATED$/m);
    expect(table.stdout).toContain('no plan has price x');

    for (const limit of ['0', '-1', 'ten', '1001']) {
      const refused = await run(['billing', 'events', '--limit', limit]);
      expect(refused.code, limit).toBe(2);
    }
    expect((await run(['billing', 'events', '--tenant', 'no-such-tenant-here'])).code).toBe(2);
  });

  test('replay of a malformed or unknown event id is a usage error and writes no audit entry', async () => {
    const malformed = await run(['billing', 'replay', 'in_123']);
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toContain("'in_123' is not a Stripe event id");
    const unknown = await run(['billing', 'replay', 'evt_doesnotexist42']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("event 'evt_doesnotexist42' is not in the inbox");
    const { rowCount } = await kit.admin.query(`SELECT 1 FROM audit_log WHERE action = 'stripe_events.replay' AND target_id IN ('in_123', 'evt_doesnotexist42')`);
    expect(rowCount).toBe(0);
    expect((await run(['billing', 'replay', 'evt_x', '--wait', 'soon'])).code).toBe(2);
  });

  test('replay with no worker running: exit 1, says so, and the event stays queued (pending, no attempts, error kept), audited with the reason', async () => {
    const tenant = await createBillingTenant(kit.admin, 'replay-idle', { customerStored: true });
    const id = await storedEvent(tenant.customerId, new Date(), { status: 'failed', attempts: 8, last_error: 'no plan has price y' });
    const result = await run(['billing', 'replay', id, '--wait', '1', '--reason', 'plan sync ran']);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('the billing worker seems not to be running — the event stays queued');
    expect(await eventRow(kit.admin, id)).toMatchObject({ status: 'pending', attempts: 0, last_error: 'no plan has price y' });
    const { rows } = await kit.admin.query<{ tenant_id: string; actor: string; reason: string; before: Record<string, unknown>; after: Record<string, unknown> }>(
      `SELECT tenant_id, actor, reason, before, after FROM audit_log WHERE action = 'stripe_events.replay' AND target_id = $1`,
      [id],
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      tenant_id: tenant.tenantId,
      reason: 'plan sync ran',
      before: { status: 'failed', attempts: 8, last_error: 'no plan has price y' },
      after: { status: 'pending', attempts: 0 },
    });
    expect(rows[0]!.actor).toMatch(/^cli:/);
  });

  test('replay with the billing worker running: the worker applies the event again and the command prints the outcome', async () => {
    // An upgrade that failed because no plan had its price yet (plan sync had not run); now it has.
    const plans = await pricePlans(kit.admin);
    const tenant = await createBillingTenant(kit.admin, 'replay-live', { customerStored: true });
    const now = new Date();
    const subscription = await subscriptionObject({
      id: stripeId('sub'),
      customer: tenant.customerId,
      priceId: plans.pro.priceId,
      status: 'active',
      periodStart: now,
      periodEnd: new Date(now.getTime() + 30 * DAY_MS),
    });
    const event = stripeEvent('customer.subscription.updated', subscription as unknown as { object: string }, now);
    await store(kit, event);
    await kit.admin.query(`UPDATE stripe_events SET status = 'failed', attempts = 8, last_error = 'no plan has price' WHERE id = $1`, [event.id]);

    const worker = kit.worker(stripeClientFor(services().endpoints.stripeApiBase) as Stripe);
    await worker.start();
    try {
      const result = await run(['billing', 'replay', event.id, '--wait', '60', '--json']);
      expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
      expect(result.json()).toMatchObject({ id: event.id, status: 'applied', state: 'done', attempts: 1 });
    } finally {
      await worker.stop();
    }
    const { rows } = await kit.admin.query(`SELECT plan_id FROM tenants WHERE id = $1`, [tenant.tenantId]);
    expect(rows[0]).toEqual({ plan_id: 'pro' });
    expect((await eventRow(kit.admin, event.id)).outcome).toContain('on plan pro');
  });
});
