import { readFile } from 'node:fs/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { BUNDLED_FIXTURES, startStripeMockAnswering } from '../billing/stripe-fixtures.js';
import { uniqueSlug } from '../fixtures/seed.js';
import { createScratchDatabase, poolAs, services, type ScratchDatabase } from '../helpers/database.js';
import { cli, cliEnv, ownerEmail, purgesSince, redisClient, streamTail } from './helpers.js';

const STRIPE_KEY = 'sk_test_tenantrycli';

interface SyncReport {
  dry_run: boolean;
  plans: Array<{
    plan_id: string;
    product: { id: string; action: string };
    price: { id: string | null; action: string; unit_amount: number; currency: string; lookup_key: string };
    metered_price: { id: string | null; action: string; lookup_key: string; meter: { id: string | null; event_name: string; action: string } } | null;
    database: string;
  }>;
  skipped: string[];
}

interface StoredPlan {
  id: string;
  stripe_product_id: string | null;
  stripe_price_id: string | null;
  stripe_metered_price_id: string | null;
  updated_at: Date;
}

/** stripe-mock answering with the bundled product and price changed as `change` says (stripe-mock is stateless: a GET answers its fixture). */
async function startStripeMockWith(change: { product: Record<string, unknown>; price: Record<string, unknown> }) {
  const { resources } = JSON.parse(await readFile(BUNDLED_FIXTURES, 'utf8')) as { resources: Record<string, Record<string, unknown>> };
  return startStripeMockAnswering({ product: { ...resources.product, ...change.product }, price: { ...resources.price, ...change.price } });
}

