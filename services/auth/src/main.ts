import { Redis } from 'ioredis';
import pg from 'pg';
import { loadConfigOrExit } from '../../shared/src/config.js';
import { serveUntilSignalled } from '../../shared/src/http/serve.js';
import { createLogger } from '../../shared/src/logger.js';
import { buildAuthApp } from './app.js';
import { authConfigSchema } from './config.js';
import { KeyRing } from './keys.js';
import { smtpMailer } from './mailer.js';
import { PasswordHasher } from './passwords.js';
import { LoginLimiter } from './rate-limit.js';
import { TokenIssuer } from './tokens.js';

const config = loadConfigOrExit(authConfigSchema);
const logger = createLogger('auth', config.LOG_LEVEL);
const pool = new pg.Pool({ connectionString: config.DATABASE_URL, max: 10, application_name: 'tenantry-auth' });
pool.on('error', (error) => logger.warn({ err: error }, 'idle database connection failed'));
const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 2 });
redis.on('error', (error) => logger.warn({ err: error }, 'redis error'));

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
  passwords: new PasswordHasher({ memoryCost: config.AUTH_ARGON2_MEMORY_KIB, timeCost: config.AUTH_ARGON2_TIME_COST, parallelism: config.AUTH_ARGON2_PARALLELISM }),
  mailer,
  limiter: new LoginLimiter(redis, {
    maxFailuresPerEmail: config.AUTH_LOGIN_MAX_FAILURES_PER_EMAIL,
    maxFailuresPerIp: config.AUTH_LOGIN_MAX_FAILURES_PER_IP,
    windowSeconds: config.AUTH_LOGIN_WINDOW_SECONDS,
    lockoutSeconds: config.AUTH_LOGIN_LOCKOUT_SECONDS,
  }),
  refreshTtlSeconds: config.AUTH_REFRESH_TOKEN_TTL_SECONDS,
  publicUrl: config.PUBLIC_URL,
  trustProxy: config.AUTH_TRUST_PROXY,
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
