import type { PoolClient } from 'pg';

/** A stored Stripe event, claimed for applying. */
export interface ClaimedEvent {
  id: string;
  type: string;
  createdAt: Date;
  objectId: string | null;
  attempts: number;
  payload: unknown;
}

/** What applying an event came to. */
export type EventOutcome = { status: 'applied' | 'ignored'; outcome: string };

/**
 * Due means pending and next_attempt_at reached by the later of the database's clock (it
 * stamps next_attempt_at when an event is stored) and the worker's (injected, so tests and
 * replays can move time forward; in production both read the same time).
 */
const DUE_AT = 'greatest(now(), $1::timestamptz)';

/**
 * Claims the next due event in the caller's open transaction, or null. SKIP LOCKED: a
 * replica never waits on an event another replica holds, it takes the next one. Then the
 * Stripe object's advisory lock: one object's events apply one at a time across replicas
 * (the second waits here until the first commits, and then reads its state).
 */
export async function claimDueEvent(client: PoolClient, now: Date): Promise<ClaimedEvent | null> {
  const { rows } = await client.query<{
    id: string;
    type: string;
    stripe_created_at: Date;
    object_id: string | null;
    attempts: number;
    payload: unknown;
  }>(
    `SELECT id, type, stripe_created_at, object_id, attempts, payload FROM stripe_events
     WHERE status = 'pending' AND next_attempt_at <= ${DUE_AT}
     ORDER BY next_attempt_at, stripe_created_at
     LIMIT 1
     FOR UPDATE SKIP LOCKED`,
    [now],
  );
  const row = rows[0];
  if (!row) return null;
  await lockStripeObject(client, row.object_id ?? row.id);
  return { id: row.id, type: row.type, createdAt: row.stripe_created_at, objectId: row.object_id, attempts: row.attempts, payload: row.payload };
}

/** The transaction-scoped lock of one Stripe object (a customer), in billing's own lock space. */
export async function lockStripeObject(client: PoolClient, objectId: string): Promise<void> {
  await client.query("SELECT pg_advisory_xact_lock(hashtext('tenantry.billing.stripe_object'), hashtext($1))", [objectId]);
}

export async function finishEvent(client: PoolClient, eventId: string, { status, outcome }: EventOutcome): Promise<void> {
  await client.query(
    `UPDATE stripe_events SET status = $2, outcome = $3, attempts = attempts + 1, processed_at = now()
     WHERE id = $1`,
    [eventId, status, outcome],
  );
}

/** Seconds before the next attempt: 2^attempts, at most an hour. */
export const backoffSeconds = (attempts: number): number => Math.min(2 ** attempts, 3600);

/**
 * Records a failed attempt (the backoff counts from the same clock as DUE_AT): retried after the backoff, or given up ('failed') once it has
 * had maxAttempts (`tenantry billing replay` sets it pending again).
 */
export async function recordFailure(client: PoolClient, event: ClaimedEvent, error: string, now: Date, maxAttempts: number): Promise<'pending' | 'failed'> {
  const attempts = event.attempts + 1;
  const status = attempts >= maxAttempts ? 'failed' : 'pending';
  await client.query(
    `UPDATE stripe_events
     SET attempts = $2, last_error = $3, status = $4,
         next_attempt_at = greatest(now(), $5::timestamptz) + make_interval(secs => $6)
     WHERE id = $1`,
    [event.id, attempts, error.slice(0, 2000), status, now, backoffSeconds(attempts)],
  );
  return status;
}