describe('plan sync: Stripe products and prices for every paid plan', () => {
  let scratch: ScratchDatabase;
  let admin: pg.Pool;
  const env = (apiBase: string, extra: Record<string, string> = {}) =>
    cliEnv({ PLATFORM_ADMIN_DATABASE_URL: scratch.url('platform_admin'), STRIPE_SECRET_KEY: STRIPE_KEY, STRIPE_API_BASE: apiBase, ...extra });
  const stored = async (): Promise<StoredPlan[]> =>
    (
      await admin.query<StoredPlan>(
        `SELECT id, stripe_product_id, stripe_price_id, stripe_metered_price_id, updated_at FROM plans ORDER BY id`,
      )
    ).rows;

  beforeAll(async () => {
    // A catalogue of its own: sync writes every plan's Stripe ids, which other suites read.
    scratch = await createScratchDatabase({ migrated: true });
    admin = new pg.Pool({ connectionString: scratch.url('platform_admin'), max: 2 });
  });
  afterAll(async () => {
    await admin?.end();
    await scratch?.drop();
  });

  test('without STRIPE_SECRET_KEY the command is a usage error that names it, and nothing is written', async () => {
    const before = await stored();
    const result = await cli(['plan', 'sync'], { env: cliEnv({ PLATFORM_ADMIN_DATABASE_URL: scratch.url('platform_admin') }) });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('STRIPE_SECRET_KEY is not set');
    expect(await stored()).toEqual(before);
    const publishable = await cli(['plan', 'sync'], {
      env: cliEnv({ PLATFORM_ADMIN_DATABASE_URL: scratch.url('platform_admin'), STRIPE_SECRET_KEY: 'pk_test_publishable' }),
    });
    expect(publishable.code).toBe(2);
    expect(publishable.stderr).toContain('must be a Stripe secret or restricted key');
    // The other commands do not need it.
    expect((await cli(['plan', 'list', '--json'], { env: cliEnv({ PLATFORM_ADMIN_DATABASE_URL: scratch.url('platform_admin') }) })).code).toBe(0);
  });

  test('a first run against an empty Stripe creates products and prices (validated by stripe-mock) and stores their ids; --dry-run writes nothing', async () => {
    const { stripeApiBase } = services().endpoints;
    // A plan with a meter gets a metered price on its Billing Meter too.
    await admin.query(`UPDATE plans SET meter_event_name = 'tenantry.api_requests', meter_metric = 'api_requests' WHERE id = 'pro'`);

    const before = await stored();
    const dry = await cli(['plan', 'sync', '--dry-run', '--json'], { env: env(stripeApiBase) });
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.json<SyncReport>().dry_run).toBe(true);
    expect(await stored()).toEqual(before);

    const result = await cli(['plan', 'sync', '--json'], { env: env(stripeApiBase) });
    expect(result.code, result.stderr).toBe(0);
    const report = result.json<SyncReport>();
    expect(report.skipped.sort()).toEqual(['enterprise', 'free']);
    expect(report.plans.map((plan) => plan.plan_id).sort()).toEqual(['pro', 'starter']);
    // The bundled fixtures hold no price under our lookup keys and no meter of our event name: all are created.
    for (const plan of report.plans) {
      expect(plan.product.id).toBe(`tenantry_${plan.plan_id}`);
      expect(plan.price.action).toBe('create');
      expect(plan.price.id).toMatch(/^price_/);
      expect(plan.database).toBe('update');
    }
    const pro = report.plans.find((plan) => plan.plan_id === 'pro')!;
    expect(pro.price).toMatchObject({ unit_amount: 9900, currency: 'usd', lookup_key: 'pro' });
    expect(pro.metered_price).toMatchObject({ action: 'create', lookup_key: 'pro_metered', meter: { event_name: 'tenantry.api_requests', action: 'create' } });
    expect(pro.metered_price!.id).toMatch(/^price_/);
    expect(report.plans.find((plan) => plan.plan_id === 'starter')!.metered_price).toBeNull();

    const after = Object.fromEntries((await stored()).map((plan) => [plan.id, plan]));
    expect(after.pro).toMatchObject({ stripe_product_id: 'tenantry_pro', stripe_price_id: pro.price.id, stripe_metered_price_id: pro.metered_price!.id });
    expect(after.starter).toMatchObject({
      stripe_product_id: 'tenantry_starter',
      stripe_price_id: report.plans.find((plan) => plan.plan_id === 'starter')!.price.id,
      stripe_metered_price_id: null,
    });
    expect(after.free).toMatchObject({ stripe_product_id: null, stripe_price_id: null });
    expect(after.enterprise).toMatchObject({ stripe_product_id: null, stripe_price_id: null });
  });

  test('when Stripe already holds the price under the lookup key, sync keeps it; a second run changes nothing in the database', async () => {
    // Stripe as a first run leaves it: the product and the monthly price of the one paid plan.
    await admin.query(`UPDATE plans SET monthly_price_cents = 0, meter_event_name = NULL, meter_metric = NULL WHERE id = 'pro'`);
    const mock = await startStripeMockWith({
      product: { id: 'tenantry_starter', name: 'Starter', description: 'For small teams', active: true },
      price: {
        id: 'price_starter_in_stripe',
        active: true,
        lookup_key: 'starter',
        product: 'tenantry_starter',
        currency: 'usd',
        unit_amount: 2900,
        unit_amount_decimal: '2900',
        type: 'recurring',
        recurring: { interval: 'month', interval_count: 1, meter: null, usage_type: 'licensed', trial_period_days: null },
      },
    });
    try {
      const first = await cli(['plan', 'sync', '--json'], { env: env(mock.apiBase) });
      expect(first.code, first.stderr).toBe(0);
      expect(first.json<SyncReport>().plans).toEqual([
        {
          plan_id: 'starter',
          product: { id: 'tenantry_starter', action: 'keep' },
          price: { id: 'price_starter_in_stripe', action: 'keep', unit_amount: 2900, currency: 'usd', lookup_key: 'starter' },
          metered_price: null,
          database: 'update',
        },
      ]);
      const afterFirst = await stored();
      expect(afterFirst.find((plan) => plan.id === 'starter')).toMatchObject({ stripe_price_id: 'price_starter_in_stripe' });

      const second = await cli(['plan', 'sync'], { env: env(mock.apiBase) });
      expect(second.code, second.stderr).toBe(0);
      expect(second.stdout).toContain('starter: product tenantry_starter kept, price price_starter_in_stripe kept, database unchanged');
      // Not one row touched: updated_at (a trigger stamps every UPDATE) is what it was.
      expect(await stored()).toEqual(afterFirst);
    } finally {
      await mock.stop();
    }
  });

  test('a changed amount is a new price (the stored one no longer matches), and a renamed plan updates the product', async () => {
    const mock = await startStripeMockWith({
      product: { id: 'tenantry_starter', name: 'Starter', description: 'For small teams', active: true },
      price: { id: 'price_starter_in_stripe', active: true, lookup_key: 'starter', product: 'tenantry_starter', currency: 'usd', unit_amount: 2900 },
    });
    try {
      await admin.query(`UPDATE plans SET monthly_price_cents = 3900, name = 'Starter+' WHERE id = 'starter'`);
      const result = await cli(['plan', 'sync', '--json'], { env: env(mock.apiBase) });
      expect(result.code, result.stderr).toBe(0);
      const [starter] = result.json<SyncReport>().plans;
      expect(starter!.product.action).toBe('update');
      expect(starter!.price.action).toBe('create');
      expect(starter!.price.id).not.toBe('price_starter_in_stripe');
      expect((await stored()).find((plan) => plan.id === 'starter')!.stripe_price_id).toBe(starter!.price.id);
    } finally {
      await mock.stop();
    }
  });
});

