import path from 'node:path';
import { z } from 'zod';
import { ConfigError, loadStackEnv, postgresUrl, readConfig } from '../../shared/src/config.js';
import { CliError } from './errors.js';

export const repositoryRoot = path.resolve(import.meta.dirname, '../../..');

const schema = z.object({
  DATABASE_URL: postgresUrl.optional(),
  PLATFORM_ADMIN_DATABASE_URL: postgresUrl.optional(),
  REDIS_URL: z
    .string()
    .refine((value) => /^rediss?:\/\//.test(value), 'must be a redis:// or rediss:// URL')
    .optional(),
  S3_ENDPOINT: z.string().url().optional(),
  S3_ACCESS_KEY: z.string().optional(),
  S3_SECRET_KEY: z.string().optional(),
  S3_REGION: z.string().default('us-east-1'),
  /**
   * Where tenants' objects live, as the storage service reads them (bucket | prefix, and the
   * prefix layout's one bucket). Checked by storageSettings() against the shared s3ConfigShape
   * when a command touches storage: the shape's module loads the S3 client, which most
   * commands never need.
   */
  STORAGE_LAYOUT: z.string().optional(),
  STORAGE_SHARED_BUCKET: z.string().optional(),
  MIGRATIONS_DIR: z.string().default(path.join(repositoryRoot, 'hasura/migrations/default')),
  /** The Redis stream the edges poll for purges (the edge's own EDGE_PURGE_STREAM). */
  EDGE_PURGE_STREAM: z.string().min(1).default('edge:purges'),
  TENANTRY_RETENTION_DAYS: z.coerce.number().int().min(0).max(3650).default(30),
  /** Mail: `tenant create --owner EMAIL` mails an owner invitation, as the auth service mails its own. */
  SMTP_URL: z.string().url().optional(),
  MAIL_FROM: z.string().min(3).default('Tenantry <no-reply@tenantry.local>'),
  /** The auth service's PUBLIC_URL: mailed links open under it. */
  PUBLIC_URL: z.string().url().optional(),
  TENANTRY_DNS_SERVER: z
    .string()
    .regex(/^[^\s,]+(,[^\s,]+)*$/, 'must be host:port, or several separated by commas')
    .optional(),
  /**
   * Stripe, for `plan sync` and nothing else: read here as text and validated by
   * stripeClient() when a Stripe command runs, so a CLI without Stripe works as before.
   */
  STRIPE_SECRET_KEY: z.string().optional(),
  STRIPE_API_BASE: z.string().optional(),
});

export type CliConfig = z.infer<typeof schema>;

let cached: CliConfig | undefined;

/**
 * The environment, validated once. Without PLATFORM_ADMIN_DATABASE_URL / DATABASE_URL the
 * CLI works against the native stack (`npm run stack:up`) through its `.stack/env`.
 */
export function cliConfig(): CliConfig {
  if (cached) return cached;
  loadStackEnv(['PLATFORM_ADMIN_DATABASE_URL', 'DATABASE_URL']);
  try {
    cached = readConfig(schema);
  } catch (error) {
    if (error instanceof ConfigError) {
      throw new CliError(`${error.problems.join('; ')} — fix the environment (or .stack/env) and retry`);
    }
    throw error;
  }
  return cached;
}

type Required = 'DATABASE_URL' | 'PLATFORM_ADMIN_DATABASE_URL' | 'REDIS_URL' | 'S3_ENDPOINT' | 'SMTP_URL' | 'PUBLIC_URL';

/** A setting the running command cannot do without; names the variable when it is unset. */
export function need<Key extends Required>(key: Key): NonNullable<CliConfig[Key]> {
  const value = cliConfig()[key];
  if (value === undefined || value === '') {
    throw new CliError(`${key} is not set — export it, or start the native stack with \`npm run stack:up\``);
  }
  return value as NonNullable<CliConfig[Key]>;
}
