import type { Redis } from 'ioredis';
import pg, { type Pool } from 'pg';
import type Stripe from 'stripe';
import { inTransaction } from '../../../shared/src/db/transaction.js';
import { publishEdgePurge } from '../../../shared/src/edge-purge.js';
import type { Logger } from '../../../shared/src/logger.js';
import type { Mailer } from '../../../shared/src/mail/mailer.js';
import { applyEvent } from './apply-event.js';
import { applyEffects, effectsOf } from './effects.js';
import { claimDueEvent, finishEvent, lockStripeObject, recordFailure } from './queue.js';
import { readSubscription } from './subscription.js';
import { enterTenant } from './tenant.js';
import { reportUsage } from './usage-reporter.js';

export interface BillingWorkerDeps {
  pool: Pool;
  /** For a dedicated LISTEN stripe_events connection. */
  databaseUrl: string;
  stripe: Stripe;
  /** publishEdgePurge(redis, { tenantId }) after every plan or status change. */
  redis: Redis;
  mailer: Mailer;
  logger: Logger;
  /** Injectable clock (grace period, period ends, retries). */
  now: () => Date;
  graceDays: number;
  /** Default 8: backoff 2^attempt s capped at 1 h, then status 'failed'. */
  maxAttempts?: number;
  /** Fallback poll besides LISTEN, default 1000. */
  pollIntervalMs?: number;
  /** How often the clocks are evaluated and usage is reported, default 60 000. */
  tickIntervalMs?: number;
}

export interface BillingWorker {
  /** Stops listening and finishes the event in hand. */
  stop(): Promise<void>;
  /** Applies every due event now; returns how many were handled (tests, replay). */
  drain(): Promise<number>;
  /** Evaluates the clocks (grace over → suspend; canceled period over → free plan). */
  tick(now?: Date): Promise<void>;
}

export interface StartableBillingWorker extends BillingWorker {
  /** Listens, polls and runs the clocks; resolves once the events already due are applied. */
  start(): Promise<void>;
  /** Reports finished hours of metered usage to Stripe (the loop runs it with every tick). */
  reportUsage(now?: Date): Promise<number>;
}

// 2 s doubling to the 1 h cap: about a day of retries before an event is failed for good.
const DEFAULT_MAX_ATTEMPTS = 20;
const LISTENER_RETRY_MS = 1_000;

