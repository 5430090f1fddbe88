import { z } from 'zod';
import { postgresUrl, switchOn, tokenVerificationShape } from '../../shared/src/config.js';
import { stripeConfigSchema } from '../../shared/src/stripe.js';

const webhookSecrets = z
  .string()
  .transform((text) => text.split(',').map((secret) => secret.trim()).filter(Boolean))
  .pipe(z.array(z.string().regex(/^whsec_[A-Za-z0-9+/=_-]+$/, 'each secret must be a Stripe signing secret (whsec_…)')).min(1, 'name at least one secret'));

/** Every variable the billing service reads, declared once. */
export const billingConfigSchema = z.object({
  /** app_service's URL: tenant rows inside withTenant, the rest through the billing definers. */
  DATABASE_URL: postgresUrl,
  /** Edge purges go out on Redis (the edge applies a plan change within a second). */
  REDIS_URL: z.string().url(),
  /**
   * A direct connection for the worker's LISTEN stripe_events (a pooler in transaction mode,
   * as PgBouncer runs in production, cannot hold a LISTEN). Unset: DATABASE_URL.
   */
  BILLING_LISTEN_DATABASE_URL: postgresUrl.optional(),
  BILLING_HOST: z.string().default('127.0.0.1'),
  BILLING_PORT: z.coerce.number().int().min(1).max(65535).default(4003),
  ...stripeConfigSchema.shape,
  /**
   * The endpoint's signing secrets, comma-separated: during a rotation both the old and the
   * new one, so no event is refused while Stripe switches.
   */
  STRIPE_WEBHOOK_SECRETS: webhookSecrets,
  /** How old a signature's timestamp may be (replays older than this are refused). */
  STRIPE_WEBHOOK_TOLERANCE_SECONDS: z.coerce.number().int().min(1).max(3600).default(300),
  /**
   * Where Checkout and the portal send the customer back: `{host}` becomes the tenant's own
   * host (its primary verified domain, else `<slug>.<BASE_DOMAIN>`); the edge serves no
   * pages, so this is the frontend's page. `{result}` becomes `success` or `cancel` (from
   * Checkout) or `portal` (back from the Customer Portal).
   */
  BILLING_RETURN_URL: z
    .string()
    .refine((value) => value.includes('{host}'), 'must contain {host}, the tenant\'s own host')
    .default('https://{host}/settings/billing?checkout={result}'),
  BASE_DOMAIN: z.string().min(1),
  /** Past due this long, the tenant is suspended (reason `billing`) until an invoice is paid. */
  BILLING_GRACE_DAYS: z.coerce.number().min(0).max(90).default(7),
  /** Run the inbox worker in this process (one or more replicas may; they take turns per object). */
  BILLING_WORKER: switchOn(),
  /**
   * Run the usage worker in this process: it moves the edge's counts (Redis stream
   * usage:api) into tenant_usage exactly once, samples users.count hourly and mails the
   * quota notices. Replicas may all run it; an advisory lock has them take turns.
   */
  BILLING_USAGE_WORKER: switchOn(),
  /** How often the usage worker drains the stream. */
  BILLING_USAGE_INTERVAL_MS: z.coerce.number().int().min(100).max(60_000).default(1_000),
  /** Stream entries per ingest transaction. */
  BILLING_USAGE_BATCH_SIZE: z.coerce.number().int().min(1).max(100_000).default(1_000),
  ...tokenVerificationShape,
  SMTP_URL: z.string().url(),
  MAIL_FROM: z.string().min(3).default('Tenantry <no-reply@tenantry.local>'),
  LOG_LEVEL: z.string().default('info'),
});

export type BillingConfig = z.infer<typeof billingConfigSchema>;
