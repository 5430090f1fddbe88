import type { Redis } from 'ioredis';
import type { Pool } from 'pg';
import type Stripe from 'stripe';
import type { Principal } from '../../shared/src/auth/verifier.js';
import type { Logger } from '../../shared/src/logger.js';

/** Everything the HTTP app is built from; main.ts makes them from the config, tests make their own. */
export interface BillingDependencies {
  /** app_service: tenant rows inside withTenant, the rest through the billing definers. */
  pool: Pool;
  /** Only /healthz asks it here; the worker publishes edge purges on it. */
  redis: Redis;
  logger: Logger;
  stripe: Stripe;
  /** Verifies access tokens with the auth service's published keys (a TokenVerifier). */
  verifier: { verify(token: string): Principal | null };
  webhook: {
    /** Every signing secret in force (two during a rotation). */
    secrets: readonly string[];
    toleranceSeconds: number;
  };
  /** Where Checkout and the portal send the customer back: BILLING_RETURN_URL, with {host} and {result}. */
  returnUrl: string;
  /** A tenant without a verified custom domain is served at `<slug>.<baseDomain>`. */
  baseDomain: string;
}
