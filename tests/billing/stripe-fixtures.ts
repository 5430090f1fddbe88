import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import getPort from 'get-port';
import type Stripe from 'stripe';
import { startStripeMock, stopProcess } from '../../scripts/native/services.js';
import { createStripeClient, STRIPE_API_VERSION } from '../../services/shared/src/stripe.js';

/** stripe-mock's bundled fixtures: every object below starts as Stripe's own example of it. */
export const BUNDLED_FIXTURES = '/var/cache/tenantry/bin/stripe-mock-fixtures.json';

type Resources = Record<string, Record<string, unknown>>;
let bundled: Promise<{ resources: Resources }> | undefined;
const fixtures = async (): Promise<{ resources: Resources }> => {
  bundled ??= readFile(BUNDLED_FIXTURES, 'utf8').then((text) => JSON.parse(text) as { resources: Resources });
  return structuredClone(await bundled);
};

export const stripeId = (prefix: string): string => `${prefix}_${randomBytes(8).toString('hex')}`;
export const unix = (date: Date): number => Math.floor(date.getTime() / 1000);

export interface RunningStripeMock {
  apiBase: string;
  stripe: Stripe;
  stop(): Promise<void>;
}

/** A Stripe client on a stripe-mock (no retries: a test sees each request fail or succeed once). */
export const stripeClientFor = (apiBase: string, options: { maxNetworkRetries?: number } = {}): Stripe =>
  createStripeClient({ STRIPE_SECRET_KEY: 'sk_test_tenantry', STRIPE_API_BASE: apiBase }, { maxNetworkRetries: options.maxNetworkRetries ?? 0 });

/**
 * A stripe-mock of its own whose answers are the bundled fixtures with `overrides` in place
 * (e.g. `{ subscription }`: every subscription it returns has that state and that item; it
 * still puts the requested id in). Stop it in afterAll.
 */
export async function startStripeMockAnswering(overrides: Partial<Record<string, object>>): Promise<RunningStripeMock> {
  const directory = await mkdtemp(path.join(os.tmpdir(), 'tenantry-stripe-mock-'));
  const content = await fixtures();
  for (const [resource, object] of Object.entries(overrides)) content.resources[resource] = object as Record<string, unknown>;
  // stripe-mock builds a subscription's item list from the subscription_item fixture.
  const subscription = overrides.subscription as Stripe.Subscription | undefined;
  if (subscription && !overrides.subscription_item) content.resources.subscription_item = subscription.items.data[0] as unknown as Record<string, unknown>;
  const fixturesFile = path.join(directory, 'fixtures.json');
  await writeFile(fixturesFile, JSON.stringify(content));
  const [port, httpsPort] = [await getPort(), await getPort()];
  const instance = await startStripeMock({ port, httpsPort, fixturesFile, logFile: path.join(directory, 'stripe-mock.log'), detached: false });
  return {
    apiBase: instance.apiBase,
    stripe: stripeClientFor(instance.apiBase),
    async stop() {
      await stopProcess(instance.pid);
      await rm(directory, { recursive: true, force: true });
    },
  };
}

export interface SubscriptionFields {
  id: string;
  customer: string;
  priceId: string;
  status: Stripe.Subscription.Status;
  periodStart: Date;
  periodEnd: Date;
  cancelAtPeriodEnd?: boolean;
  canceledAt?: Date | null;
  /** cancellation_details.reason: `payment_failed` when Stripe ended it for non-payment. */
  cancellationReason?: Stripe.Subscription.CancellationDetails.Reason | null;
  trialEnd?: Date | null;
  metadata?: Record<string, string>;
}

/** A subscription as API 2026-08-26.dahlia shapes it: the billing period is on its items. */
export async function subscriptionObject(fields: SubscriptionFields): Promise<Stripe.Subscription> {
  const base = structuredClone((await fixtures()).resources.subscription) as unknown as Stripe.Subscription;
  const [item] = base.items.data;
  const periodStart = unix(fields.periodStart);
  const periodEnd = unix(fields.periodEnd);
  return {
    ...base,
    id: fields.id,
    customer: fields.customer,
    status: fields.status,
    metadata: fields.metadata ?? {},
    cancel_at_period_end: fields.cancelAtPeriodEnd ?? false,
    cancel_at: fields.cancelAtPeriodEnd ? periodEnd : null,
    canceled_at: fields.canceledAt ? unix(fields.canceledAt) : null,
    ended_at: fields.status === 'canceled' && fields.canceledAt ? unix(fields.canceledAt) : null,
    cancellation_details: { ...base.cancellation_details!, reason: fields.cancellationReason ?? null },
    trial_end: fields.trialEnd ? unix(fields.trialEnd) : null,
    trial_start: null,
    start_date: periodStart,
    billing_cycle_anchor: periodStart,
    latest_invoice: null,
    schedule: null,
    items: {
      ...base.items,
      url: `/v1/subscription_items?subscription=${fields.id}`,
      data: [
        {
          ...item!,
          id: stripeId('si'),
          subscription: fields.id,
          current_period_start: periodStart,
          current_period_end: periodEnd,
          price: { ...item!.price, id: fields.priceId },
        },
      ],
    },
  };
}

export interface InvoiceFields {
  id?: string;
  customer: string;
  subscription: string;
  status: Stripe.Invoice.Status;
  amountDue?: number;
  attemptCount?: number;
  nextPaymentAttempt?: Date | null;
  /** The subscription's metadata as the invoice snapshots it (parent.subscription_details.metadata). */
  subscriptionMetadata?: Record<string, string>;
}

/** An invoice as API 2026-08-26.dahlia shapes it: its subscription is under parent.subscription_details. */
export async function invoiceObject(fields: InvoiceFields): Promise<Stripe.Invoice> {
  const base = structuredClone((await fixtures()).resources.invoice) as unknown as Stripe.Invoice;
  const id = fields.id ?? stripeId('in');
  return {
    ...base,
    id,
    customer: fields.customer,
    status: fields.status,
    amount_due: fields.amountDue ?? 2900,
    currency: 'usd',
    attempt_count: fields.attemptCount ?? 1,
    next_payment_attempt: fields.nextPaymentAttempt ? unix(fields.nextPaymentAttempt) : null,
    hosted_invoice_url: `https://invoice.stripe.com/i/${id}`,
    parent: { type: 'subscription_details', quote_details: null, subscription_details: { metadata: fields.subscriptionMetadata ?? null, subscription: fields.subscription } },
  };
}

/** A completed subscription-mode Checkout Session naming its tenant as the billing service opens it. */
export async function checkoutSessionObject(fields: { customer: string; subscription: string; tenantId: string }): Promise<Stripe.Checkout.Session> {
  const base = structuredClone((await fixtures()).resources['checkout.session']) as unknown as Stripe.Checkout.Session;
  return {
    ...base,
    id: stripeId('cs_test'),
    mode: 'subscription',
    status: 'complete',
    payment_status: 'paid',
    customer: fields.customer,
    subscription: fields.subscription,
    client_reference_id: fields.tenantId,
    metadata: { tenant_id: fields.tenantId },
  };
}

/** An event as Stripe sends it: its own id, the pinned API version, `created` in seconds. */
export function stripeEvent(type: string, object: { object?: string }, created: Date, id = stripeId('evt')): Stripe.Event {
  return {
    id,
    object: 'event',
    api_version: STRIPE_API_VERSION,
    created: unix(created),
    data: { object },
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type,
  } as unknown as Stripe.Event;
}
