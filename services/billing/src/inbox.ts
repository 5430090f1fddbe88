import type { Pool } from 'pg';
import type Stripe from 'stripe';
import { pgError } from '../../shared/src/errors/database.js';
import { stripeRefId } from '../../shared/src/stripe.js';

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


/**
 * The Stripe object an event changes the state of, for taking one object's events one at a
 * time: the customer (a tenant has one, and its subscription, invoices and checkout
 * sessions all name it), else the object itself.
 */
export function eventObjectId(event: Stripe.Event): string | null {
  const object = event.data.object as { id?: string; object?: string } & WithCustomer;
  if (object.object === 'customer') return object.id ?? null;
  return stripeRefId(object.customer) ?? object.id ?? null;
}

/** A verified event and the exact JSON it came as (stored as sent, not serialised again). */
export interface ReceivedEvent {
  event: Stripe.Event;
  json: string;
}

/**
 * Stores verified events once each, in one statement: a redelivery (Stripe retries until it
 * gets a 2xx, and may deliver twice anyway) finds the row there and changes nothing. Returns
 * the ids that were new.
 */
export async function storeStripeEvents(pool: Pool, received: readonly ReceivedEvent[]): Promise<Set<string>> {
  const columns = { id: [] as string[], type: [] as string[], livemode: [] as boolean[], apiVersion: [] as (string | null)[], created: [] as number[], payload: [] as string[], objectId: [] as (string | null)[] };
  const seen = new Set<string>();
  for (const { event, json } of received) {
    if (seen.has(event.id)) continue;
    seen.add(event.id);
    columns.id.push(event.id);
    columns.type.push(event.type);
    columns.livemode.push(event.livemode);
    columns.apiVersion.push(event.api_version ?? null);
    columns.created.push(event.created);
    columns.payload.push(json);
    columns.objectId.push(eventObjectId(event));
  }
  const { rows } = await pool.query<{ id: string }>({
    name: 'billing-store-events',
    text: `INSERT INTO stripe_events (id, type, livemode, api_version, stripe_created_at, payload, object_id)
           SELECT id, type, livemode, api_version, to_timestamp(created), payload, object_id
           FROM unnest($1::text[], $2::text[], $3::boolean[], $4::text[], $5::bigint[], $6::jsonb[], $7::text[])
             AS e(id, type, livemode, api_version, created, payload, object_id)
           ON CONFLICT (id) DO NOTHING
           RETURNING id`,
    values: [columns.id, columns.type, columns.livemode, columns.apiVersion, columns.created, columns.payload, columns.objectId],
  });
  return new Set(rows.map((row) => row.id));
}

/** One event, as storeStripeEvents stores it; true when it was new. */
export async function storeStripeEvent(pool: Pool, event: Stripe.Event): Promise<boolean> {
  return (await storeStripeEvents(pool, [{ event, json: JSON.stringify(event) }])).has(event.id);
}

interface Waiting extends ReceivedEvent {
  resolve: (stored: boolean) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit for the webhook route. Each acknowledgement must wait for its event to be
 * committed, and a commit per delivery is what bounds the inbox (bench:billing). Deliveries
 * that arrive while earlier inserts are in flight wait together and are stored by the next
 * insert, in one statement and one commit; a lone delivery is stored at once, so batching
 * never adds latency, only takes it away under load.
 */
export class InboxWriter {
  private readonly waiting: Waiting[] = [];
  private inFlight = 0;

  constructor(
    private readonly pool: Pool,
    private readonly options: { maxInFlight: number; maxBatch: number } = { maxInFlight: 4, maxBatch: 64 },
  ) {}

  store(received: ReceivedEvent): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ ...received, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.options.maxInFlight && this.waiting.length > 0) {
      const batch = this.waiting.splice(0, this.options.maxBatch);
      this.inFlight += 1;
      void this.write(batch).finally(() => {
        this.inFlight -= 1;
        this.pump();
      });
    }
  }

  private async write(batch: Waiting[]): Promise<void> {
    try {
      const stored = await storeStripeEvents(this.pool, batch);
      // Of two deliveries of one event in one batch, the first is the new one.
      const answered = new Set<string>();
      for (const waiting of batch) {
        const isNew = stored.has(waiting.event.id) && !answered.has(waiting.event.id);
        answered.add(waiting.event.id);
        waiting.resolve(isNew);
      }
    } catch (error) {
      // One event the columns cannot hold (class 22) must not refuse the others: alone, each
      // gets its own answer. Anything else (the database away) is every delivery's answer.
      if (batch.length > 1 && pgError(error).code?.startsWith('22')) {
        await Promise.all(batch.map((waiting) => this.write([waiting])));
        return;
      }
      for (const waiting of batch) waiting.reject(error);
    }
  }
}
