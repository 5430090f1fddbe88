import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { pino } from 'pino';
import type Stripe from 'stripe';
import { storeStripeEvent } from '../../services/billing/src/inbox.js';
import { createBillingWorker, type StartableBillingWorker } from '../../services/billing/src/worker/index.js';
import { smtpMailer, type Mailer } from '../../services/shared/src/mail/mailer.js';
import { MailSink } from '../auth/harness.js';
import { createScratchDatabase, services, type ScratchDatabase } from '../helpers/database.js';

/**
 * What the worker suites share: a database of their own (the worker drains every tenant's
 * events and evaluates every tenant's clock, so another suite's worker must not apply
 * these tests' events), Redis for edge purges, a real SMTP sink, and an injected clock.
 */
export interface WorkerKit {
  database: ScratchDatabase;
  /** app_service, as the worker connects. */
  service: pg.Pool;
  /** platform_admin: fixtures and reads across tenants. */
  admin: pg.Pool;
  redis: Redis;
  mail: MailSink;
  mailer: Mailer;
  clock: { now: Date };
  worker(stripe: Stripe, options?: { maxAttempts?: number; graceDays?: number; pollIntervalMs?: number; tickIntervalMs?: number }): StartableBillingWorker;
  close(): Promise<void>;
}

export const GRACE_DAYS = 7;
export const DAY_MS = 86_400_000;

export async function startWorkerKit(): Promise<WorkerKit> {
  const database = await createScratchDatabase({ migrated: true });
  const service = new pg.Pool({ connectionString: database.url('app_service'), max: 8 });
  const admin = new pg.Pool({ connectionString: database.url('platform_admin'), max: 4 });
  // Dropping the database ends connections a pool is still closing: expected then.
  for (const pool of [service, admin]) pool.on('error', () => undefined);
  const redis = new Redis(services().endpoints.redisUrl);
  const mail = new MailSink();
  await mail.start();
  const mailer = smtpMailer(`smtp://127.0.0.1:${mail.port}`, 'Tenantry <billing@tenantry.test>');
  const clock = { now: new Date() };
  const logger = pino({ level: 'silent' });
  return {
    database,
    service,
    admin,
    redis,
    mail,
    mailer,
    clock,
    worker: (stripe, options = {}) =>
      createBillingWorker({
        pool: service,
        databaseUrl: database.url('app_service'),
        stripe,
        redis,
        mailer,
        logger,
        now: () => clock.now,
        graceDays: options.graceDays ?? GRACE_DAYS,
        maxAttempts: options.maxAttempts,
        pollIntervalMs: options.pollIntervalMs,
        tickIntervalMs: options.tickIntervalMs,
      }),
    async close() {
      mailer.close();
      await mail.stop();
      redis.disconnect();
      await Promise.all([service.end(), admin.end()]);
      await database.drop();
    },
  };
}

export interface PaidPlans {
  starter: { id: string; priceId: string };
  pro: { id: string; priceId: string };
}

/** Gives the seeded paid plans Stripe prices, as `tenantry plan sync` would. */
export async function pricePlans(admin: pg.Pool): Promise<PaidPlans> {
  const starter = { id: 'starter', priceId: `price_starter${randomBytes(6).toString('hex')}` };
  const pro = { id: 'pro', priceId: `price_pro${randomBytes(6).toString('hex')}` };
  for (const plan of [starter, pro]) await admin.query('UPDATE plans SET stripe_price_id = $2 WHERE id = $1', [plan.id, plan.priceId]);
  return { starter, pro };
}

export interface BillingTenantFixture {
  tenantId: string;
  ownerEmail: string;
  customerId: string;
}

