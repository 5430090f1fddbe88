import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildBillingApp } from '../../services/billing/src/app.js';
import { createServicePool } from '../../services/shared/src/db/pool.js';
import { hex } from '../fixtures/seed.js';
import {
  deliver,
  expectError,
  ROTATED_WEBHOOK_SECRET,
  startBillingHarness,
  stripeEvent,
  stripeSignature,
  TOLERANCE_SECONDS,
  WEBHOOK_SECRET,
  freshWebhookSecret,
  type BillingHarness,
} from './harness.js';

let h: BillingHarness;
beforeAll(async () => {
  h = await startBillingHarness();
});
afterAll(() => h.close());

interface StoredEvent {
  id: string;
  type: string;
  status: string;
  object_id: string | null;
  payload: unknown;
  stripe_created_at: Date;
}

async function stored(id: string): Promise<StoredEvent[]> {
  const { rows } = await h.admin.query<StoredEvent>('SELECT id, type, status, object_id, payload, stripe_created_at FROM stripe_events WHERE id = $1', [id]);
  return rows;
}

const subscriptionEvent = (customer = `cus_${hex(6)}`) =>
  stripeEvent('customer.subscription.updated', { id: `sub_${hex(6)}`, object: 'subscription', customer, status: 'active' });

describe('POST /billing/webhooks/stripe: verified events are stored once', () => {
  test('a signed event is acknowledged at once and stored pending, with the customer as its object; a redelivery is a duplicate', async () => {
    const event = subscriptionEvent('cus_webhookOne');
    const first = await h.deliver(event).expect(200);
    expect(first.body).toEqual({ received: true, duplicate: false });
    const rows = await stored(event.id);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ type: 'customer.subscription.updated', status: 'pending', object_id: 'cus_webhookOne', payload: event });
    expect(rows[0]!.stripe_created_at.getTime()).toBe(event.created * 1000);

    const again = await h.deliver(event).expect(200);
    expect(again.body).toEqual({ received: true, duplicate: true });
    expect(await stored(event.id)).toHaveLength(1);
  });

  test('an event type nobody handles is acknowledged and stored too (the worker marks it ignored), never refused', async () => {
    const event = stripeEvent('radar.early_fraud_warning.created', { id: `issfr_${hex(6)}`, object: 'radar.early_fraud_warning' });
    expect((await h.deliver(event).expect(200)).body).toEqual({ received: true, duplicate: false });
    expect(await stored(event.id)).toHaveLength(1);
  });

  test('during a rotation both secrets verify; a signature a little old but within the tolerance is fine', async () => {
    const current = subscriptionEvent();
    const next = subscriptionEvent();
    const recent = subscriptionEvent();
    await h.deliver(current, { secret: WEBHOOK_SECRET }).expect(200);
    await h.deliver(next, { secret: ROTATED_WEBHOOK_SECRET }).expect(200);
    await h.deliver(recent, { timestamp: Math.floor(Date.now() / 1000) - (TOLERANCE_SECONDS - 60) }).expect(200);
    for (const event of [current, next, recent]) expect(await stored(event.id)).toHaveLength(1);
  });

  test('20 concurrent deliveries of one event: all acknowledged, one row, exactly one of them new', async () => {
    const event = subscriptionEvent();
    const answers = await Promise.all(Array.from({ length: 20 }, () => h.deliver(event)));
    expect(answers.map((answer) => answer.status)).toEqual(Array(20).fill(200));
    expect(answers.filter((answer) => answer.body.duplicate === false)).toHaveLength(1);
    expect(await stored(event.id)).toHaveLength(1);
  });
});

