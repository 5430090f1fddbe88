import { loadConfigOrExit } from '../../shared/src/config.js';
import { createServicePool } from '../../shared/src/db/pool.js';
import { serveUntilSignalled } from '../../shared/src/http/serve.js';
import { createLogger } from '../../shared/src/logger.js';
import { smtpMailer } from '../../shared/src/mail/mailer.js';
import { createRedisClient } from '../../shared/src/redis.js';
import { createStripeClient } from '../../shared/src/stripe.js';
import { buildBillingApp } from './app.js';
import { billingConfigSchema } from './config.js';
import { AuthKeys } from '../../shared/src/auth/token-keys.js';
import { createUsageWorker } from './usage/index.js';
import { startBillingWorker } from './worker/index.js';

const config = loadConfigOrExit(billingConfigSchema);
const logger = createLogger('billing', config.LOG_LEVEL);
// Survives the database going away: requests answer 503 until it is back (Stripe retries
// its deliveries), see createServicePool.
const pool = createServicePool({ connectionString: config.DATABASE_URL, applicationName: 'tenantry-billing', logger });
const redis = createRedisClient(config.REDIS_URL, { logger, name: 'tenantry-billing' });
const stripe = createStripeClient(config);
const mailer = smtpMailer(config.SMTP_URL, config.MAIL_FROM);

// Read in the background: the webhook inbox needs no token, so Stripe is served while auth starts.
const authKeys = new AuthKeys({ jwksUrl: config.AUTH_JWKS_URL, issuer: config.AUTH_ISSUER, audience: config.AUTH_AUDIENCE, logger });
void authKeys.start().catch((error: unknown) => {
  if (!(error instanceof Error && error.name === 'AbortError')) logger.error({ err: error }, 'auth keys never loaded');
});

const worker = config.BILLING_WORKER
  ? startBillingWorker({ pool, databaseUrl: config.BILLING_LISTEN_DATABASE_URL ?? config.DATABASE_URL, stripe, redis, mailer, logger: logger.child({ component: 'worker' }), now: () => new Date(), graceDays: config.BILLING_GRACE_DAYS })
  : null;
if (!worker) logger.info('BILLING_WORKER=false: this process only acknowledges webhooks; another applies them');

const usageWorker = config.BILLING_USAGE_WORKER
  ? createUsageWorker({
      pool,
      redis,
      mailer,
      logger: logger.child({ component: 'usage' }),
      now: () => new Date(),
      intervalMs: config.BILLING_USAGE_INTERVAL_MS,
      batchSize: config.BILLING_USAGE_BATCH_SIZE,
    })
  : null;
// The first pass runs in the background: a database still starting only delays it.
void usageWorker?.start().catch((error: unknown) => logger.error({ err: error }, 'usage worker did not start'));
if (!usageWorker) logger.info('BILLING_USAGE_WORKER=false: another process ingests usage and sends the quota mails');

const app = buildBillingApp({
  pool,
  redis,
  logger,
  stripe,
  verifier: authKeys,
  webhook: { secrets: config.STRIPE_WEBHOOK_SECRETS, toleranceSeconds: config.STRIPE_WEBHOOK_TOLERANCE_SECONDS },
  returnUrl: config.BILLING_RETURN_URL,
  baseDomain: config.BASE_DOMAIN,
});

serveUntilSignalled(app, {
  host: config.BILLING_HOST,
  port: config.BILLING_PORT,
  logger,
  onClose: async () => {
    authKeys.stop();
    // The event in hand is finished (and recorded) before the pool it writes with closes.
    await Promise.all([worker?.stop(), usageWorker?.stop()]);
    mailer.close();
    await Promise.all([pool.end(), redis.quit()]);
  },
});
