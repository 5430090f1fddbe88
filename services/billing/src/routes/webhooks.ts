import { z } from 'zod';
import { fail } from '../../../shared/src/errors/catalog.js';
import { pgError } from '../../../shared/src/errors/database.js';
import { defineOperation } from '../http.js';
import type { Pool } from 'pg';
import { InboxWriter, verifyStripeEvent, WebhookPayloadError, WebhookSignatureError } from '../inbox.js';

/** Stripe's events are far smaller; a larger body is refused (413) before it is read. */
export const WEBHOOK_BODY_LIMIT = '1mb';

/** One group-committing writer per pool (an app, or a test's app on its own database). */
const writers = new WeakMap<Pool, InboxWriter>();
function inboxWriter(pool: Pool): InboxWriter {
  let writer = writers.get(pool);
  if (!writer) writers.set(pool, (writer = new InboxWriter(pool)));
  return writer;
}

export const stripeWebhook = defineOperation({
  method: 'post',
  path: '/billing/webhooks/stripe',
  summary: 'The Stripe webhook inbox: verifies the signature on the raw body, stores the event once and acknowledges it; the worker applies it',
  tag: 'webhooks',
  auth: 'none',
  body: 'raw',
  bodyLimit: WEBHOOK_BODY_LIMIT,
  responses: {
    200: { description: 'stored (or already stored: duplicate)', schema: z.object({ received: z.literal(true), duplicate: z.boolean() }) },
    400: { description: 'missing, invalid or stale signature; or a signed body that is not a Stripe event' },
    413: { description: 'body over 1 MiB' },
    503: { description: 'the database is unavailable: Stripe retries' },
  },
  async handler({ deps, req, body, log }) {
    let event;
    try {
      event = verifyStripeEvent(deps.stripe, body, req.get('stripe-signature'), deps.webhook.secrets, deps.webhook.toleranceSeconds);
    } catch (error) {
      if (error instanceof WebhookSignatureError) {
        log.warn({ reason: error.message }, 'webhook refused: signature');
        throw fail('invalid_signature', `the webhook signature was refused: ${error.message}`);
      }
      if (error instanceof WebhookPayloadError) throw fail('bad_request', error.message);
      throw error;
    }
    let stored: boolean;
    try {
      stored = await inboxWriter(deps.pool).store({ event, json: body.toString('utf8') });
    } catch (error) {
      // Class 22 (data exception): a value of the event the columns cannot hold. Stripe sends
      // none; answering 4xx keeps a malformed event from being retried for days.
      if (pgError(error).code?.startsWith('22')) throw fail('bad_request', 'the event cannot be stored');
      throw error;
    }
    log.info({ event: event.id, type: event.type, duplicate: !stored }, 'webhook received');
    return { body: { received: true, duplicate: !stored } };
  },
});