describe('POST /billing/webhooks/stripe: refusals store nothing', () => {
  const now = () => Math.floor(Date.now() / 1000);

  test('a body changed after signing is 400 invalid_signature', async () => {
    const event = subscriptionEvent();
    const payload = JSON.stringify(event);
    const signature = stripeSignature(h.stripe, payload);
    const tampered = payload.replace('"active"', '"canceled"');
    const answer = await deliver(h.app, h.stripe, tampered, { signature }).expect(400);
    expectError(answer.body, 'invalid_signature');
    expect(await stored(event.id)).toHaveLength(0);
  });

  test('a signature older than the tolerance (a replay) is 400, even with the right secret', async () => {
    const event = subscriptionEvent();
    const answer = await h.deliver(event, { timestamp: now() - TOLERANCE_SECONDS - 30 }).expect(400);
    expectError(answer.body, 'invalid_signature');
    expect(answer.body.error.message).toMatch(new RegExp(`more than ${TOLERANCE_SECONDS} s old`));
    expect(await stored(event.id)).toHaveLength(0);
  });

  test('a secret that is not one of ours is 400', async () => {
    const event = subscriptionEvent();
    expectError((await h.deliver(event, { secret: freshWebhookSecret() }).expect(400)).body, 'invalid_signature');
    expect(await stored(event.id)).toHaveLength(0);
  });

  test('once the old secret is retired it no longer verifies', async () => {
    const retiredApp = buildBillingApp({ ...h.deps, webhook: { secrets: [ROTATED_WEBHOOK_SECRET], toleranceSeconds: TOLERANCE_SECONDS } });
    const event = subscriptionEvent();
    expectError((await deliver(retiredApp, h.stripe, event, { secret: WEBHOOK_SECRET }).expect(400)).body, 'invalid_signature');
    expect(await stored(event.id)).toHaveLength(0);
    await deliver(retiredApp, h.stripe, event, { secret: ROTATED_WEBHOOK_SECRET }).expect(200);
    expect(await stored(event.id)).toHaveLength(1);
  });

  test('no Stripe-Signature header, or a malformed one, is 400', async () => {
    const event = subscriptionEvent();
    const missing = await h.deliver(event, { signature: null }).expect(400);
    expectError(missing.body, 'invalid_signature');
    expect(missing.body.error.message).toMatch(/missing/);
    expectError((await h.deliver(event, { signature: 'garbage' }).expect(400)).body, 'invalid_signature');
    expectError((await h.deliver(event, { signature: `t=${now()},v1=${'0'.repeat(64)}` }).expect(400)).body, 'invalid_signature');
    expect(await stored(event.id)).toHaveLength(0);
  });

  test('a 2 MiB body, correctly signed, is 413 before it is verified or stored', async () => {
    const event = stripeEvent('customer.updated', { id: `cus_${hex(6)}`, object: 'customer', description: 'x'.repeat(2 * 1024 * 1024) });
    const answer = await h.deliver(event).expect(413);
    expectError(answer.body, 'payload_too_large');
    expect(await stored(event.id)).toHaveLength(0);
  });

  test('a signed body that is not JSON, or JSON that is not an event, is 400 and stores nothing', async () => {
    const id = `evt_${hex(12)}`;
    const notJson = `{"id":"${id}","type":"customer.updated","data":{"object":`;
    const answer = await deliver(h.app, h.stripe, notJson).expect(400);
    expectError(answer.body, 'bad_request');
    expect(answer.body.error.message).toMatch(/not JSON/);
    for (const payload of [
      '{}',
      '[]',
      'null',
      JSON.stringify({ id, type: 'customer.updated', created: now(), livemode: false }),
      JSON.stringify({ id, type: 'customer.updated', created: 'yesterday', livemode: false, data: { object: {} } }),
      JSON.stringify({ id: 'not-an-event', type: 'customer.updated', created: now(), livemode: false, data: { object: {} } }),
      JSON.stringify({ id, type: 'customer.updated', created: now(), livemode: false, data: { object: { name: 'nul \u0000 byte' } } }),
    ]) {
      expectError((await deliver(h.app, h.stripe, payload).expect(400)).body, 'bad_request');
    }
    expect(await stored(id)).toHaveLength(0);
  });
});

describe('POST /billing/webhooks/stripe: the database away', () => {
  test('answers 503 (Stripe retries), never 500, and nothing is lost', async () => {
    const unreachable = new URL(h.deps.pool.options.connectionString!);
    unreachable.port = '1';
    const pool = createServicePool({ connectionString: unreachable.toString(), applicationName: 'billing-test-down', logger: pino({ level: 'silent' }), connectionTimeoutMillis: 500 });
    const app = buildBillingApp({ ...h.deps, pool });
    try {
      const event = subscriptionEvent();
      const answer = await deliver(app, h.stripe, event).expect(503);
      expectError(answer.body, 'unavailable');
      // Stripe delivers again once we are back: the same event is stored then.
      await h.deliver(event).expect(200);
      expect(await stored(event.id)).toHaveLength(1);
    } finally {
      await pool.end();
    }
  });
});

