import { existsSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Parses the environment once against a zod schema. Every problem names the variable,
 * so a missing or malformed setting is fixed in one go rather than one restart at a time.
 */
export function readConfig<Schema extends z.ZodType>(
  schema: Schema,
  env: Record<string, string | undefined> = process.env,
): z.infer<Schema> {
  const parsed = schema.safeParse(env);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    const variable = issue.path.join('.') || '(environment)';
    const given = issue.path.length === 1 ? env[String(issue.path[0])] : undefined;
    return given === undefined ? `${variable} is required (${issue.message})` : `${variable} is invalid: ${issue.message}`;
  });
  throw new ConfigError(problems);
}

/** For entry points: the same as readConfig, but a bad environment ends the process with the message. */
export function loadConfigOrExit<Schema extends z.ZodType>(schema: Schema, env = process.env): z.infer<Schema> {
  try {
    return readConfig(schema, env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
}

/**
 * An optional setting that compose may pass as `${NAME:-}`: an empty value means unset, as
 * an absent one does, instead of failing the schema's format check.
 */
export const unsetWhenEmpty = <Schema extends z.ZodType>(schema: Schema) =>
  z.preprocess((value) => (value === '' ? undefined : value), schema.optional());

/** A switch, `true` or `false`, on unless set. */
export const switchOn = () =>
  z
    .enum(['true', 'false'])
    .default('true')
    .transform((value) => value === 'true');

/** How a service that verifies access tokens finds and checks them (the auth service signs). */
export const tokenVerificationShape = {
  /** The auth service's JWKS, to verify access tokens. */
  AUTH_JWKS_URL: z.string().url(),
  AUTH_ISSUER: z.string().min(1).default('https://auth.tenantry.local'),
  AUTH_AUDIENCE: z.string().min(1).default('tenantry'),
};

export const postgresUrl = z
  .string()
  .url()
  .refine((value) => /^postgres(ql)?:\/\//.test(value), 'must be a postgres:// or postgresql:// URL');

/**
 * The native stack's settings (written by `npm run stack:up`): `env` in STACK_DIR, which is
 * `.stack` at the repository root unless set. The stack script takes its directory from here.
 */
export const STACK_ENV_FILE = path.join(process.env.STACK_DIR ?? path.resolve(import.meta.dirname, '../../../.stack'), 'env');

/**
 * Loads the native stack's `.stack/env` into process.env, so that a command run on this
 * machine works without exports, unless the environment already names its own target (any
 * of `unlessSet`): an explicit setting always wins over the stack's. Returns whether it loaded.
 */
export function loadStackEnv(unlessSet: readonly string[], file = STACK_ENV_FILE): boolean {
  if (unlessSet.some((name) => process.env[name]) || !existsSync(file)) return false;
  process.loadEnvFile(file);
  return true;
}
