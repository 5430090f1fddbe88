import type { Pool } from 'pg';
import type Stripe from 'stripe';

/** Stripe's signature check failed: missing or malformed header, no secret matches, or too old. */
export class WebhookSignatureError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebhookSignatureError';
  }
}

/**
 * Verifies the raw body against every configured signing secret (a rotation keeps two) and
 * returns the event. The SDK's check: HMAC-SHA256 over `<timestamp>.<body>`, compared in
 * constant time with every v1 signature of the header, and the timestamp within tolerance.
 * A body that is signed but not JSON is refused too: nothing Stripe sends.
 */
export function verifyStripeEvent(
  stripe: Stripe,
  rawBody: Buffer,
  signatureHeader: string | undefined,
  secrets: readonly string[],
  toleranceSeconds: number,
): Stripe.Event {
  if (!signatureHeader) throw new WebhookSignatureError('the Stripe-Signature header is missing');
  let lastProblem = 'no signing secret is configured';
  for (const secret of secrets) {
    try {
      return stripe.webhooks.constructEvent(rawBody, signatureHeader, secret, toleranceSeconds);
    } catch (error) {
      if (error instanceof SyntaxError) throw new WebhookSignatureError('the signed body is not JSON');
      lastProblem = error instanceof Error ? error.message : String(error);
    }
  }
  throw new WebhookSignatureError(lastProblem);
}

type WithCustomer = { customer?: string | { id: string } | null };

function idOf(value: string | { id: string } | null | undefined): string | null {
  if (!value) return null;
  return typeof value === 'string' ? value : value.id;
}

/**
 * The Stripe object an event changes the state of, for taking one object's events one at a
 * time: the customer (a tenant has one, and its subscription, invoices and checkout
 * sessions all name it), else the object itself.
 */
export function eventObjectId(event: Stripe.Event): string | null {
  const object = event.data.object as { id?: string; object?: string } & WithCustomer;
  if (object.object === 'customer') return object.id ?? null;
  return idOf(object.customer) ?? object.id ?? null;
}

/**
 * Stores a verified event once: a redelivery (Stripe retries until it gets a 2xx, and may
 * deliver twice anyway) finds the row there and changes nothing. True when it was new.
 */
export async function storeStripeEvent(pool: Pool, event: Stripe.Event): Promise<boolean> {
  const { rowCount } = await pool.query({
    name: 'billing-store-event',
    text: `INSERT INTO stripe_events (id, type, livemode, api_version, stripe_created_at, payload, object_id)
           VALUES ($1, $2, $3, $4, to_timestamp($5), $6, $7)
           ON CONFLICT (id) DO NOTHING`,
    values: [event.id, event.type, event.livemode, event.api_version, event.created, event, eventObjectId(event)],
  });
  return rowCount === 1;
}
