import Stripe from 'stripe';
import { fail } from '../../shared/src/errors/catalog.js';
import type { HttpError } from '../../shared/src/http/errors.js';
import type { Logger } from '../../shared/src/logger.js';

/**
 * The answer to a Stripe call that failed. Stripe away, slow or failing on its side (the
 * SDK has already retried with the same idempotency key) → 503, so the client retries. A
 * request Stripe refused is our mistake or our configuration's (502): it is logged with Stripe's
 * request id for the operators, and the client gets a sentence of ours, never Stripe's
 * message (which may name the key's last digits, an account or a customer). A price Stripe
 * does not know means the plan was never synced → 422 plan_not_available.
 * Anything that is not a Stripe error is rethrown to the error handler.
 */
export function stripeFailure(error: unknown, log: Logger, during: string): HttpError {
  if (!(error instanceof Stripe.errors.StripeError)) throw error;
  const details = { during, stripeType: error.type, stripeCode: error.code, stripeParam: error.param, stripeRequestId: error.requestId, statusCode: error.statusCode };
  if (
    error instanceof Stripe.errors.StripeConnectionError ||
    error instanceof Stripe.errors.StripeAPIError ||
    error instanceof Stripe.errors.StripeRateLimitError ||
    (error.statusCode ?? 0) >= 500
  ) {
    log.warn(details, 'Stripe is unavailable');
    return fail('payment_provider_unavailable');
  }
  log.error({ ...details, stripeMessage: error.message }, 'Stripe refused a request');
  if (error instanceof Stripe.errors.StripeInvalidRequestError && /price/.test(error.param ?? '')) {
    return fail('plan_not_available', "Stripe does not know this plan's price: the operators must run `tenantry plan sync`");
  }
  return fail('payment_provider_error');
}

/** Runs a Stripe call, turning its failures into the answers above. */
export async function callStripe<T>(log: Logger, during: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw stripeFailure(error, log, during);
  }
}
