import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import { Redis } from 'ioredis';
import pg from 'pg';
import { pino } from 'pino';
import type Stripe from 'stripe';
import request, { type Test } from 'supertest';
import { buildBillingApp } from '../../services/billing/src/app.js';
import type { BillingDependencies } from '../../services/billing/src/deps.js';
import { KeyRing } from '../../services/auth/src/keys.js';
import { TokenIssuer, type TokenSubject } from '../../services/auth/src/tokens.js';
import { TokenVerifier } from '../../services/shared/src/auth/verifier.js';
import type { Role } from '../../services/shared/src/permissions.js';
import { createStripeClient } from '../../services/shared/src/stripe.js';
import { hex, uniqueSlug } from '../fixtures/seed.js';
import type { LoginRole } from '../../services/shared/src/db/bootstrap.js';
import { poolAs, services } from '../helpers/database.js';

export const ISSUER = 'https://auth.tenantry.test';
export const AUDIENCE = 'tenantry-test';
export const BASE_DOMAIN = 'tenantry.test';
export const RETURN_URL = 'https://{host}/settings/billing?checkout={result}';
/** The endpoint's signing secret, and the one a rotation adds beside it: both in force. */
export const WEBHOOK_SECRET = 'whsec_billing_test_current_0123456789';
export const ROTATED_WEBHOOK_SECRET = 'whsec_billing_test_next_9876543210';
export const TOLERANCE_SECONDS = 300;
/** A stripe-mock accepts any well-formed key; this one is what a leak would show. */
export const STRIPE_SECRET_KEY = 'sk_test_tenantryBillingHarnessKey4242';

/** A Stripe client on the stripe-mock of the test environment (or on `apiBase`). */
export function testStripe(apiBase = services().endpoints.stripeApiBase, options: { maxNetworkRetries?: number; timeoutMs?: number } = {}): Stripe {
  return createStripeClient({ STRIPE_SECRET_KEY, STRIPE_API_BASE: apiBase }, options);
}

/** A request the service sent to Stripe, as stripe-mock received it. */
export interface StripeRequest {
  method: string;
  path: string;
  idempotencyKey: string | undefined;
  /** The form body, flattened as Stripe encodes it: `line_items[0][price]` → value. */
  params: Record<string, string>;
}

export interface RecordingStripe {
  stripe: Stripe;
  requests: StripeRequest[];
  close(): Promise<void>;
}

/**
 * A Stripe client whose requests pass through a recorder on their way to stripe-mock, which
 * validates and answers them as usual: the tests read what the service asked Stripe for
 * (stripe-mock is stateless and keeps nothing).
 */
