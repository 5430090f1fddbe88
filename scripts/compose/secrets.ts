/**
 * The compose stack's secrets, one file each: the one-shot `secrets` service runs this
 * before anything else starts. The full set stays in the job's own volume; each consumer
 * gets a volume of its own holding only the secrets it names (TENANTRY_SECRETS_FOR), so a
 * compromised auth service cannot read the superuser's password.
 *
 * Development (`docker compose up -d` on a fresh checkout): whatever .env does not set is
 * generated once and kept, so the stack starts without editing .env and keeps its
 * passwords across restarts. A value .env sets wins, and replaces the kept one.
 * Production (docker-compose.prod.yml sets TENANTRY_SECRETS_REQUIRED=true): nothing is
 * generated; every secret must come from .env and must not be a `change-me` placeholder.
 *
 * Services read the files, never this module: compose passes them `$${NAME}` references
 * that docker/expand-secrets.sh or scripts/compose/expand-secrets.ts resolve at start.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

type Generator = (env: NodeJS.ProcessEnv) => string;

const randomToken = (bytes = 32): Generator => () => randomBytes(bytes).toString('base64url');
/** S3 access keys: letters and digits only, as every S3 server accepts them. */
const accessKey: Generator = () => randomBytes(15).toString('hex').toUpperCase();

const signingKeys: Generator = () => {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  return JSON.stringify([{ kid: `dev-${new Date().toISOString().slice(0, 10)}-${randomBytes(3).toString('hex')}`, privateKeyPem: pem }]);
};

/** Development talks to stripe-mock, which takes any well-formed test key. */
const stripeTestKey: Generator = () => `sk_test_${randomBytes(18).toString('hex')}`;
/** A webhook signing secret in Stripe's form: the dev stack signs its own test events with it. */
const stripeWebhookSecret: Generator = () => `whsec_${randomBytes(24).toString('base64url')}`;

/** Hasura verifies the auth service's tokens from its JWKS; issuer and audience follow the auth service's. */
const hasuraJwtSecret: Generator = (env) =>
  JSON.stringify({
    jwk_url: 'http://auth:4002/auth/.well-known/jwks.json',
    issuer: env.AUTH_ISSUER || 'https://auth.tenantry.local',
    audience: env.AUTH_AUDIENCE || 'tenantry',
    claims_namespace: 'https://hasura.io/jwt/claims',
  });

/** Every secret of the stack, with how development generates it. */
export const SECRETS: Record<string, Generator> = {
  POSTGRES_PASSWORD: randomToken(),
  TENANTRY_OWNER_DB_PASSWORD: randomToken(),
  HASURA_DB_PASSWORD: randomToken(),
  APP_SERVICE_DB_PASSWORD: randomToken(),
  PLATFORM_ADMIN_DB_PASSWORD: randomToken(),
  S3_ACCESS_KEY: accessKey,
  S3_SECRET_KEY: randomToken(),
  REDIS_PASSWORD: randomToken(),
  AUTH_SIGNING_KEYS: signingKeys,
  HASURA_GRAPHQL_ADMIN_SECRET: randomToken(),
  RESOLVER_SECRET: randomToken(),
  EDGE_PURGE_SECRET: randomToken(),
  STRIPE_SECRET_KEY: stripeTestKey,
  STRIPE_WEBHOOK_SECRETS: stripeWebhookSecret,
};

/** Derived from other settings, not secret; production may still set it in .env. */
const DERIVED: Record<string, Generator> = { HASURA_GRAPHQL_JWT_SECRET: hasuraJwtSecret };

export class SecretsError extends Error {}

export interface SecretsResult {
  /** Where each value came from. */
  sources: Record<string, 'environment' | 'kept' | 'generated' | 'derived'>;
}

