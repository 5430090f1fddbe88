import { z } from 'zod';
import { postgresUrl } from '../../shared/src/config.js';
import { argon2EnvironmentSchema } from '../../shared/src/passwords.js';
import { s3ConfigShape } from '../../shared/src/storage/location.js';

const signingKeys = z
  .string()
  .transform((text, context) => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      context.addIssue({ code: 'custom', message: 'must be a JSON array of {kid, privateKeyPem}' });
      return z.NEVER;
    }
  })
  .pipe(z.array(z.object({ kid: z.string().min(1).max(64), privateKeyPem: z.string().min(1) })).min(1));

/** Every variable the auth service reads, declared once. */
export const authConfigSchema = z.object({
  /** app_service's URL: tenant rows only ever inside withTenant, cross-tenant reads through SECURITY DEFINER functions. */
  DATABASE_URL: postgresUrl,
  REDIS_URL: z.string().url(),
  AUTH_HOST: z.string().default('127.0.0.1'),
  AUTH_PORT: z.coerce.number().int().min(1).max(65535).default(4002),
  AUTH_ISSUER: z.string().min(1).default('https://auth.tenantry.local'),
  AUTH_AUDIENCE: z.string().min(1).default('tenantry'),
  /** At most 15 minutes, by contract with the edge. */
  AUTH_ACCESS_TOKEN_TTL_SECONDS: z.coerce.number().int().min(30).max(900).default(900),
  AUTH_REFRESH_TOKEN_TTL_SECONDS: z.coerce.number().int().min(300).default(30 * 24 * 3600),
  /** JSON array of {kid, privateKeyPem} (RSA, PKCS#8 or PKCS#1 PEM), newest first: the first signs, all are published. Unset: an ephemeral key (one replica, dev only). */
  AUTH_SIGNING_KEYS: signingKeys.optional(),
  /** argon2id cost, read as the CLI reads it (services/shared/src/passwords.ts). */
  ...argon2EnvironmentSchema.shape,
  /**
   * Login throttling per (email, source address): from this consecutive failure the pair
   * waits, the first wait doubling up to the longest; a success clears the pair. No lockout
   * per email alone, so nobody can lock an owner out from another address.
   */
  AUTH_LOGIN_DELAY_FROM_FAILURE: z.coerce.number().int().min(1).default(5),
  AUTH_LOGIN_FIRST_DELAY_SECONDS: z.coerce.number().int().min(1).default(1),
  AUTH_LOGIN_MAX_DELAY_SECONDS: z.coerce.number().int().min(1).default(900),
  /** How long a pair's failures are remembered after the last one: longer than the longest wait. */
  AUTH_LOGIN_PAIR_MEMORY_SECONDS: z.coerce.number().int().min(1).default(86_400),
  /** Login throttling per source address: failures across emails within the window, then a lockout of the address. */
  AUTH_LOGIN_MAX_FAILURES_PER_IP: z.coerce.number().int().min(1).default(50),
  AUTH_LOGIN_WINDOW_SECONDS: z.coerce.number().int().min(1).default(900),
  AUTH_LOGIN_LOCKOUT_SECONDS: z.coerce.number().int().min(1).default(900),
  SMTP_URL: z.string().url(),
  MAIL_FROM: z.string().min(3).default('Tenantry <no-reply@tenantry.local>'),
  /** Where mailed links point (the frontend, which posts the token back to /auth/...). */
  PUBLIC_URL: z.string().url(),
  /**
   * The S3 server and layout, as the storage service has them: a signup that creates a
   * tenant makes its bucket (bucket layout) and its Redis ACL user, as every path that
   * creates a tenant does.
   */
  ...s3ConfigShape,
  /** Which proxies may set X-Forwarded-For (Express "trust proxy"): the edge's address or range. */
  AUTH_TRUST_PROXY: z.string().min(1).default('loopback, uniquelocal'),
  LOG_LEVEL: z.string().default('info'),
});

export type AuthConfig = z.infer<typeof authConfigSchema>;