/** A tenant on the free plan with one owner, and the Stripe customer it will have. */
export async function createBillingTenant(admin: pg.Pool, label: string, options: { customerStored?: boolean } = {}): Promise<BillingTenantFixture> {
  const suffix = randomBytes(5).toString('hex');
  const ownerEmail = `owner-${label}-${suffix}@example.test`;
  const customerId = `cus_${label.replace(/[^A-Za-z0-9]/g, '')}${suffix}`;
  const client = await admin.connect();
  try {
    await client.query('BEGIN');
    const user = await client.query<{ id: string }>("INSERT INTO users (email, display_name, email_verified_at) VALUES ($1, 'Owner', now()) RETURNING id", [ownerEmail]);
    const tenant = await client.query<{ id: string }>(
      "INSERT INTO tenants (slug, name, plan_id, owner_user_id, stripe_customer_id) VALUES ($1, $2, 'free', $3, $4) RETURNING id",
      [`${label}-${suffix}`, `Tenant ${label}`, user.rows[0]!.id, options.customerStored ? customerId : null],
    );
    await client.query("INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, 'owner')", [tenant.rows[0]!.id, user.rows[0]!.id]);
    await client.query('COMMIT');
    return { tenantId: tenant.rows[0]!.id, ownerEmail, customerId };
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  } finally {
    client.release();
  }
}

export const store = (kit: WorkerKit, event: Stripe.Event): Promise<boolean> => storeStripeEvent(kit.service, event);

export interface TenantBillingState {
  plan: string;
  status: string;
  suspensionReason: string | null;
  subscription: { status: string; plan_id: string; past_due_since: Date | null; current_period_end: Date | null; cancel_at_period_end: boolean } | null;
  entitlements: Record<string, unknown>;
}

/** Everything billing decides about a tenant, read as the platform. */
export async function tenantBillingState(admin: pg.Pool, tenantId: string): Promise<TenantBillingState> {
  const tenant = await admin.query<{ plan_id: string; status: string; suspension_reason: string | null }>(
    'SELECT plan_id, status, suspension_reason FROM tenants WHERE id = $1',
    [tenantId],
  );
  const subscription = await admin.query<NonNullable<TenantBillingState['subscription']>>(
    'SELECT status, plan_id, past_due_since, current_period_end, cancel_at_period_end FROM tenant_subscriptions WHERE tenant_id = $1',
    [tenantId],
  );
  const entitlements = await admin.query<Record<string, unknown>>('SELECT * FROM app.tenant_entitlements($1)', [tenantId]);
  return {
    plan: tenant.rows[0]!.plan_id,
    status: tenant.rows[0]!.status,
    suspensionReason: tenant.rows[0]!.suspension_reason,
    subscription: subscription.rows[0] ?? null,
    entitlements: entitlements.rows[0]!,
  };
}

export interface AuditEntry {
  action: string;
  target_type: string;
  actor: string;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  reason: string | null;
}

export async function auditEntries(admin: pg.Pool, tenantId: string, targetType: 'tenants' | 'tenant_subscriptions'): Promise<AuditEntry[]> {
  const { rows } = await admin.query<AuditEntry>(
    'SELECT action, target_type, actor, before, after, reason FROM audit_log WHERE tenant_id = $1 AND target_type = $2 ORDER BY id',
    [tenantId, targetType],
  );
  return rows;
}

/** The edge purges naming a tenant, published after the stream entry `since`. */
export async function purgesFor(redis: Redis, tenantId: string, since: string): Promise<number> {
  const entries = await redis.xrange('edge:purges', `(${since}`, '+');
  return entries.filter(([, fields]) => fields.includes(tenantId)).length;
}

/** The newest stream entry id now (purges after it are new). */
export async function purgeStreamMark(redis: Redis): Promise<string> {
  const last = await redis.xrevrange('edge:purges', '+', '-', 'COUNT', 1);
  return last[0]?.[0] ?? '0-0';
}

export interface StoredEventRow {
  id: string;
  status: string;
  attempts: number;
  last_error: string | null;
  outcome: string | null;
  next_attempt_at: Date;
}

export async function eventRow(admin: pg.Pool, id: string): Promise<StoredEventRow> {
  const { rows } = await admin.query<StoredEventRow>('SELECT id, status, attempts, last_error, outcome, next_attempt_at FROM stripe_events WHERE id = $1', [id]);
  return rows[0]!;
}
