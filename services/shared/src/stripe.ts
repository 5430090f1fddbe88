import Stripe from 'stripe';
import { z } from 'zod';

/**
 * The Stripe API version every request and every webhook payload uses: the version the
 * installed `stripe` package is generated for (stripe 22.6.x), and the one stripe-mock
 * v0.203.0 validates against. The webhook endpoint in the Stripe dashboard must be created
 * with this version, or Stripe sends payloads of another shape.
 */
export const STRIPE_API_VERSION = '2026-08-26.dahlia' as const satisfies Stripe.LatestApiVersion;

/** The settings every Stripe caller (the billing service, the CLI) reads. */
export const stripeConfigSchema = z.object({
  STRIPE_SECRET_KEY: z.string().regex(/^(sk|rk)_(test|live)_[A-Za-z0-9]+$/, 'must be a Stripe secret or restricted key (sk_… or rk_…)'),
  /** Another Stripe-compatible API (stripe-mock in tests and in the native stack); unset: api.stripe.com. */
  STRIPE_API_BASE: z.string().url().optional(),
});
export type StripeConfig = z.infer<typeof stripeConfigSchema>;

export function createStripeClient(config: StripeConfig, options: { maxNetworkRetries?: number; timeoutMs?: number } = {}): Stripe {
  const base = config.STRIPE_API_BASE ? new URL(config.STRIPE_API_BASE) : undefined;
  return new Stripe(config.STRIPE_SECRET_KEY, {
    apiVersion: STRIPE_API_VERSION,
    // The SDK retries network errors and 409/429/5xx with backoff, reusing the request's
    // idempotency key, so a retried create never creates twice.
    maxNetworkRetries: options.maxNetworkRetries ?? 2,
    timeout: options.timeoutMs ?? 10_000,
    ...(base && {
      host: base.hostname,
      port: Number(base.port || (base.protocol === 'https:' ? 443 : 80)),
      protocol: base.protocol === 'https:' ? 'https' : 'http',
    }),
    appInfo: { name: 'tenantry' },
  });
}

/** The id of a Stripe reference, which the API gives as an id or, expanded, as the object. */
export function stripeRefId(value: string | { id: string } | null | undefined): string | null {
  if (!value) return null;
  return typeof value === 'string' ? value : value.id;
}

/** A Stripe timestamp (Unix seconds) as a Date; null stays null. */
export function fromStripeTime(seconds: number | null | undefined): Date | null {
  return seconds === null || seconds === undefined ? null : new Date(seconds * 1000);
}