describe('plan list and plan set', () => {
  const admin = poolAs('platform_admin', 2);
  const redis = redisClient();
  afterAll(async () => {
    await admin.end();
    redis.disconnect();
  });

  async function newTenant(label: string): Promise<{ id: string; slug: string }> {
    const slug = uniqueSlug(label);
    const created = await cli(['tenant', 'create', label, '--slug', slug, '--owner', await ownerEmail(label), '--json']);
    expect(created.code, created.stderr).toBe(0);
    return { id: created.json<{ id: string }>().id, slug };
  }

  test('plan list shows every plan with its price, limits, features, visibility and Stripe fields', async () => {
    const result = await cli(['plan', 'list', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const plans = result.json<Array<Record<string, unknown>>>();
    const enterprise = plans.find((plan) => plan.id === 'enterprise');
    expect(enterprise).toMatchObject({ is_public: false, monthly_price_cents: 0, max_users: null, features: { audit_export: true } });
    for (const key of ['stripe_price_id', 'stripe_product_id', 'stripe_metered_price_id', 'meter_event_name', 'meter_metric', 'rate_limit_rps', 'currency']) {
      expect(Object.keys(enterprise!)).toContain(key);
    }
    const table = await cli(['plan', 'list']);
    expect(table.stdout).toMatch(/^ID\s+NAME\s+PRICE/m);
    expect(table.stdout).toMatch(/^starter\s+Starter\s+29\.00 USD\/month/m);
  });

  test('plan set moves a tenant to a non-public plan: one audit entry with the reason and actor, an edge purge, and a no-op the second time', async () => {
    const tenant = await newTenant('plan-set');
    const tail = await streamTail(redis);
    const result = await cli(['plan', 'set', tenant.slug, 'enterprise', '--reason', 'enterprise contract #42', '--json']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.json()).toMatchObject({ tenant_id: tenant.id, plan_id: 'enterprise', previous_plan_id: 'free', changed: true, subscription: null });

    const { rows: entries } = await admin.query<{ actor: string; reason: string; before: { plan_id: string }; after: { plan_id: string } }>(
      `SELECT actor, reason, before, after FROM audit_log WHERE tenant_id = $1 AND action = 'tenants.update' ORDER BY id`,
      [tenant.id],
    );
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ reason: 'enterprise contract #42', before: { plan_id: 'free' }, after: { plan_id: 'enterprise' } });
    expect(entries[0]!.actor).toMatch(/^cli:/);
    expect(await purgesSince(redis, tail)).toContainEqual({ tenant_id: tenant.id, slug: tenant.slug });
    const { rows: entitlements } = await admin.query(`SELECT plan_id, rate_limit_rps FROM app.tenant_entitlements($1)`, [tenant.id]);
    expect(entitlements[0]).toEqual({ plan_id: 'enterprise', rate_limit_rps: 200 });

    const tailAgain = await streamTail(redis);
    const again = await cli(['plan', 'set', tenant.slug, 'enterprise', '--reason', 'again']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('already on plan enterprise: nothing changed');
    const { rowCount } = await admin.query(`SELECT 1 FROM audit_log WHERE tenant_id = $1 AND action = 'tenants.update'`, [tenant.id]);
    expect(rowCount).toBe(1);
    expect(await purgesSince(redis, tailAgain)).toEqual([]);
  });

  test('an unknown plan, an unknown tenant, a missing or empty reason are usage errors (exit 2) and change nothing', async () => {
    const tenant = await newTenant('plan-set-bad');
    const unknownPlan = await cli(['plan', 'set', tenant.slug, 'platinum', '--reason', 'x']);
    expect(unknownPlan.code).toBe(2);
    // Other suites add plans to the shared database: the seeded ones are named, in order, among them.
    expect(unknownPlan.stderr).toMatch(/plan 'platinum' does not exist — choose one of free, (.+, )?starter, pro, enterprise/);
    const unknownTenant = await cli(['plan', 'set', uniqueSlug('nobody'), 'pro', '--reason', 'x']);
    expect(unknownTenant.code).toBe(2);
    expect(unknownTenant.stderr).toContain('not found');
    const noReason = await cli(['plan', 'set', tenant.slug, 'pro']);
    expect(noReason.code).toBe(2);
    expect(noReason.stderr).toContain("required option '--reason <text>' not specified");
    const emptyReason = await cli(['plan', 'set', tenant.slug, 'pro', '--reason', '  ']);
    expect(emptyReason.code).toBe(2);
    const { rows } = await admin.query(`SELECT plan_id FROM tenants WHERE id = $1`, [tenant.id]);
    expect(rows[0]).toEqual({ plan_id: 'free' });
    const { rowCount } = await admin.query(`SELECT 1 FROM audit_log WHERE tenant_id = $1 AND action = 'tenants.update'`, [tenant.id]);
    expect(rowCount).toBe(0);
  });

  test('a refused custom domain on the free plan is explained, and works after plan set', async () => {
    const tenant = await newTenant('plan-feature');
    const domain = `${tenant.slug}.example.test`;
    const refused = await cli(['domain', 'add', tenant.slug, domain]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`the plan of tenant '${tenant.slug}' does not include custom domains`);
    expect((await cli(['plan', 'set', tenant.slug, 'starter', '--reason', 'upgrade by support'])).code).toBe(0);
    const added = await cli(['domain', 'add', tenant.slug, domain]);
    expect(added.code, added.stderr).toBe(0);
  });
});