export async function recordingStripe(apiBase = services().endpoints.stripeApiBase): Promise<RecordingStripe> {
  const requests: StripeRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      const header = req.headers['idempotency-key'];
      requests.push({ method: req.method!, path: req.url!, idempotencyKey: Array.isArray(header) ? header[0] : header, params: Object.fromEntries(new URLSearchParams(body)) });
      const headers = Object.fromEntries(Object.entries(req.headers).filter(([name]) => !['host', 'content-length', 'connection'].includes(name))) as Record<string, string>;
      fetch(new URL(req.url!, apiBase), { method: req.method, headers, body: req.method === 'GET' ? undefined : body })
        .then(async (answer) => {
          res.writeHead(answer.status, { 'Content-Type': answer.headers.get('content-type') ?? 'application/json', 'Request-Id': answer.headers.get('request-id') ?? '' });
          res.end(Buffer.from(await answer.arrayBuffer()));
        })
        .catch(() => res.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const stripe = testStripe(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  return {
    stripe,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export interface DeliveryOptions {
  /** Signs with this secret (default WEBHOOK_SECRET). */
  secret?: string;
  /** Unix seconds the signature claims (default now). */
  timestamp?: number;
  /** Sends this Stripe-Signature header instead of a computed one; null: none at all. */
  signature?: string | null;
}

export interface BillingHarness {
  app: Express;
  deps: BillingDependencies;
  /** app_service, as the service connects. */
  pool: pg.Pool;
  /** platform_admin: fixtures and checks that RLS would hide. */
  admin: pg.Pool;
  redis: Redis;
  stripe: Stripe;
  /** Issues access tokens the app's verifier (fed from a served JWKS) accepts. */
  tokens: TokenIssuer;
  /** An access token for a member of a tenant, as the auth service would sign it. */
  token(userId: string, tenantId: string, role: Role, extra?: Pick<TokenSubject, 'apiKeyId' | 'readOnly'>): string;
  /** POSTs `event` (an object, or the exact body) to the webhook, signed as Stripe signs. */
  deliver(event: object | string, options?: DeliveryOptions): Test;
  close(): Promise<void>;
}

/** The signature header Stripe would send for `payload`, by the SDK's own test helper. */
export function stripeSignature(stripe: Stripe, payload: string, { secret = WEBHOOK_SECRET, timestamp = Math.floor(Date.now() / 1000) }: Pick<DeliveryOptions, 'secret' | 'timestamp'> = {}): string {
  return stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp });
}

/** POSTs a signed event to any app serving POST /billing/webhooks/stripe (the harness's, or a bench's). */
export function deliver(app: Express, stripe: Stripe, event: object | string, options: DeliveryOptions = {}): Test {
  const payload = typeof event === 'string' ? event : JSON.stringify(event);
  const signature = options.signature === undefined ? stripeSignature(stripe, payload, options) : options.signature;
  const post = request(app).post('/billing/webhooks/stripe').set('Content-Type', 'application/json');
  if (signature !== null) post.set('Stripe-Signature', signature);
  return post.send(payload);
}

/** Serves a JWKS the way the auth service does, so the app verifies tokens with TokenVerifier.fromUrl. */
async function serveJwks(keys: KeyRing): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify(keys.jwks()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/auth/.well-known/jwks.json` };
}

export interface HarnessOptions {
  /** Another database than the shared one (a scratch database's `url`), e.g. for suites that run a worker. */
  databaseUrl?: (role: LoginRole) => string;
  stripe?: Stripe;
  secrets?: readonly string[];
  toleranceSeconds?: number;
}

/** The billing app on the shared test Postgres and Redis, stripe-mock, and a real token verifier. No worker: tests start one on `deps`. */
export async function startBillingHarness(options: HarnessOptions = {}): Promise<BillingHarness> {
  const onDatabase = (role: LoginRole, max: number) => (options.databaseUrl ? new pg.Pool({ connectionString: options.databaseUrl(role), max }) : poolAs(role, max));
  const pool = onDatabase('app_service', 10);
  const admin = onDatabase('platform_admin', 4);
  const redis = new Redis(services().endpoints.redisUrl, { maxRetriesPerRequest: 1 });
  const keys = KeyRing.generate();
  const jwks = await serveJwks(keys);
  const verifier = await TokenVerifier.fromUrl(jwks.url, { issuer: ISSUER, audience: AUDIENCE });
  const tokens = new TokenIssuer({ keys, issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 900 });
  const stripe = options.stripe ?? testStripe();
  const deps: BillingDependencies = {
    pool,
    redis,
    logger: pino({ level: 'silent' }),
    stripe,
    verifier,
    webhook: { secrets: options.secrets ?? [WEBHOOK_SECRET, ROTATED_WEBHOOK_SECRET], toleranceSeconds: options.toleranceSeconds ?? TOLERANCE_SECONDS },
    returnUrl: RETURN_URL,
    baseDomain: BASE_DOMAIN,
  };
  const app = buildBillingApp(deps);
  return {
    app,
    deps,
    pool,
    admin,
    redis,
    stripe,
    tokens,
    token: (userId, tenantId, role, extra = {}) => tokens.sign({ userId, tenant: { id: tenantId, role }, ...extra }),
    deliver: (event, deliveryOptions) => deliver(app, stripe, event, deliveryOptions),
    async close() {
      await new Promise<void>((resolve) => jwks.server.close(() => resolve()));
      await Promise.all([pool.end(), admin.end(), redis.quit()]);
    },
  };
}

/** A Stripe event as Stripe sends it (API 2026-08-26.dahlia): `object` under data.object. */
export function stripeEvent(type: string, object: Record<string, unknown>, { id = `evt_${hex(12)}`, created = Math.floor(Date.now() / 1000), previousAttributes }: { id?: string; created?: number; previousAttributes?: Record<string, unknown> } = {}): Stripe.Event {
  return {
    id,
    object: 'event',
    api_version: '2026-08-26.dahlia',
    created,
    data: { object, ...(previousAttributes && { previous_attributes: previousAttributes }) },
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type,
  } as unknown as Stripe.Event;
}

export interface PlanOptions {
  isPublic?: boolean;
  priceCents?: number;
  /** null: never synced to Stripe. Default: a fresh price_… id. */
  stripePriceId?: string | null;
  stripeMeteredPriceId?: string | null;
  features?: Record<string, boolean>;
  maxUsers?: number | null;
  rateLimitRps?: number;
}

/** A plan of its own (plans are shared by every test file): returns its id. */
export async function createPlan(admin: pg.Pool, label: string, options: PlanOptions = {}): Promise<string> {
  const id = `${label.toLowerCase().replace(/[^a-z0-9]+/g, '-').slice(0, 16)}-${hex(5)}`;
  await admin.query(
    `INSERT INTO plans (id, name, monthly_price_cents, stripe_price_id, stripe_metered_price_id, features, is_public, max_users, rate_limit_rps)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
    [
      id,
      `Plan ${id}`,
      options.priceCents ?? 4900,
      options.stripePriceId === undefined ? `price_${hex(8)}` : options.stripePriceId,
      options.stripeMeteredPriceId ?? null,
      options.features ?? { api_keys: true, custom_domains: true },
      options.isPublic ?? true,
      options.maxUsers === undefined ? 25 : options.maxUsers,
      options.rateLimitRps ?? 30,
    ],
  );
  return id;
}

export interface BillingTenant {
  tenantId: string;
  slug: string;
  name: string;
  /** One member of each role, and a member granted billing:write. */
  users: Record<Role | 'billingWriter', string>;
}

export interface SeedOptions {
  plan?: string;
  stripeCustomerId?: string | null;
  /** A verified primary custom domain (the tenant's host while its plan has custom_domains). */
  customDomain?: string;
  status?: 'active' | 'suspended';
  suspensionReason?: string;
}

/**
 * A tenant with an owner, an admin, a member, a guest and a member granted billing:write,
 * created as platform_admin in one transaction (the user limit is raised on the tenant so
 * the free plan holds all five).
 */
export async function seedBillingTenant(admin: pg.Pool, label: string, options: SeedOptions = {}): Promise<BillingTenant> {
  const slug = uniqueSlug(label);
  const name = `Tenant ${slug}`;
  const client = await admin.connect();
  try {
    await client.query('BEGIN');
    await client.query("SELECT set_config('tenantry.actor', $1, true)", [`seed:${slug}`]);
    const roles = ['owner', 'admin', 'member', 'guest', 'billingWriter'] as const;
    const created = await client.query<{ id: string }>(
      `INSERT INTO users (email, display_name, email_verified_at)
       SELECT format('%s-%s@example.test', r, $1::text), initcap(r), now() FROM unnest($2::text[]) WITH ORDINALITY AS x(r, n) ORDER BY n
       RETURNING id`,
      [slug, roles.map((role) => role.toLowerCase())],
    );
    const users = Object.fromEntries(roles.map((role, index) => [role, created.rows[index]!.id])) as BillingTenant['users'];
    const tenant = await client.query<{ id: string }>(
      `INSERT INTO tenants (slug, name, plan_id, owner_user_id, max_users, stripe_customer_id) VALUES ($1, $2, $3, $4, 10, $5) RETURNING id`,
      [slug, name, options.plan ?? 'free', users.owner, options.stripeCustomerId ?? null],
    );
    const tenantId = tenant.rows[0]!.id;
    await client.query(
      `INSERT INTO tenant_members (tenant_id, user_id, role, permissions, invited_by) VALUES
         ($1, $2, 'owner', '{}', NULL), ($1, $3, 'admin', '{}', $2), ($1, $4, 'member', '{}', $2),
         ($1, $5, 'guest', '{}', $2), ($1, $6, 'member', '{billing:write}', $2)`,
      [tenantId, users.owner, users.admin, users.member, users.guest, users.billingWriter],
    );
    if (options.customDomain) {
      // The feature trigger binds every writer: the domain is added under an override that
      // is then taken back, as for a tenant that had the feature and lost it.
      await client.query(`UPDATE tenants SET feature_overrides = '{"custom_domains": true}' WHERE id = $1`, [tenantId]);
      await client.query('INSERT INTO tenant_domains (tenant_id, domain, is_primary, verified_at) VALUES ($1, $2, true, now())', [tenantId, options.customDomain]);
      await client.query(`UPDATE tenants SET feature_overrides = '{}' WHERE id = $1`, [tenantId]);
    }
    if (options.status === 'suspended') {
      await client.query('UPDATE tenants SET status = $2, suspension_reason = $3 WHERE id = $1', [tenantId, 'suspended', options.suspensionReason ?? 'billing']);
    }
    await client.query('COMMIT');
    return { tenantId, slug, name, users };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

/** Gives a tenant a subscription row as the worker would have stored it. */
export async function seedSubscription(admin: pg.Pool, tenantId: string, { plan, status, customerId = `cus_${hex(8)}` }: { plan: string; status: string; customerId?: string }): Promise<{ subscriptionId: string; customerId: string }> {
  const subscriptionId = `sub_${hex(8)}`;
  await admin.query(
    `INSERT INTO tenant_subscriptions (tenant_id, plan_id, status, stripe_customer_id, stripe_subscription_id, current_period_start, current_period_end)
     VALUES ($1, $2, $3, $4, $5, now(), now() + interval '30 days')`,
    [tenantId, plan, status, customerId, subscriptionId],
  );
  return { subscriptionId, customerId };
}

export const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

/** A webhook secret of its own, for tests that must not share the harness's. */
export const freshWebhookSecret = (): string => `whsec_${randomBytes(18).toString('base64url').replace(/-/g, 'A')}`;

/** The one error shape with `code`, and no stack anywhere. */
export function expectError(body: unknown, code: string): void {
  const error = (body as { error?: { code?: unknown; message?: unknown } }).error;
  if (!error || error.code !== code || typeof error.message !== 'string') throw new Error(`expected error ${code}, got ${JSON.stringify(body)}`);
  if (JSON.stringify(body).includes('    at ')) throw new Error('a stack trace reached the client');
  if (Object.keys(body as object).length !== 1 || Object.keys(error).length !== 2) throw new Error(`unexpected error shape ${JSON.stringify(body)}`);
}