/** Which secrets each consumer gets: `consumer: NAME NAME …`, one consumer a line. */
export function parseConsumers(spec: string): Record<string, string[]> {
  const consumers: Record<string, string[]> = {};
  for (const line of spec.split('\n').map((raw) => raw.trim()).filter(Boolean)) {
    const match = /^([a-z0-9][a-z0-9_-]*):((?:\s+[A-Z][A-Z0-9_]*)+)$/.exec(line);
    if (!match) throw new SecretsError(`TENANTRY_SECRETS_FOR: cannot read "${line}" (expected "consumer: NAME NAME …")`);
    const names = match[2]!.trim().split(/\s+/);
    const unknown = names.filter((name) => !(name in SECRETS) && !(name in DERIVED));
    if (unknown.length > 0) throw new SecretsError(`TENANTRY_SECRETS_FOR: ${match[1]} names unknown secrets: ${unknown.join(', ')}`);
    consumers[match[1]!] = names;
  }
  return consumers;
}

/** Replaces a file's content atomically; readable by the consumer's user, whichever it is. */
function writeFile(directory: string, name: string, value: string): void {
  const file = path.join(directory, name);
  writeFileSync(`${file}.tmp`, value, { mode: 0o644 });
  renameSync(`${file}.tmp`, file);
}

/**
 * Writes one file per secret into `directory` (the job's own volume), and into
 * `<consumersRoot>/<consumer>/` only the ones that consumer names; see the module comment.
 */
export function writeSecrets(
  directory: string,
  env: NodeJS.ProcessEnv,
  required: boolean,
  consumers: { root: string; secrets: Record<string, string[]> } = { root: '', secrets: {} },
): SecretsResult {
  const sources: SecretsResult['sources'] = {};
  const values: Record<string, string> = {};
  const problems: string[] = [];
  for (const [name, generate] of Object.entries({ ...SECRETS, ...DERIVED })) {
    const given = env[name];
    const file = path.join(directory, name);
    if (given) {
      if (required && /change[-_]?me/i.test(given)) problems.push(`${name} is still the .env.example placeholder`);
      // Compose puts it into every REDIS_URL unencoded: `@`, `/` or `:` would change the URL.
      if (name === 'REDIS_PASSWORD' && !/^[A-Za-z0-9_-]+$/.test(given)) problems.push(`${name} may hold only letters, digits, - and _`);
      values[name] = given;
      sources[name] = 'environment';
    } else if (name in DERIVED) {
      values[name] = generate(env);
      sources[name] = 'derived';
    } else if (required) {
      problems.push(`${name} is not set`);
    } else if (existsSync(file)) {
      values[name] = readFileSync(file, 'utf8');
      sources[name] = 'kept';
    } else {
      values[name] = generate(env);
      sources[name] = 'generated';
    }
  }
  if (problems.length > 0) throw new SecretsError(`production needs real secrets in .env: ${problems.join('; ')}`);
  mkdirSync(directory, { recursive: true, mode: 0o700 });
  chmodSync(directory, 0o700);
  for (const [name, value] of Object.entries(values)) writeFile(directory, name, value);
  for (const [consumer, names] of Object.entries(consumers.secrets)) {
    const own = path.join(consumers.root, consumer);
    mkdirSync(own, { recursive: true });
    // Each consumer's volume is mounted into that consumer only, whose user differs per image.
    chmodSync(own, 0o755);
    for (const name of names) writeFile(own, name, values[name]!);
    // A secret the consumer no longer names leaves its volume.
    for (const stale of readdirSync(own).filter((name) => !names.includes(name))) rmSync(path.join(own, stale), { force: true });
  }
  return { sources };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const directory = process.argv[2] ?? '/run/tenantry/secrets';
  const consumersRoot = process.argv[3] ?? '/run/tenantry/for';
  try {
    const consumers = { root: consumersRoot, secrets: parseConsumers(process.env.TENANTRY_SECRETS_FOR ?? '') };
    const { sources } = writeSecrets(directory, process.env, process.env.TENANTRY_SECRETS_REQUIRED === 'true', consumers);
    for (const [name, source] of Object.entries(sources)) console.log(`${name}: ${source}`);
  } catch (error) {
    console.error(`secrets: ${(error as Error).message}`);
    process.exit(1);
  }
}
