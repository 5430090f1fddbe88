import { loadConfigOrExit } from '../../shared/src/config.js';
import { createServicePool } from '../../shared/src/db/pool.js';
import { serveUntilSignalled } from '../../shared/src/http/serve.js';
import { createLogger } from '../../shared/src/logger.js';
import { createRedisClient } from '../../shared/src/redis.js';
import { createS3Client } from '../../shared/src/storage/location.js';
import { buildAuthApp } from './app.js';
import { authConfigSchema } from './config.js';
import { KeyRing } from './keys.js';
import { smtpMailer } from '../../shared/src/mail/mailer.js';
import { argon2Parameters, PasswordHasher } from '../../shared/src/passwords.js';
import { LoginLimiter } from './rate-limit.js';
import { TokenIssuer } from './tokens.js';

const config = loadConfigOrExit(authConfigSchema);
const logger = createLogger('auth', config.LOG_LEVEL);
// Survives the database going away: every client's errors are handled, checkouts time out,
// and requests answer 503 until it is back (see createServicePool).
const pool = createServicePool({ connectionString: config.DATABASE_URL, applicationName: 'tenantry-auth', logger });
// Every command times out at 500 ms; the login throttle fails closed (see createRedisClient, LoginLimiter).
const redis = createRedisClient(config.REDIS_URL, { logger, name: 'tenantry-auth' });

let keys: KeyRing;
if (config.AUTH_SIGNING_KEYS) {
  keys = KeyRing.fromPems(config.AUTH_SIGNING_KEYS);
} else {
  keys = KeyRing.generate();
  logger.warn('AUTH_SIGNING_KEYS is not set: using an ephemeral key; tokens die with this process and replicas will not agree');
}
const mailer = smtpMailer(config.SMTP_URL, config.MAIL_FROM);
const app = buildAuthApp({
  pool,
  redis,
  logger,
  keys,
  tokens: new TokenIssuer({ keys, issuer: config.AUTH_ISSUER, audience: config.AUTH_AUDIENCE, ttlSeconds: config.AUTH_ACCESS_TOKEN_TTL_SECONDS }),
  passwords: new PasswordHasher(argon2Parameters(config)),
  mailer,
  limiter: new LoginLimiter(redis, {
    delayFromFailure: config.AUTH_LOGIN_DELAY_FROM_FAILURE,
    firstDelaySeconds: config.AUTH_LOGIN_FIRST_DELAY_SECONDS,
    maxDelaySeconds: config.AUTH_LOGIN_MAX_DELAY_SECONDS,
    pairMemorySeconds: config.AUTH_LOGIN_PAIR_MEMORY_SECONDS,
    maxFailuresPerIp: config.AUTH_LOGIN_MAX_FAILURES_PER_IP,
    windowSeconds: config.AUTH_LOGIN_WINDOW_SECONDS,
    lockoutSeconds: config.AUTH_LOGIN_LOCKOUT_SECONDS,
  }),
  refreshTtlSeconds: config.AUTH_REFRESH_TOKEN_TTL_SECONDS,
  publicUrl: config.PUBLIC_URL,
  trustProxy: config.AUTH_TRUST_PROXY,
  namespaces: {
    s3: createS3Client(config.S3_ENDPOINT, { accessKey: config.S3_ACCESS_KEY, secretKey: config.S3_SECRET_KEY, region: config.S3_REGION }),
    redis,
    settings: { layout: config.STORAGE_LAYOUT, sharedBucket: config.STORAGE_SHARED_BUCKET },
  },
});

serveUntilSignalled(app, {
  host: config.AUTH_HOST,
  port: config.AUTH_PORT,
  logger,
  onClose: async () => {
    mailer.close();
    await Promise.all([pool.end(), redis.quit()]);
  },
});