export function createBillingWorker(deps: BillingWorkerDeps): StartableBillingWorker {
  const { pool, logger } = deps;
  const maxAttempts = deps.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  let stopped = false;
  let listener: pg.Client | null = null;
  let listenerRetry: NodeJS.Timeout | undefined;
  const timers: NodeJS.Timeout[] = [];
  let draining: Promise<void> | null = null;
  let drainAgain = false;
  let clocks: Promise<void> | null = null;

  async function purge(tenantId: string): Promise<void> {
    // The change is committed; an edge that misses the purge still drops its cache on expiry.
    await publishEdgePurge(deps.redis, { tenantId }).catch((error: unknown) => logger.error({ err: error, tenantId }, 'edge purge not published'));
  }

  /** Claims, applies and records one due event; false when none is due. */
  async function handleNext(): Promise<boolean> {
    const now = deps.now();
    const result = await inTransaction(pool, {}, async (client) => {
      const event = await claimDueEvent(client, now);
      if (!event) return null;
      await client.query('SAVEPOINT apply_event');
      try {
        const applied = await applyEvent({ client, stripe: deps.stripe, mailer: deps.mailer, graceDays: deps.graceDays, now }, event);
        await finishEvent(client, event.id, applied.outcome);
        logger.info({ event: event.id, type: event.type, ...applied.outcome }, 'stripe event handled');
        return { changedTenant: applied.changedTenant };
      } catch (error) {
        // The effects go, the attempt stays: one transaction for both.
        await client.query('ROLLBACK TO SAVEPOINT apply_event');
        const message = error instanceof Error ? error.message : String(error);
        const status = await recordFailure(client, event, message, now, maxAttempts);
        logger.warn({ event: event.id, type: event.type, err: error, status }, 'stripe event failed');
        return {};
      }
    });
    if (!result) return false;
    if (result.changedTenant) await purge(result.changedTenant);
    return true;
  }

  async function drain(): Promise<number> {
    let handled = 0;
    while (!stopped && (await handleNext())) handled += 1;
    return handled;
  }

  /** Re-evaluates one tenant's subscription at `now`, under its customer's lock. */
  async function evaluateTenant(tenantId: string, now: Date): Promise<void> {
    const changed = await inTransaction(pool, {}, async (client) => {
      const seen = await enterTenant(client, tenantId, 'billing:clock', 'billing clock');
      if (!seen) return false;
      const customer = await client.query<{ stripe_customer_id: string | null }>('SELECT stripe_customer_id FROM tenant_subscriptions WHERE tenant_id = $1', [tenantId]);
      const customerId = customer.rows[0]?.stripe_customer_id;
      if (customerId) await lockStripeObject(client, customerId);
      // Read again under the lock: an event may have been applied meanwhile.
      const tenant = await enterTenant(client, tenantId, 'billing:clock', 'billing clock');
      const subscription = await readSubscription(client, tenantId);
      if (!tenant || !subscription || tenant.status === 'deleted') return false;
      return applyEffects(client, tenant, effectsOf(subscription, tenant, now, deps.graceDays), `billing clock at ${now.toISOString()}`);
    });
    if (changed) await purge(tenantId);
  }

  async function tick(now = deps.now()): Promise<void> {
    const { rows } = await pool.query<{ tenant_id: string }>('SELECT app.billing_tenants_to_evaluate() AS tenant_id');
    for (const { tenant_id: tenantId } of rows) {
      await evaluateTenant(tenantId, now).catch((error: unknown) => logger.error({ err: error, tenantId }, 'billing clock failed for a tenant'));
    }
  }

  function wake(): void {
    if (stopped) return;
    if (draining) {
      drainAgain = true;
      return;
    }
    draining = (async () => {
      do {
        drainAgain = false;
        await drain().catch((error: unknown) => logger.error({ err: error }, 'draining the stripe inbox failed'));
      } while (drainAgain && !stopped);
    })().finally(() => {
      draining = null;
    });
  }

  function runClocks(): void {
    if (stopped || clocks) return;
    const now = deps.now();
    clocks = (async () => {
      await tick(now).catch((error: unknown) => logger.error({ err: error }, 'billing clock failed'));
      await reportUsage(pool, deps.stripe, now).catch((error: unknown) => logger.error({ err: error }, 'usage report failed'));
    })().finally(() => {
      clocks = null;
    });
  }

  async function listen(): Promise<void> {
    const client = new pg.Client({ connectionString: deps.databaseUrl, application_name: 'tenantry-billing-listener', keepAlive: true });
    const reconnect = (error?: Error) => {
      if (listener !== client) return;
      listener = null;
      client.removeAllListeners('notification');
      void client.end().catch(() => undefined);
      if (error) logger.warn({ err: error }, 'stripe_events listener lost; polling until it is back');
      if (!stopped) listenerRetry = setTimeout(() => void listen().catch((retryError: Error) => reconnect(retryError)), LISTENER_RETRY_MS);
    };
    listener = client;
    client.on('error', reconnect);
    client.on('end', () => reconnect());
    client.on('notification', wake);
    try {
      await client.connect();
      await client.query('LISTEN stripe_events');
    } catch (error) {
      reconnect(error as Error);
      return;
    }
    if (stopped) {
      // stop() came while this connection was opening.
      listener = null;
      await client.end().catch(() => undefined);
      return;
    }
    // Events stored while nobody listened.
    wake();
  }

  return {
    async start() {
      await listen();
      if (stopped) return;
      timers.push(setInterval(wake, deps.pollIntervalMs ?? 1_000));
      timers.push(setInterval(runClocks, deps.tickIntervalMs ?? 60_000));
      runClocks();
      // Started means caught up: the backlog stored while no worker ran is applied.
      wake();
      await draining;
    },
    async stop() {
      stopped = true;
      for (const timer of timers) clearInterval(timer);
      clearTimeout(listenerRetry);
      const client = listener;
      listener = null;
      await client?.end().catch(() => undefined);
      await Promise.all([draining, clocks]);
    },
    drain,
    tick,
    reportUsage: (now = deps.now()) => reportUsage(pool, deps.stripe, now),
  };
}

/** Starts the worker's loop (LISTEN, poll, clocks); main.ts awaits stop() on shutdown. */
export function startBillingWorker(deps: BillingWorkerDeps): BillingWorker {
  const worker = createBillingWorker(deps);
  void worker.start().catch((error: unknown) => deps.logger.error({ err: error }, 'billing worker did not start'));
  return worker;
}
