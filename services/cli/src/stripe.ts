import type Stripe from 'stripe';
import { createStripeClient, stripeConfigSchema } from '../../shared/src/stripe.js';
import { cliConfig } from './config.js';
import { CliError } from './errors.js';

let stripe: Stripe | undefined;

/**
 * Stripe for the commands that talk to it (plan sync). Its settings are checked only here:
 * a missing or malformed STRIPE_SECRET_KEY is a usage error of this command, not of the CLI.
 */
export function stripeClient(): Stripe {
  if (stripe) return stripe;
  const { STRIPE_SECRET_KEY, STRIPE_API_BASE } = cliConfig();
  if (!STRIPE_SECRET_KEY) {
    throw new CliError('STRIPE_SECRET_KEY is not set — export the Stripe secret key (sk_live_… or sk_test_…) and retry', 2);
  }
  const parsed = stripeConfigSchema.safeParse({ STRIPE_SECRET_KEY, STRIPE_API_BASE: STRIPE_API_BASE || undefined });
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ');
    throw new CliError(`${problems} — fix the Stripe settings and retry`, 2);
  }
  stripe = createStripeClient(parsed.data);
  return stripe;
}
