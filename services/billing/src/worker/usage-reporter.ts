import { createHash } from 'node:crypto';
import type { Pool } from 'pg';
import Stripe from 'stripe';

const DAY_MS = 86_400_000;
/** Stripe takes meter events up to 35 days old; an hour's margin keeps a slow run inside it. */
const STRIPE_WINDOW_MS = 35 * DAY_MS - 3_600_000;
/** An hour is reported this long after it ends, so requests counted at its last instant are in. */
const SETTLE_MS = 5 * 60_000;
const IDENTIFIER_MAX = 100;

interface Bucket {
  tenant_id: string;
  metric: string;
  period_start: Date;
  quantity: string;
  stripe_customer_id: string;
  meter_event_name: string;
}

/**
 * One identifier per tenant × metric × hour, the same on every run: Stripe drops a meter
 * event whose identifier it has seen (for at least 24 hours), so a reporter that crashed
 * after sending and before recording sends it again harmlessly. Stripe takes 100
 * characters: a metric name too long for that is replaced by its digest.
 */
export function meterIdentifier(tenantId: string, metric: string, periodStart: Date): string {
  const hour = periodStart.toISOString().replace('.000Z', 'Z');
  const identifier = `${tenantId}:${metric}:${hour}`;
  if (identifier.length <= IDENTIFIER_MAX) return identifier;
  return `${tenantId}:${createHash('sha256').update(metric).digest('hex').slice(0, 24)}:${hour}`;
}

/**
 * Sends every finished hour of metered usage not yet reported (within Stripe's 35 days) to
 * the plan's Stripe meter, then records what was sent beside the bucket. Returns how many
 * buckets were reported. A bucket Stripe refuses (a deleted customer, say) is passed over,
 * so it cannot hold back every tenant's usage behind it; any other failure stops the run
 * (the next one resumes there).
 */
export async function reportUsage(pool: Pool, stripe: Stripe, now: Date, batchSize = 100): Promise<number> {
  let reported = 0;
  for (;;) {
    const { rows } = await pool.query<Bucket>(
      `SELECT tenant_id, metric, period_start, quantity::text, stripe_customer_id, meter_event_name
       FROM app.billing_usage_to_report($1, $2, $3)`,
      [new Date(now.getTime() - STRIPE_WINDOW_MS), new Date(now.getTime() - SETTLE_MS), batchSize],
    );
    let reportedInBatch = 0;
    for (const bucket of rows) {
      const identifier = meterIdentifier(bucket.tenant_id, bucket.metric, bucket.period_start);
      try {
        await stripe.billing.meterEvents.create(
          {
            event_name: bucket.meter_event_name,
            payload: { stripe_customer_id: bucket.stripe_customer_id, value: bucket.quantity },
            identifier,
            timestamp: Math.floor(bucket.period_start.getTime() / 1000),
          },
          { idempotencyKey: identifier },
        );
      } catch (error) {
        if (error instanceof Stripe.errors.StripeInvalidRequestError) continue;
        throw error;
      }
      await pool.query('SELECT app.billing_record_usage_report($1, $2, $3, $4)', [bucket.tenant_id, bucket.metric, bucket.period_start, bucket.quantity]);
      reportedInBatch += 1;
    }
    reported += reportedInBatch;
    // A short batch is the last; a full one of refused buckets would come back unchanged.
    if (rows.length < batchSize || reportedInBatch === 0) return reported;
  }
}
