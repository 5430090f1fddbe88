import type { Pool } from 'pg';
import type Stripe from 'stripe';

/** Stripe's signature check failed: missing or malformed header, no secret matches, or too old. */
export class WebhookSignatureError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebhookSignatureError';
  }
}

/** A body whose signature holds but that is not a Stripe event Stripe would send. */
export class WebhookPayloadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebhookPayloadError';
  }
}

/**
 * What storing an event needs of it (the columns of stripe_events); the rest is Stripe's and
 * kept as it came. jsonb cannot hold U+0000, so a body with one is refused here rather than
 * by the database.
 */
function checkEnvelope(event: unknown): asserts event is Stripe.Event {
  const { id, type, created, livemode, data } = (event ?? {}) as Record<string, unknown>;
  const object = (data as { object?: unknown } | null | undefined)?.object;
  if (typeof id !== 'string' || !/^evt_[A-Za-z0-9_]{1,255}$/.test(id)) throw new WebhookPayloadError('the signed body is not a Stripe event (no evt_ id)');
  if (typeof type !== 'string' || type.length === 0 || type.length > 200) throw new WebhookPayloadError('the signed event has no type');
  if (typeof created !== 'number' || !Number.isInteger(created) || created < 0 || created > 32_503_680_000) throw new WebhookPayloadError('the signed event has no valid `created` time');
  if (typeof livemode !== 'boolean') throw new WebhookPayloadError('the signed event does not say whether it is live');
  if (typeof object !== 'object' || object === null || Array.isArray(object)) throw new WebhookPayloadError('the signed event carries no object');
}

const STALE = 'stale';

/** The SDK's reason, in a sentence of ours (its own carries paragraphs of advice). */
function signatureProblem(error: unknown, toleranceSeconds: number): string {
  const message = error instanceof Error ? error.message : String(error);
  if (/tolerance/i.test(message)) return STALE;
  if (/extract timestamp and signatures/i.test(message)) return 'the Stripe-Signature header is malformed';
  if (/No signatures found/i.test(message)) return 'no signature matches a signing secret of this endpoint';
  return message.split('\n')[0]!.slice(0, 200) || `the signature was refused (tolerance ${toleranceSeconds} s)`;
}

/**
 * Verifies the raw body against every configured signing secret (a rotation keeps two) and
 * returns the event. The SDK's check: HMAC-SHA256 over `<timestamp>.<body>`, compared in
 * constant time with every v1 signature of the header, and the timestamp within tolerance.
 * A body that is signed but is not a Stripe event (not JSON, no evt_ id, no object) is
 * refused with WebhookPayloadError: nothing Stripe sends, and nothing to store.
 */
export function verifyStripeEvent(
  stripe: Stripe,
  rawBody: Buffer,
  signatureHeader: string | undefined,
  secrets: readonly string[],
  toleranceSeconds: number,
): Stripe.Event {
  if (!signatureHeader) throw new WebhookSignatureError('the Stripe-Signature header is missing');
  let problem = 'no signing secret is configured';
  for (const secret of secrets) {
    let event: unknown;
    try {
      event = stripe.webhooks.constructEvent(rawBody, signatureHeader, secret, toleranceSeconds);
    } catch (error) {
      if (error instanceof SyntaxError) throw new WebhookPayloadError('the signed body is not JSON');
      // A stale timestamp is only reported once the signature matched a secret: that reason
      // outranks the other secrets' mismatch.
      if (problem !== STALE) problem = signatureProblem(error, toleranceSeconds);
      continue;
    }
    checkEnvelope(event);
    if (rawBody.includes('\\u0000')) throw new WebhookPayloadError('the signed event contains U+0000, which cannot be stored');
    return event;
  }
  throw new WebhookSignatureError(problem === STALE ? `the signature's timestamp is more than ${toleranceSeconds} s old (a replay?)` : problem);
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
